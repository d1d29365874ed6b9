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

        /// Adds a sample unless the node already has one at or after `time`.
        func emit(_ node: Node, time: Double, position: Position, speed: Double?) {
            if let last = assembler.lastSample(vehicle: node.index), last.time >= time { return }
            _ = assembler.append(TraceSample(time: time, position: position, speed: speed), vehicle: node.index)
        }

        while let raw = try buffer.nextLine() {
            lineNumber += 1
            let line = String(decoding: raw, as: UTF8.self)
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                .filter { !$0.isEmpty }
            guard let first = tokens.first, !first.hasPrefix("#") else { continue }
            func fail(_ field: String?, _ message: String) -> InputError {
                InputError(file: file, line: lineNumber, field: field, message)
            }
            func number(_ text: String, _ field: String, _ what: String) throws(InputError) -> Double {
                guard let value = parseNumber(text) else { throw fail(field, "expected \(what), found \"\(text)\"") }
                return value
            }
            func nodeID(_ token: String) throws(InputError) -> String {
                guard token.hasPrefix("$node_("), token.hasSuffix(")"), token.count > 8 else {
                    throw fail(nil, "expected $node_(id), found \"\(token)\"")
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
                let value = try number(tokens[3], tokens[2], "a coordinate in metres")
                switch tokens[2] {
                case "X_": n.initialX = value
                case "Y_": n.initialY = value
                case "Z_": break
                default: throw fail(tokens[2], "unknown node variable; expected X_, Y_ or Z_")
                }
                nodes[id] = n
            } else if tokens.count == 8, tokens[0] == "$ns_", tokens[1] == "at", tokens[4] == "setdest" {
                let time = try number(tokens[2], "time", "a number of seconds")
                let id = try nodeID(tokens[3])
                var n = node(id)
                let destination = Position(
                    x: try number(tokens[5], "x", "a coordinate in metres"), y: try number(tokens[6], "y", "a coordinate in metres"))
                let speed = try number(tokens[7], "speed", "a speed in m/s")
                guard speed >= 0 else { throw fail("speed", "expected a speed ≥ 0, found \"\(tokens[7])\"") }
                if let last = n.lastCommand, time < last {
                    throw fail("time", "time goes backwards for node \(id) (\(tokens[2]) after \(last)); expected increasing times per node")
                }
                let current: Position
                if n.lastCommand == nil {
                    guard let x0 = n.initialX, let y0 = n.initialY else {
                        throw fail(n.initialX == nil ? "X_" : "Y_", "setdest for node \(id) before its initial position; expected $node_(\(id)) set X_/Y_ first")
                    }
                    current = Position(x: x0, y: y0)
                } else {
                    if n.moving, n.arrival <= time, time - n.arrival > arrivalTolerance {
                        emit(n, time: n.arrival, position: n.to, speed: 0)
                    }
                    current = n.position(at: time)
                }
                emit(n, time: time, position: current, speed: speed)
                let distance = current.distance(to: destination)
                n.from = current
                n.to = speed > 0 ? destination : current
                n.start = time
                n.arrival = speed > 0 ? time + distance / speed : time
                n.moving = speed > 0 && distance > 0
                n.speed = speed
                n.lastCommand = time
                nodes[id] = n
            } else {
                throw fail(nil, "unknown ns-2 mobility command \"\(line.trimmingCharacters(in: .whitespaces))\"; expected "
                                + "$node_(i) set X_|Y_|Z_ value or $ns_ at t \"$node_(i) setdest x y speed\"")
            }
        }
        // Final arrivals, and nodes that never moved.
        for id in order {
            guard let n = nodes[id] else { continue }
            if n.lastCommand == nil {
                guard let x0 = n.initialX, let y0 = n.initialY else {
                    throw InputError(file: file, field: n.initialX == nil ? "X_" : "Y_", "node \(id) has no initial position; expected $node_(\(id)) set X_ and Y_")
                }
                emit(n, time: 0, position: Position(x: x0, y: y0), speed: nil)
            } else if n.moving {
                emit(n, time: n.arrival, position: n.to, speed: 0)
            }
        }
    }
}

import Foundation
