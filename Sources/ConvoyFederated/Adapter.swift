/// The trainable weights of a PEFT adapter (LoRA, prefix or prompt tuning) as one flat vector, in
/// the trainer's order (its tensors sorted by name, each flattened). On the wire and at the
/// trainer it is float32 little-endian, 4 bytes per parameter (PROTOCOL.md, "Federated fine-tuning").
public struct Adapter: Sendable, Hashable {
    public var values: [Float]

    public init(_ values: [Float]) { self.values = values }

    public init(zeros count: Int) { values = [Float](repeating: 0, count: count) }

    public var count: Int { values.count }
    public var byteCount: Int { values.count * 4 }

    /// The float32 little-endian bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 4)
        for v in values {
            let bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Decodes float32 little-endian bytes; nil when the length is not a multiple of 4 or, with
    /// `expected`, not exactly that many parameters.
    public init?(bytes: [UInt8], expected: Int? = nil) {
        guard bytes.count % 4 == 0 else { return nil }
        if let expected, bytes.count != expected * 4 { return nil }
        var values = [Float](repeating: 0, count: bytes.count / 4)
        bytes.withUnsafeBytes { raw in
            for i in values.indices {
                values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            }
        }
        self.values = values
    }

    /// `self + a·x`.
    public func adding(_ x: Adapter, scaledBy a: Float) -> Adapter {
        precondition(x.count == count, "adapters of different sizes")
        var out = values
        for i in out.indices { out[i] += a * x.values[i] }
        return Adapter(out)
    }

    /// `self − other`.
    public func minus(_ other: Adapter) -> Adapter { adding(other, scaledBy: -1) }

    public func dot(_ other: Adapter) -> Double {
        precondition(other.count == count, "adapters of different sizes")
        var s = 0.0
        for i in values.indices { s += Double(values[i]) * Double(other.values[i]) }
        return s
    }

    public var norm: Double { dot(self).squareRoot() }

    /// Cosine similarity; 0 when either vector is zero.
    public func cosine(_ other: Adapter) -> Double {
        let n = norm * other.norm
        return n > 0 ? dot(other) / n : 0
    }

    /// Whether every value is finite (a diverged or corrupted update is not).
    public var isFinite: Bool { values.allSatisfy(\.isFinite) }
}
