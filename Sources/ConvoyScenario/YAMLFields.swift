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

    /// The text of a YAML file, or an InputError naming it: a missing file, a directory, a file
    /// that is not readable, or bytes that are not UTF-8 (with the line and column of the first
    /// bad byte).
    static func readText(_ path: String, what: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw InputError(file: path, "no such file (expected the \(what), a YAML file)")
        }
        let data = try readWholeFile(path: path, expected: "the \(what) (a YAML file)")
        return try utf8Text(Array(data), file: path)
    }

    /// `bytes` as UTF-8 text, or an InputError at the line and column of the first invalid byte.
    static func utf8Text(_ bytes: [UInt8], file: String) throws -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        // Decode scalar by scalar to find where it breaks.
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var line = 1, column = 1, offset = 0
        while true {
            let before = offset
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                throw InputError(file: file, "not UTF-8 text")
            case .error:
                let byte = bytes[before]
                throw InputError(file: file, line: line, "not UTF-8 text: invalid byte 0x\(String(byte, radix: 16, uppercase: true)) "
                                 + "at column \(column); save the file as UTF-8")
            }
        }
    }

    static func document(_ text: String, file: String) throws -> YAMLFields {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch YamlError.duplicatedKeysInMapping(let keys, let context) {
            let key = keys.first ?? "?"
            let first = context.mark.line
            let again = Self.lineOfRepeat(key: key, after: context.mark, in: text)
            throw InputError(file: file, line: again ?? first, field: key,
                             "duplicate key: '\(key)' is already set at line \(first); give each key once")
        } catch let error as YamlError {
            throw InputError(file: file, line: Self.line(of: error), "not valid YAML: \(Self.firstLine(of: error))")
        }
        guard let root else { throw InputError(file: file, line: 1, "the file is empty") }
        return try YAMLFields(root, file: file, path: "")
    }

    /// The line where `key` is set again in the same mapping as its first occurrence at `mark`
    /// (same indentation, a later line), if it can be found in the text.
    private static func lineOfRepeat(key: String, after mark: Mark, in text: String) -> Int? {
        let indent = String(repeating: " ", count: max(0, mark.column - 1))
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 > mark.line {
            guard line.hasPrefix(indent) else { continue }
            let rest = line.dropFirst(indent.count)
            for form in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(form) {
                if rest.dropFirst(form.count).drop(while: { $0 == " " }).hasPrefix(":") { return index + 1 }
            }
        }
        return nil
    }

    /// Yams' message without the quoted document it appends.
    private static func firstLine(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
        default: String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
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
            // A typo of a required key reads better as what it is.
            if let typo = mapping.keys.first(where: { k in k.string.map { !used.contains($0) && Self.isTypo($0, of: key) } ?? false }) {
                throw InputError(file: file, line: typo.mark?.line, field: qualified(typo.string ?? "?"),
                                 "unknown key '\(typo.string ?? "?")'; did you mean '\(key)'?")
            }
            throw InputError(file: file, line: node.mark?.line, field: qualified(key), "missing (required)")
        }
        return v
    }

    /// True when `candidate` is `key` with at most two letters changed, added or removed.
    static func isTypo(_ candidate: String, of key: String) -> Bool {
        candidate != key && editDistance(Array(candidate.lowercased()), Array(key.lowercased()), limit: 2) <= 2
    }

    /// Levenshtein distance of `a` and `b`, or `limit + 1` once it exceeds `limit`.
    static func editDistance(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        guard abs(a.count - b.count) <= limit else { return limit + 1 }
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, cb) in b.enumerated() {
                current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
            }
            if current.min()! > limit { return limit + 1 }
            previous = current
        }
        return previous[b.count]
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

    mutating func optionalDouble(_ key: String, min: Double? = nil, above: Double? = nil, max: Double? = nil) throws -> Double? {
        guard let v = value(key) else { return nil }
        return try number(key, node: v, min: min, above: above, max: max)
    }

    mutating func int(_ key: String, default fallback: Int, min: Int, max: Int = .max, why: String = "") throws -> Int {
        guard let v = value(key) else { return fallback }
        guard let n = v.int else { throw error(key, "expected an integer, got '\(v.string ?? "?")'", at: v) }
        guard n >= min else { throw error(key, "expected an integer ≥ \(min), got \(n)", at: v) }
        guard n <= max else { throw error(key, "expected an integer ≤ \(max)\(why), got \(n)", at: v) }
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
                if let meant = used.sorted().first(where: { Self.isTypo(key, of: $0) }) {
                    throw InputError(file: file, line: k.mark?.line ?? v.mark?.line, field: qualified(key),
                                     "unknown key '\(key)'; did you mean '\(meant)'?")
                }
                let known = used.sorted().joined(separator: ", ")
                throw InputError(file: file, line: k.mark?.line ?? v.mark?.line, field: qualified(key),
                                 "unknown key (known here: \(known))")
            }
        }
    }
}
