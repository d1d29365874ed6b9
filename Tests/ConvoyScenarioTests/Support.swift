import ConvoyCore
import Foundation
import Testing

/// The repository root: this file is Tests/ConvoyScenarioTests/Support.swift (symbolic links resolved, so that a
/// package that links the test directory in still finds the repository's maps).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs `body`, expecting an `InputError` with exactly this line and field, whose message contains `message`.
@discardableResult
func expectInputError(file: String? = nil, line: Int?, field: String?, message: String,
                      sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> InputError? {
    let error = #expect(throws: InputError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return nil }
    if let file { #expect(error.file == file, sourceLocation: sourceLocation) }
    #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
    #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
    #expect(error.message.contains(message), "\(error)", sourceLocation: sourceLocation)
    return error
}

/// `text` with its 1-based line `n` replaced by each of `edits[n]` (line numbers are those of the original).
func edited(_ text: String, _ edits: [Int: String]) -> String {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for (n, replacement) in edits { lines[n - 1] = replacement }
    return lines.joined(separator: "\n")
}

/// A fresh temporary directory, removed by `cleanup`.
struct TemporaryDirectory: ~Copyable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-scenario-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes `text` to `name` (sub-directories created) and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).standardizedFileURL.path }
}
