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

/// `data` as a gzip file (one member, deflate "stored" blocks: no compression needed), for testing
/// that gzip traces go through the same checks as plain ones.
func gzipStored(_ data: Data) -> Data {
    var out: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF]
    let bytes = [UInt8](data)
    var start = 0
    repeat {
        let count = min(65_535, bytes.count - start)
        let last = start + count == bytes.count
        out.append(last ? 1 : 0)
        out += [UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
        out += bytes[start..<(start + count)]
        start += count
    } while start < bytes.count
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    crc = ~crc
    let size = UInt32(truncatingIfNeeded: bytes.count)
    for value in [crc, size] { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
    return Data(out)
}

/// Resumes a continuation once, whichever of its racers comes first.
final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T?, Never>?

    init(_ continuation: CheckedContinuation<T?, Never>) { self.continuation = continuation }

    func resume(_ value: T?) {
        lock.lock()
        let pending = continuation
        continuation = nil
        lock.unlock()
        pending?.resume(returning: value)
    }
}

/// Runs `body` on a thread of its own (not the test's) and waits at most `seconds` for it. Returns
/// nil when it has not finished by then: a hang fails the test instead of hanging the test run.
/// The body is left running; the caller unblocks it if it can.
func withHardTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () -> T) async -> T? {
    await withCheckedContinuation { continuation in
        let once = ResumeOnce(continuation)
        DispatchQueue.global().async { once.resume(body()) }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { once.resume(nil) }
    }
}

/// Loads `path` with `options` and returns the `InputError` (nil, with an issue, when it loads).
func loadError(_ path: String, options: TraceLoadOptions, sourceLocation: SourceLocation = #_sourceLocation) -> InputError? {
    do {
        let trace = try Trace.load(path: path, options: options)
        Issue.record("expected an InputError, loaded \(trace.trajectories.count) trajectories", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
