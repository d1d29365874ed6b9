import ConvoyCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Reads SUMO FCD XML (`sumo --fcd-output file.xml`) with x/y in metres, streaming it with `XMLParser`.
///
/// Structure: `<fcd-export>` holding `<timestep time="…">` elements in strictly increasing time, each
/// holding `<vehicle id="…" x="…" y="…" [speed="…"] [angle="…"] …/>`. Other attributes and other
/// elements (`<person>`, `<container>`, …) are ignored; empty timesteps are fine.
///
/// Geo output (`--fcd-output.geo`, lon/lat) is refused for now: SUMO writes it either with `lon`/`lat`
/// attributes or with degrees in `x`/`y`; the latter is recognised from the configuration SUMO embeds
/// in a comment before the root element.
enum FCDXMLReader {
    static func read(path: String, into assembler: inout TraceAssembler) throws(InputError) {
        guard let parser = XMLParser(contentsOf: URL(fileURLWithPath: path)) else {
            throw InputError(file: path, "cannot open the file for reading (missing or not readable)")
        }
        let handler = Handler(file: path, assembler: assembler)
        parser.delegate = handler
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        let succeeded = parser.parse()
        if let error = handler.error { throw error }
        if let failure = handler.xmlFailure ?? (succeeded ? nil : (parser.lineNumber, parser.parserError)) {
            throw xmlError(path: path, line: failure.line, underlying: failure.error)
        }
        if handler.rootName == nil {
            throw InputError(file: path, line: handler.lastLine, "malformed XML: no root element found")
        }
        if !handler.rootClosed {
            throw InputError(
                file: path, line: handler.lastLine,
                "truncated XML: the file ends before </fcd-export>")
        }
        assembler = handler.assembler
    }

    /// The error for a libxml2 failure at `line`: "truncated" when it is on the file's last line (the
    /// data ran out), "malformed" otherwise.
    static func xmlError(path: String, line: Int, underlying: Error?) -> InputError {
        let detail = underlying.map { describe($0 as NSError) } ?? "unknown parser error"
        let lastLine = (try? readWholeFile(path: path)).map { data -> Int in
            let newlines = data.reduce(0) { $1 == 0x0A ? $0 + 1 : $0 }
            return data.last == 0x0A ? newlines : newlines + 1
        }
        if let lastLine, line >= lastLine {
            return InputError(
                file: path, line: line, "truncated XML: the file ends inside the document (\(detail)); expected it to end with </fcd-export>")
        }
        return InputError(file: path, line: line, "malformed XML: \(detail)")
    }

    /// libxml2's most common well-formedness errors, by code (libxml/xmlerror.h).
    static let libxml2Errors: [Int: String] = [
        4: "document is empty", 5: "unexpected end of data or extra content after the root element",
        9: "invalid character", 23: "entity reference without ';'", 26: "undeclared entity",
        33: "string not started", 34: "string not closed", 38: "'<' inside an attribute value",
        39: "attribute value not quoted", 40: "attribute value not finished", 41: "attribute without value",
        42: "attribute given twice", 45: "comment not finished", 65: "space required", 68: "name expected",
        73: "'>' expected", 74: "'</' expected", 76: "end tag does not match its start tag",
        77: "element not closed",
    ]

