import ConvoyCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads SUMO FCD XML (`sumo --fcd-output file.xml`), streaming it with `XMLScanner`.
///
/// Structure: `<fcd-export>` holding `<timestep time="…">` elements in strictly increasing time, each
/// holding `<vehicle id="…" x="…" y="…" [speed="…"] [angle="…"] …/>`. Other attributes and other
/// elements (`<person>`, `<container>`, …) are ignored; empty timesteps are fine.
///
/// Coordinates: x/y metres by default. Geo output is recognised two ways: `lon`/`lat` attributes
/// (older SUMO), or degrees in `x`/`y` announced by `<fcd-output.geo value="true"/>` in the
/// configuration SUMO embeds in a comment before the root element; `<fcd-output.utm value="true"/>`
/// announces UTM metres. With a configuration comment that announces neither, x/y are metres; with
/// no comment at all, the values decide (see `CoordinateInterpretation.auto`).
enum FCDXMLReader {
    static func read(_ buffer: StreamBuffer, into assembler: inout TraceAssembler) throws(InputError) {
        var scanner = XMLScanner(buffer: buffer, expectedRoot: "fcd-export")
        let file = buffer.file
        var currentTime: Double?
        var previousTime: Double?
        var previousTimeText = ""
        var rootSeen = false
        var lonLatAttributes: Bool?
        /// Vehicle indices in the order of the previous timestep, and of this one so far.
        var previousSlots: [Int] = [], currentSlots: [Int] = []
        var slot = 0
        /// Raw id bytes (as written, entities undecoded) by vehicle index.
        var idBytes: [[UInt8]] = []

        func fail(_ field: String?, _ message: String) -> InputError {
            InputError(file: file, line: scanner.tokenLine, field: field, message)
        }
        func number(_ range: Range<Int>) -> Double? {
            scanner.buffer.bytes.withUnsafeBufferPointer { window in parseDecimal(window.baseAddress! + range.lowerBound, range.count) }
        }
        func text(_ range: Range<Int>) -> String { String(decoding: scanner.bytes(range), as: UTF8.self) }
        /// A short excerpt of the text in `range`, for error messages.
        func quote(_ range: Range<Int>) -> String { excerpt(bytes: scanner.bytes(range)) }

        while true {
            let token = try scanner.next()
            switch token {
            case .endOfDocument:
                return
            case .comment(let range):
                guard !rootSeen else { continue }
                let comment = text(range)
                if comment.contains("<sumoConfiguration") { assembler.declared = .metric }
                for (option, kind) in [("fcd-output.geo", DeclaredCoordinates.geographic), ("fcd-output.utm", .utm)] {
                    if comment.range(
                        of: #"<\#(option)\s+value\s*=\s*"(true|1|yes|on|t|x)""#, options: [.regularExpression, .caseInsensitive]) != nil
                    {
                        assembler.declared = kind
                    }
                }
            case .end(let name):
                if scanner.equals(name, "timestep") { currentTime = nil }
            case .start(let name, let selfClosing):
                if !rootSeen {
                    rootSeen = true
                    guard scanner.equals(name, "fcd-export") else {
                        throw InputError(
                            file: file, line: scanner.tokenLine,
                            "unknown trace format: XML root element <\(quote(name))>; expected SUMO FCD <fcd-export>")
                    }
                    continue
                }
                if scanner.equals(name, "vehicle") {
                    guard let time = currentTime else {
                        throw fail(nil, "<vehicle> outside a <timestep>; expected it inside <timestep time=\"…\">")
                    }
                    // One pass over the attributes, by length and bytes.
                    var idRange: Range<Int>?, xRange: Range<Int>?, yRange: Range<Int>?, lonRange: Range<Int>?, latRange: Range<Int>?
                    var speedRange: Range<Int>?, angleRange: Range<Int>?
                    scanner.buffer.bytes.withUnsafeBufferPointer { window in
                        for attribute in scanner.attributes {
                            let n = attribute.name
                            let p = window.baseAddress! + n.lowerBound
                            switch n.count {
                            case 1:
                                if p[0] == UInt8(ascii: "x") { xRange = attribute.value } else if p[0] == UInt8(ascii: "y") { yRange = attribute.value }
                            case 2:
                                if p[0] == UInt8(ascii: "i") && p[1] == UInt8(ascii: "d") { idRange = attribute.value }
                            case 3:
                                if memcmp(p, "lon", 3) == 0 { lonRange = attribute.value } else if memcmp(p, "lat", 3) == 0 { latRange = attribute.value }
                            case 5:
                                if memcmp(p, "speed", 5) == 0 { speedRange = attribute.value } else if memcmp(p, "angle", 5) == 0 { angleRange = attribute.value }
                            default:
                                break
                            }
                        }
                    }
                    guard let idRange else { throw fail("id", "missing attribute; expected the vehicle id") }
                    guard !idRange.isEmpty else { throw fail("id", "empty vehicle id; expected a non-empty id") }
                    // lon/lat attributes (older SUMO geo output) or x/y.
                    let useLonLat = lonRange != nil || latRange != nil
                    if lonLatAttributes == nil {
                        lonLatAttributes = useLonLat
                        if useLonLat { assembler.declared = .geographic }
                    } else if lonLatAttributes != useLonLat {
                        throw fail(useLonLat ? "lon" : "x", "mixes lon/lat and x/y coordinates; expected one kind throughout the file")
                    }
                    let names: (String, String) = useLonLat ? ("lon", "lat") : ("x", "y")
                    let what = useLonLat ? "degrees" : "a coordinate in metres"
                    guard let xRange = useLonLat ? lonRange : xRange else { throw fail(names.0, "missing attribute; expected \(what)") }
                    guard let x = number(xRange) else { throw fail(names.0, "expected \(what), found \"\(quote(xRange))\"") }
                    guard let yRange = useLonLat ? latRange : yRange else { throw fail(names.1, "missing attribute; expected \(what)") }
                    guard let y = number(yRange) else { throw fail(names.1, "expected \(what), found \"\(quote(yRange))\"") }
                    var speed: Double?
                    if let range = speedRange {
                        guard let value = number(range) else { throw fail("speed", "expected a number, found \"\(quote(range))\"") }
                        speed = value
                    }
                    var angle: Double?
                    if let range = angleRange {
                        guard let value = number(range) else { throw fail("angle", "expected a number, found \"\(quote(range))\"") }
                        angle = value
                    }
                    let sample = TraceSample(time: time, position: Position(x: x, y: y), speed: speed, angle: angle)
                    // Fast path: SUMO lists vehicles in the same order step after step, so the vehicle at
                    // this slot (or the next, when one left) last step is usually this one: compare bytes
                    // instead of making a String and hashing it.
                    var vehicle = -1
                    scanner.buffer.bytes.withUnsafeBufferPointer { window in
                        let idStart = window.baseAddress! + idRange.lowerBound
                        var candidateSlot = slot
                        while candidateSlot < min(slot + 2, previousSlots.count) {
                            let candidate = previousSlots[candidateSlot]
                            candidateSlot += 1
                            let known = idBytes[candidate]
                            if known.count == idRange.count, known.withUnsafeBufferPointer({ memcmp($0.baseAddress!, idStart, known.count) == 0 }) {
                                vehicle = candidate
                                break
                            }
                        }
                    }
                    if vehicle < 0 {
                        let id = try scanner.string(idRange)
                        vehicle = assembler.vehicleIndex(id)
                        if vehicle == idBytes.count { idBytes.append(Array(scanner.bytes(idRange))) }
                    }
                    currentSlots.append(vehicle)
                    slot += 1
                    if try assembler.append(sample, vehicle: vehicle, line: scanner.tokenLine, names: useLonLat ? .geographic : .metric)
                        != nil
                    {
                        // Timesteps strictly increase, so a conflict can only be a repeat within this timestep.
                        let id = try scanner.string(idRange)
                        throw fail("id", "vehicle \"\(excerpt(id))\" appears twice in the timestep at time \(excerpt(previousTimeText))")
                    }
                } else if scanner.equals(name, "timestep") {
                    guard currentTime == nil else {
                        throw fail(nil, "<timestep> inside another <timestep>; expected </timestep> first")
                    }
                    guard let range = scanner.attribute("time") else {
                        throw fail("time", "missing attribute; expected <timestep time=\"seconds\">")
                    }
                    guard let time = number(range) else {
                        throw fail("time", "expected a number of seconds, found \"\(quote(range))\"")
                    }
                    if let problem = timeProblem(time) { throw fail("time", problem) }
                    if let previous = previousTime, time <= previous {
                        let what = time == previous ? "repeats" : "goes backwards from"
                        throw fail(
                            "time",
                            "time \(what) the previous timestep (\(quote(range)) after \(excerpt(previousTimeText))); expected increasing times")
                    }
                    previousTime = time
                    swap(&previousSlots, &currentSlots)
                    currentSlots.removeAll(keepingCapacity: true)
                    slot = 0
                    previousTimeText = excerpt(bytes: scanner.bytes(range))
                    if !selfClosing { currentTime = time }
                }
                // <person>, <container>, anything else: not ours.
            }
        }
    }
}
