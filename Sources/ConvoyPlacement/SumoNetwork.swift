import ConvoyCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The parts of a SUMO road network (`.net.xml`) that RSU placement needs: junctions and the
/// (non-internal) edges with their priority and geometry, in the network's x/y metres.
public struct SumoNetwork: Sendable, Equatable {
    public struct Junction: Sendable, Equatable {
        public var id: String
        /// SUMO junction type: `traffic_light`, `priority`, `right_before_left`, `dead_end`, …
        public var type: String
        public var position: Position

        /// Whether the junction is signalised (`traffic_light`, `traffic_light_unregulated`,
        /// `traffic_light_right_on_red`).
        public var hasTrafficLight: Bool { type.hasPrefix("traffic_light") }
    }

    public struct Edge: Sendable, Equatable {
        public var id: String
        public var from: String
        public var to: String
        /// SUMO's road priority (higher is more important); -1 when the network leaves it unset.
        public var priority: Int
        /// The edge's geometry: its `shape` attribute, else its first lane's shape, else from→to.
        public var shape: [Position]

        /// Length of `shape` in metres.
        public var length: Double {
            zip(shape, shape.dropFirst()).reduce(0) { $0 + $1.0.distance(to: $1.1) }
        }
    }

    /// Non-internal junctions, in file order.
    public var junctions: [Junction]
    /// Non-internal edges (no `function="internal"`, `crossing`, `walkingarea`), in file order.
    public var edges: [Edge]

    public init(junctions: [Junction], edges: [Edge]) {
        self.junctions = junctions
        self.edges = edges
    }

    /// Reads a SUMO network streaming with `XMLParser` (the file is never held whole in memory).
    /// Throws an `InputError` naming the file and line for unreadable or malformed XML, a root other
    /// than `<net>`, and a junction or lane with a missing or non-numeric coordinate.
    public static func load(path: String) throws -> SumoNetwork {
        // A FIFO or device would block the parser: only a regular file is opened.
        _ = try readPrefix(path: path, maxBytes: 0, expected: "a SUMO network (.net.xml)")
        guard let stream = InputStream(fileAtPath: path) else {
            throw InputError(file: path, "cannot open the file for reading (missing or not readable)")
        }
        let parser = XMLParser(stream: stream)
        let handler = NetHandler(file: path)
        parser.delegate = handler
        let ok = parser.parse()
        if let error = handler.error { throw error }
        if !ok {
            let reason = (parser.parserError as NSError?).map { "libxml2 error \($0.code)" } ?? "unknown parser error"
            throw InputError(file: path, line: parser.lineNumber, "malformed or truncated XML (\(reason)); expected a SUMO network")
        }
        guard handler.sawRoot else { throw InputError(file: path, "no <net> element; expected a SUMO network (.net.xml)") }
        guard handler.rootClosed else {
            throw InputError(file: path, line: parser.lineNumber, "truncated XML: the file ends before </net>")
        }
        var edges = handler.edges
        for index in edges.indices where edges[index].shape.count < 2 {
            // No shape at all: a straight line between the junctions.
            let ends = [edges[index].from, edges[index].to].compactMap { handler.junctionPositions[$0] }
            edges[index].shape = ends.count == 2 ? ends : []
        }
        return SumoNetwork(junctions: handler.junctions, edges: edges.filter { $0.shape.count >= 2 })
    }

    private final class NetHandler: NSObject, XMLParserDelegate {
        let file: String
        var junctions: [Junction] = []
        var junctionPositions: [String: Position] = [:]
        var edges: [Edge] = []
        var error: InputError?
        var sawRoot = false
        var rootClosed = false
        /// The edge being read (lanes fill in its shape); nil inside internal edges.
        private var currentEdge: Edge?
        private var inEdge = false

        init(file: String) { self.file = file }

        private func fail(_ parser: XMLParser, field: String, _ message: String) {
            guard error == nil else { return }
            error = InputError(file: file, line: parser.lineNumber, field: field, message)
            parser.abortParsing()
        }

        private func number(_ parser: XMLParser, _ attributes: [String: String], _ name: String, element: String) -> Double? {
            guard let text = attributes[name] else {
                fail(parser, field: name, "missing attribute of <\(element)>; expected a number")
                return nil
            }
            guard let value = Double(text), value.isFinite else {
                fail(parser, field: name, "expected a number, found \"\(text.prefix(40))\"")
                return nil
            }
            guard abs(value) <= Position.maxCoordinate else {
                fail(parser, field: name, "\(value) m is outside the supported range; expected |\(name)| ≤ 1e9 m")
                return nil
            }
            return value
        }

        private func shape(_ parser: XMLParser, _ text: String) -> [Position]? {
            var points: [Position] = []
            for pair in text.split(separator: " ") {
                let xy = pair.split(separator: ",")
                guard xy.count >= 2, let x = Double(xy[0]), let y = Double(xy[1]),
                      abs(x) <= Position.maxCoordinate, abs(y) <= Position.maxCoordinate else {
                    fail(parser, field: "shape", "expected \"x,y x,y …\" in metres within ±1e9, found \"\(pair.prefix(40))\"")
                    return nil
                }
                points.append(Position(x: x, y: y))
            }
            return points
        }

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?,
            attributes: [String: String]
        ) {
            guard error == nil else { return }
            switch elementName {
            case "net":
                sawRoot = true
            case "junction":
                guard let id = attributes["id"] else { return fail(parser, field: "id", "missing attribute of <junction>") }
                let type = attributes["type"] ?? "unknown"
                guard type != "internal" else { return }
                guard let x = number(parser, attributes, "x", element: "junction"),
                    let y = number(parser, attributes, "y", element: "junction")
                else { return }
                let junction = Junction(id: id, type: type, position: Position(x: x, y: y))
                junctions.append(junction)
                junctionPositions[id] = junction.position
            case "edge":
                inEdge = true
                let function = attributes["function"] ?? "normal"
                guard function == "normal" || function.isEmpty else { return }
                guard let id = attributes["id"] else { return fail(parser, field: "id", "missing attribute of <edge>") }
                let priority = attributes["priority"].flatMap { Int($0) } ?? -1
                var edge = Edge(id: id, from: attributes["from"] ?? "", to: attributes["to"] ?? "", priority: priority, shape: [])
                if let text = attributes["shape"] {
                    guard let points = shape(parser, text) else { return }
                    edge.shape = points
                }
                currentEdge = edge
            case "lane":
                guard inEdge, var edge = currentEdge, edge.shape.isEmpty, let text = attributes["shape"] else { return }
                guard let points = shape(parser, text) else { return }
                edge.shape = points
                currentEdge = edge
            default:
                break
            }
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
            if elementName == "net" { rootClosed = true }
            guard elementName == "edge" else { return }
            if let edge = currentEdge { edges.append(edge) }
            currentEdge = nil
            inEdge = false
        }
    }
}
