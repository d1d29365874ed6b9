import ConvoyCore

/// Reads ns-2 mobility scripts (`traceExporter.py --ns2mobility-output`, BonnMotion, setdest), line
/// by line:
///
///     $node_(0) set X_ 696.83          initial position (Z_ is ignored)
///     $node_(0) set Y_ 975.3
///     $ns_ at 300.0 "$node_(0) setdest 708.46 971.02 12.40"
///
/// `setdest x y speed` at time t means: from wherever the node is at t, move in a straight line
/// towards (x, y) at `speed` m/s, then stay there. The trajectory gets a sample at each command's
/// time t (the node's position then) and one at each arrival time, unless the next command for that
/// node comes within `arrivalTolerance` of it (the node has then hardly waited; the sample at the
/// next command is at the destination anyway). A node's trajectory starts at its first `setdest`
/// (a node that never gets one has a single sample at time 0 at its initial position) and ends at
/// its last command or arrival. Node ids are the text in `$node_(…)`. Blank lines and `#` comments
/// are skipped; any other line is an error.
///
/// Every time and position is checked against `TraceLimits` on the line that gives it; an arrival
/// beyond 1e9 s (a tiny speed) is an error on the `setdest` line that set the movement, field `speed`.
enum NS2Reader {
    static let arrivalTolerance = 0.01

    static func detect(prefix: ArraySlice<UInt8>) -> Bool {
        var rest = prefix
        while !rest.isEmpty {
            let line = rest.prefix { $0 != UInt8(ascii: "\n") }
            rest = rest.dropFirst(line.count + 1)
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            return text.hasPrefix("$node_(") || text.hasPrefix("$ns_ ")
        }
        return false
    }

    /// A node's state while reading.
    struct Node {
        var index: Int
        var initialX: Double?
        var initialY: Double?
        /// The current movement: from `from` at `start` towards `to`, arriving at `arrival`.
        var from = Position(x: 0, y: 0), to = Position(x: 0, y: 0)
        var start = 0.0, arrival = 0.0
        var speed: Double?
        var moving = false
        var lastCommand: Double?
        /// The line of the last `setdest` (for errors about its arrival).
        var commandLine = 0

        func position(at t: Double) -> Position {
            guard moving, t < arrival, arrival > start else { return to }
            return from.interpolated(to: to, fraction: (t - start) / (arrival - start))
        }
    }

