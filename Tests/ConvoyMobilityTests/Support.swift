import ConvoyCore
import ConvoyMobility
import Foundation
import Testing

/// Path of a file in the test bundle's Fixtures folder.
func fixture(_ name: String) -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

/// Runs `body` with a fresh temporary directory, removed afterwards.
func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("convoy-mobility-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// Runs `body` with the path of a temporary file named `name` holding `content`, removed afterwards.
func withTemporaryFile<T>(_ name: String, _ content: String, _ body: (String) throws -> T) throws -> T {
    try withTemporaryFile(name, Data(content.utf8), body)
}

func withTemporaryFile<T>(_ name: String, _ data: Data, _ body: (String) throws -> T) throws -> T {
    try withTemporaryDirectory { dir in
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return try body(url.path)
    }
}

/// Loads `path` expecting an `InputError`, and returns it.
func loadError(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> InputError? {
    do {
        let trace = try Trace.load(path: path)
        Issue.record("expected an InputError, loaded \(trace.trajectories.count) trajectories", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Whether two positions agree to within `tolerance` metres in each coordinate.
func close(_ a: Position?, _ b: Position, tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a.x - b.x) <= tolerance && abs(a.y - b.y) <= tolerance
}

func sample(_ time: Double, _ x: Double, _ y: Double) -> TraceSample {
    TraceSample(time: time, position: Position(x: x, y: y))
}
