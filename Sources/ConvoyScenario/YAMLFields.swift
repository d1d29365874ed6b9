import ConvoyCore
import Foundation
import Yams

/// A YAML mapping read field by field, with errors that name the file, line and field, and with
/// unknown keys rejected (a typo must not be silently ignored).
struct YAMLFields {
    let file: String
    let path: String
    let node: Node
    private let mapping: Node.Mapping
    private var used: Set<String> = []

    init(_ node: Node, file: String, path: String) throws {
        guard let mapping = node.mapping else {
            throw InputError(file: file, line: node.mark?.line, field: path.isEmpty ? nil : path, "expected a mapping (key: value)")
        }
        self.file = file
        self.path = path
        self.node = node
        self.mapping = mapping
    }

    /// The text of a YAML file, or an InputError naming it.
    static func readText(_ path: String, what: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw InputError(file: path, "cannot read the \(what): \(error.localizedDescription)")
        }
    }

    static func document(_ text: String, file: String) throws -> YAMLFields {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw InputError(file: file, line: Self.line(of: error), "not valid YAML: \(error)")
        }
        guard let root else { throw InputError(file: file, line: 1, "the file is empty") }
        return try YAMLFields(root, file: file, path: "")
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }

    func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ message: String, at node: Node? = nil) -> InputError {
        InputError(file: file, line: (node ?? self.node[key] ?? self.node).mark?.line, field: qualified(key), message)
    }

    /// The value at `key`; nil when absent or null (`key:` or `key: ~`).
    mutating func value(_ key: String) -> Node? {
        used.insert(key)
        guard let v = mapping[key], v.null == nil else { return nil }
        return v
    }

    mutating func required(_ key: String) throws -> Node {
        guard let v = value(key) else {
            throw InputError(file: file, line: node.mark?.line, field: qualified(key), "missing (required)")
        }
        return v
    }

    mutating func string(_ key: String) throws -> String {
        try string(key, node: try required(key))
    }

    mutating func optionalString(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        return try string(key, node: v)
    }

    private func string(_ key: String, node v: Node) throws -> String {
        guard case .scalar(let s) = v, !s.string.isEmpty else { throw error(key, "expected a non-empty string", at: v) }
        return s.string
    }

    mutating func double(_ key: String, min: Double? = nil, above: Double? = nil, max: Double? = nil) throws -> Double {
        try number(key, node: try required(key), min: min, above: above, max: max)
    }

    mutating func double(_ key: String, default fallback: Double, min: Double? = nil, above: Double? = nil, max: Double? = nil) throws -> Double {
        guard let v = value(key) else { return fallback }
        return try number(key, node: v, min: min, above: above, max: max)
    }

    mutating func optionalDouble(_ key: String, min: Double? = nil, above: Double? = nil) throws -> Double? {
        guard let v = value(key) else { return nil }
        return try number(key, node: v, min: min, above: above, max: nil)
    }

    mutating func int(_ key: String, default fallback: Int, min: Int) throws -> Int {
        guard let v = value(key) else { return fallback }
        guard let n = v.int else { throw error(key, "expected an integer, got '\(v.string ?? "?")'", at: v) }
        guard n >= min else { throw error(key, "expected an integer ≥ \(min), got \(n)", at: v) }
        return n
    }

    private func number(_ key: String, node v: Node, min: Double?, above: Double?, max: Double?) throws -> Double {
        guard let x = v.float ?? v.int.map(Double.init), x.isFinite else {
            throw error(key, "expected a number, got '\(v.string ?? "a non-scalar")'", at: v)
        }
        if let min, x < min { throw error(key, "expected a number ≥ \(min), got \(x)", at: v) }
        if let above, x <= above { throw error(key, "expected a number > \(above), got \(x)", at: v) }
        if let max, x > max { throw error(key, "expected a number ≤ \(max), got \(x)", at: v) }
        return x
    }

    mutating func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let v = value(key) else { return fallback }
        guard let b = v.bool else { throw error(key, "expected true or false, got '\(v.string ?? "a non-scalar")'", at: v) }
        return b
    }

    mutating func stringList(_ key: String) throws -> [String] {
        guard let v = value(key) else { return [] }
        guard case .sequence(let seq) = v else { throw error(key, "expected a list", at: v) }
        return try seq.map { item in
            guard case .scalar(let s) = item, !s.string.isEmpty else { throw error(key, "expected a list of strings", at: item) }
            return s.string
        }
    }

    mutating func list(_ key: String) throws -> [Node] {
        guard let v = value(key) else { return [] }
        guard case .sequence(let seq) = v else { throw error(key, "expected a list", at: v) }
        return Array(seq)
    }

    mutating func nested(_ key: String) throws -> YAMLFields? {
        guard let v = value(key) else { return nil }
        return try YAMLFields(v, file: file, path: qualified(key))
    }

    /// Throws if the mapping has a key that was never read.
    func rejectUnknownKeys() throws {
        for (k, v) in mapping {
            let key = k.string ?? "?"
            if !used.contains(key) {
                let known = used.sorted().joined(separator: ", ")
                throw InputError(file: file, line: k.mark?.line ?? v.mark?.line, field: qualified(key),
                                 "unknown key (known here: \(known))")
            }
        }
    }
}