    static func read(_ buffer: inout StreamBuffer, into assembler: inout TraceAssembler) throws(InputError) {
        let file = buffer.file
        var nodes: [String: Node] = [:]
        var order: [String] = []
        var lineNumber = 0
        assembler.declared = .metric

        /// Adds a sample unless the node already has one at or after `time`; `line` is the line that
        /// gave it.
        func emit(_ node: Node, time: Double, position: Position, speed: Double?, line: Int?) throws(InputError) {
            if let last = assembler.lastSample(vehicle: node.index), last.time >= time { return }
            _ = try assembler.append(TraceSample(time: time, position: position, speed: speed), vehicle: node.index, line: line, names: .metric)
        }
        /// Adds the arrival sample of the node's current movement, refusing an arrival beyond
        /// `TraceLimits.maxTime` on the line of the `setdest` that set the movement.
        func emitArrival(_ node: Node, id: String) throws(InputError) {
            if timeProblem(node.arrival) != nil {
                throw InputError(
                    file: file, line: node.commandLine, field: "speed",
                    "at \(describeNumber(node.speed ?? 0)) m/s node \(excerpt(id)) would reach (\(describeNumber(node.to.x)), "
                        + "\(describeNumber(node.to.y))) at time \(describeNumber(node.arrival)) s, beyond the supported "
                        + "|time| ≤ 1e9 s; expected a larger speed")
            }
            try emit(node, time: node.arrival, position: node.to, speed: 0, line: node.commandLine)
        }

        while let raw = try buffer.nextLine(lineNumber: lineNumber + 1) {
            lineNumber += 1
            let line = String(decoding: raw, as: UTF8.self)
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                .filter { !$0.isEmpty }
            guard let first = tokens.first, !first.hasPrefix("#") else { continue }
            func fail(_ field: String?, _ message: String) -> InputError {
                InputError(file: file, line: lineNumber, field: field, message)
            }
            func number(_ text: String, _ field: String, _ what: String) throws(InputError) -> Double {
                guard let value = parseNumber(text) else { throw fail(field, "expected \(what), found \"\(excerpt(text))\"") }
                return value
            }
            /// A coordinate in metres, within `TraceLimits`.
            func coordinate(_ text: String, _ field: String, axis: SampleField) throws(InputError) -> Double {
                let value = try number(text, field, "a coordinate in metres")
                if let problem = coordinateProblem(value, axis: axis, geographic: false) { throw fail(field, problem) }
                return value
            }
            func nodeID(_ token: String) throws(InputError) -> String {
                guard token.hasPrefix("$node_("), token.hasSuffix(")"), token.count > 8 else {
                    throw fail(nil, "expected $node_(id), found \"\(excerpt(token))\"")
                }
                return String(token.dropFirst(7).dropLast())
            }
            func node(_ id: String) -> Node {
                if let node = nodes[id] { return node }
                order.append(id)
                return Node(index: assembler.vehicleIndex(id))
            }

            if tokens.count == 4, tokens[1] == "set" {
                // $node_(i) set X_ value
                let id = try nodeID(tokens[0])
                var n = node(id)
                switch tokens[2] {
                case "X_": n.initialX = try coordinate(tokens[3], "X_", axis: .x)
                case "Y_": n.initialY = try coordinate(tokens[3], "Y_", axis: .y)
                case "Z_": _ = try number(tokens[3], "Z_", "a coordinate in metres")
                default: throw fail(excerpt(tokens[2]), "unknown node variable; expected X_, Y_ or Z_")
                }
                nodes[id] = n
            } else if tokens.count == 8, tokens[0] == "$ns_", tokens[1] == "at", tokens[4] == "setdest" {
                let time = try number(tokens[2], "time", "a number of seconds")
                if let problem = timeProblem(time) { throw fail("time", problem) }
                let id = try nodeID(tokens[3])
                var n = node(id)
                let destination = Position(
                    x: try coordinate(tokens[5], "x", axis: .x), y: try coordinate(tokens[6], "y", axis: .y))
                let speed = try number(tokens[7], "speed", "a speed in m/s")
                guard speed >= 0 else { throw fail("speed", "expected a speed ≥ 0, found \"\(excerpt(tokens[7]))\"") }
                if let last = n.lastCommand, time < last {
                    throw fail(
                        "time",
                        "time goes backwards for node \(excerpt(id)) (\(excerpt(tokens[2])) after \(describeNumber(last))); "
                            + "expected increasing times per node")
                }
                let current: Position
                if n.lastCommand == nil {
                    guard let x0 = n.initialX, let y0 = n.initialY else {
                        throw fail(
                            n.initialX == nil ? "X_" : "Y_",
                            "setdest for node \(excerpt(id)) before its initial position; expected $node_(\(excerpt(id))) set X_/Y_ first")
                    }
                    current = Position(x: x0, y: y0)
                } else {
                    if n.moving, n.arrival <= time, time - n.arrival > arrivalTolerance {
                        try emitArrival(n, id: id)
                    }
                    current = n.position(at: time)
                }
                try emit(n, time: time, position: current, speed: speed, line: lineNumber)
                let distance = current.distance(to: destination)
                n.from = current
                n.to = speed > 0 ? destination : current
                n.start = time
                n.arrival = speed > 0 ? time + distance / speed : time
                n.moving = speed > 0 && distance > 0
                n.speed = speed
                n.lastCommand = time
                n.commandLine = lineNumber
                nodes[id] = n
            } else {
                throw fail(nil, "unknown ns-2 mobility command \"\(excerpt(line.trimmingCharacters(in: .whitespaces)))\"; expected "
                                + "$node_(i) set X_|Y_|Z_ value or $ns_ at t \"$node_(i) setdest x y speed\"")
            }
        }
        // Final arrivals, and nodes that never moved.
        for id in order {
            guard let n = nodes[id] else { continue }
            if n.lastCommand == nil {
                guard let x0 = n.initialX, let y0 = n.initialY else {
                    throw InputError(
                        file: file, field: n.initialX == nil ? "X_" : "Y_",
                        "node \(excerpt(id)) has no initial position; expected $node_(\(excerpt(id))) set X_ and Y_")
                }
                try emit(n, time: 0, position: Position(x: x0, y: y0), speed: nil, line: nil)
            } else if n.moving {
                try emitArrival(n, id: id)
            }
        }
    }
}

import Foundation