    static func describe(_ error: NSError) -> String {
        if let message = error.userInfo[NSLocalizedDescriptionKey] as? String, !message.isEmpty {
            return message.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let known = libxml2Errors[error.code] { return "\(known) (libxml2 error \(error.code))" }
        return "libxml2 error \(error.code)"
    }

    /// The SAX handler. Stops at the first problem and keeps it in `error`.
    private final class Handler: NSObject, XMLParserDelegate {
        let file: String
        var assembler: TraceAssembler
        private(set) var error: InputError?
        private(set) var rootName: String?
        private(set) var rootClosed = false
        /// Last line the parser reported (for errors found after parsing).
        private(set) var lastLine: Int?
        /// The first well-formedness error libxml2 reported, and its line.
        private(set) var xmlFailure: (line: Int, error: Error?)?

        private var depth = 0
        /// Time of the `<timestep>` being read; nil outside one.
        private var currentTime: Double?
        private var previousTime: Double?
        /// The previous timestep's `time` attribute as written, for messages.
        private var previousTimeText = ""
        /// Line of a `fcd-output.geo` option set to true in SUMO's embedded configuration comment.
        private var geoOptionLine: Int?

        init(file: String, assembler: TraceAssembler) {
            self.file = file
            self.assembler = assembler
        }

        private func fail(_ parser: XMLParser, field: String? = nil, _ message: String) {
            guard error == nil else { return }
            error = InputError(file: file, line: parser.lineNumber, field: field, message)
            parser.abortParsing()
        }

        func parser(_ parser: XMLParser, foundComment comment: String) {
            lastLine = parser.lineNumber
            guard rootName == nil, geoOptionLine == nil,
                let match = comment.range(
                    of: #"fcd-output\.geo\s+value\s*=\s*"(true|1|yes|on|t|x)""#,
                    options: [.regularExpression, .caseInsensitive])
            else { return }
            // The parser reports the line where the comment ends; count back to the option's line.
            let linesAfter = comment[match.upperBound...].reduce(0) { $1 == "\n" ? $0 + 1 : $0 }
            geoOptionLine = parser.lineNumber - linesAfter
        }

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?, attributes: [String: String]
        ) {
            guard error == nil else { return }
            lastLine = parser.lineNumber
            depth += 1
            if depth == 1 {
                rootName = elementName
                guard elementName == "fcd-export" else {
                    return fail(
                        parser,
                        "unknown trace format: XML root element <\(elementName)>; expected SUMO FCD <fcd-export>")
                }
                if let line = geoOptionLine {
                    error = InputError(
                        file: file, line: line, field: "fcd-output.geo",
                        "geo coordinates (lon/lat) are not supported yet; export x/y in metres (run SUMO without --fcd-output.geo)")
                    parser.abortParsing()
                }
                return
            }
            switch elementName {
            case "timestep": startTimestep(parser, attributes)
            case "vehicle": readVehicle(parser, attributes)
            default: break  // <person>, <container>, anything else: not ours.
            }
        }

        private func startTimestep(_ parser: XMLParser, _ attributes: [String: String]) {
            guard currentTime == nil else {
                return fail(parser, "<timestep> inside another <timestep>; expected </timestep> first")
            }
            guard let text = attributes["time"] else {
                return fail(parser, field: "time", "missing attribute; expected <timestep time=\"seconds\">")
            }
            guard let time = parseNumber(text) else {
                return fail(parser, field: "time", "expected a number of seconds, found \"\(text)\"")
            }
            if let previous = previousTime, time <= previous {
                let what = time == previous ? "repeats" : "goes backwards from"
                return fail(
                    parser, field: "time",
                    "time \(what) the previous timestep (\(text) after \(previousTimeText)); expected increasing times")
            }
            currentTime = time
            previousTime = time
            previousTimeText = text
        }

        private func readVehicle(_ parser: XMLParser, _ attributes: [String: String]) {
            guard let time = currentTime else {
                return fail(parser, "<vehicle> outside a <timestep>; expected it inside <timestep time=\"…\">")
            }
            if attributes["lon"] != nil || attributes["lat"] != nil {
                return fail(
                    parser, field: attributes["lon"] != nil ? "lon" : "lat",
                    "geo coordinates (lon/lat) are not supported yet; export x/y in metres (run SUMO without --fcd-output.geo)")
            }
            guard let id = attributes["id"] else {
                return fail(parser, field: "id", "missing attribute; expected the vehicle id")
            }
            guard !id.isEmpty else {
                return fail(parser, field: "id", "empty vehicle id; expected a non-empty id")
            }
            var coordinates: [Double] = []
            for name in ["x", "y"] {
                guard let text = attributes[name] else {
                    return fail(parser, field: name, "missing attribute; expected a coordinate in metres")
                }
                guard let value = parseNumber(text) else {
                    return fail(parser, field: name, "expected a coordinate in metres, found \"\(text)\"")
                }
                coordinates.append(value)
            }
            var optional: [Double?] = []
            for name in ["speed", "angle"] {
                guard let text = attributes[name] else {
                    optional.append(nil)
                    continue
                }
                guard let value = parseNumber(text) else {
                    return fail(parser, field: name, "expected a number, found \"\(text)\"")
                }
                optional.append(value)
            }
            let sample = TraceSample(
                time: time, position: Position(x: coordinates[0], y: coordinates[1]),
                speed: optional[0], angle: optional[1])
            if assembler.append(sample, vehicleID: id) != nil {
                // Timesteps strictly increase, so a conflict can only be a repeat within this timestep.
                fail(parser, field: "id", "vehicle \"\(id)\" appears twice in the timestep at time \(time)")
            }
        }

        func parser(
            _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?
        ) {
            guard error == nil else { return }
            lastLine = parser.lineNumber
            depth -= 1
            if depth == 0 {
                rootClosed = true
            } else if elementName == "timestep" {
                currentTime = nil
            }
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
            guard error == nil, xmlFailure == nil else { return }
            xmlFailure = (parser.lineNumber, parseError)
            parser.abortParsing()
        }
    }
}
