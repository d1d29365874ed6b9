/// Chunked transfer of an adapter: its bytes cut into chunks of at most `chunkBytes` (frames stay
/// under the protocol's 1 MiB limit), sent as separate messages, reassembled in any order.
public enum Chunking {
    /// Default chunk size: 256 KiB.
    public static let defaultChunkBytes = 256 * 1024

    public static func chunks(of bytes: [UInt8], size: Int = defaultChunkBytes) -> [[UInt8]] {
        precondition(size > 0, "a chunk holds at least one byte")
        guard !bytes.isEmpty else { return [[]] }
        return stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }
}

/// The chunks of one transfer received so far.
public struct Reassembly: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case accepted, duplicate
        /// The chunk contradicts the transfer (another count or total, an index out of range, or a
        /// size that cannot add up).
        case inconsistent(String)
    }

    public let count: Int
    public let totalBytes: Int
    private var parts: [Int: [UInt8]] = [:]
    private var received = 0

    public init(count: Int, totalBytes: Int) {
        self.count = count
        self.totalBytes = totalBytes
    }

    public mutating func add(index: Int, count: Int, totalBytes: Int, data: [UInt8]) -> Outcome {
        guard count == self.count, totalBytes == self.totalBytes else { return .inconsistent("chunk count or total changed") }
        guard index >= 0, index < count else { return .inconsistent("chunk \(index) of \(count)") }
        guard parts[index] == nil else { return .duplicate }
        guard received + data.count <= totalBytes else { return .inconsistent("more bytes than announced") }
        parts[index] = data
        received += data.count
        return .accepted
    }

    public var isComplete: Bool { parts.count == count && received == totalBytes }

    /// Chunk indices not received yet, ascending.
    public var missing: [Int] { (0..<count).filter { parts[$0] == nil } }

    public var receivedChunks: Int { parts.count }

    /// The whole transfer, once complete.
    public var bytes: [UInt8]? {
        guard isComplete else { return nil }
        return (0..<count).flatMap { parts[$0]! }
    }
}
