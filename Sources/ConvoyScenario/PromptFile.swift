import ConvoyCore
import Foundation

/// A task's real prompts (`prompts:` of a task): one prompt per line, as JSON Lines (`.jsonl`:
/// each line an object with a `prompt` string, or a JSON string) or CSV (`.csv`: a header naming a
/// `prompt` column; fields quoted per RFC 4180 when they hold commas or quotes; a prompt cannot
/// span lines). Blank lines are skipped. Each vehicle draws its requests' prompts from the list
/// with the task's own seeded stream.
public enum PromptFile {
    /// Most prompts in one file, and longest prompt (bytes): what a request can carry.
    public static let maxPrompts = 100_000
    public static let maxPromptBytes = 16_384

    public static func load(path: String) throws -> [String] {
        let data = try readWholeFile(path: path, expected: "a prompt file (.jsonl or .csv)")
        guard let text = String(data: data, encoding: .utf8) else { throw InputError(file: path, "not UTF-8 text") }
        return try parse(text, file: path, csv: path.lowercased().hasSuffix(".csv"))
    }

    public static func parse(_ text: String, file: String, csv: Bool) throws -> [String] {
        var prompts: [String] = []
        var column: (index: Int, count: Int)?
        // "\r\n" is one Character in Swift: both line ends split.
        for (index, content) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = index + 1
            if content.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let prompt: String
            if csv {
                let fields = try csvFields(content, file: file, line: line)
                guard let header = column else {
                    guard let at = fields.firstIndex(of: "prompt") else {
                        throw InputError(file: file, line: line, field: "prompt", "the header must name a prompt column")
                    }
                    column = (at, fields.count)
                    continue
                }
                guard fields.count == header.count else {
                    throw InputError(file: file, line: line, "expected \(header.count) fields, got \(fields.count)")
                }
                prompt = fields[header.index]
            } else {
                prompt = try jsonPrompt(String(content), file: file, line: line)
            }
            guard !prompt.isEmpty else { throw InputError(file: file, line: line, field: "prompt", "empty prompt") }
            guard prompt.utf8.count <= maxPromptBytes else {
                throw InputError(file: file, line: line, field: "prompt",
                                 "prompt of \(prompt.utf8.count) bytes; at most \(maxPromptBytes) (it travels in one request)")
            }
            prompts.append(prompt)
            guard prompts.count <= maxPrompts else { throw InputError(file: file, line: line, "more than \(maxPrompts) prompts") }
        }
        guard !prompts.isEmpty else { throw InputError(file: file, "no prompts: expected one prompt per line") }
        return prompts
    }

    private static func jsonPrompt(_ line: String, file: String, line number: Int) throws -> String {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])
        } catch {
            throw InputError(file: file, line: number, "not JSON: expected {\"prompt\": \"…\"} or a JSON string per line")
        }
        if let string = value as? String { return string }
        guard let object = value as? [String: Any] else {
            throw InputError(file: file, line: number, "expected {\"prompt\": \"…\"} or a JSON string")
        }
        guard let prompt = object["prompt"] as? String else {
            throw InputError(file: file, line: number, field: "prompt", "missing, or not a string")
        }
        return prompt
    }

    /// The fields of one CSV record (RFC 4180 quoting, within one line).
    static func csvFields(_ line: Substring, file: String, line number: Int) throws -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    var lookahead = chars
                    if lookahead.next() == "\"" {
                        field.append("\"")
                        chars = lookahead
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
            } else if c == "," {
                fields.append(field)
                field = ""
                wasQuoted = false
            } else if c == "\"" && field.isEmpty && !wasQuoted {
                quoted = true
                wasQuoted = true
            } else {
                field.append(c)
            }
        }
        guard !quoted else { throw InputError(file: file, line: number, "unterminated quoted field (a prompt cannot span lines)") }
        fields.append(field)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
