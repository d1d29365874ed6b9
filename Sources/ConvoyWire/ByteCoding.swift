/// Appends big-endian fields to a byte array.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    public mutating func f64(_ v: Double) { u64(v.bitPattern) }
    public mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }

    /// A string as u16 byte length + UTF-8 bytes.
    public mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u16(UInt16(clamping: utf8.count))
        bytes.append(contentsOf: utf8.prefix(Int(UInt16.max)))
    }

    /// Text as u32 byte length + UTF-8 bytes (prompts and answers; at most `ByteReader.maxText` bytes).
    /// Longer text is cut at a character boundary, so that what arrives is still UTF-8.
    public mutating func text(_ s: String) {
        var utf8 = Array(s.utf8)
        if utf8.count > ByteReader.maxText {
            var end = ByteReader.maxText
            while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a multi-byte scalar
            utf8.removeSubrange(end...)
        }
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// A list of strings as u8 count + that many strings (at most 255).
    public mutating func strings(_ list: [String]) {
        u8(UInt8(clamping: list.count))
        for s in list.prefix(255) { string(s) }
    }
}

/// Why a frame could not be decoded.
public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated
    case oversized(Int)
    case badMagic
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case invalid(String)

    public var description: String {
        switch self {
        case .truncated: "truncated frame"
        case .oversized(let n): "oversized frame (\(n) bytes)"
        case .badMagic: "not a Convoy frame (bad magic)"
        case .unsupportedVersion(let v): "unsupported protocol version \(v)"
        case .unknownKind(let k): "unknown message kind \(k)"
        case .invalid(let why): "invalid frame: \(why)"
        }
    }

    /// A short stable name, used as a counter name.
    public var counterName: String {
        switch self {
        case .truncated: "frames_truncated"
        case .oversized: "frames_oversized"
        case .badMagic: "frames_bad_magic"
        case .unsupportedVersion: "frames_unknown_version"
        case .unknownKind: "frames_unknown_kind"
        case .invalid: "frames_invalid"
        }
    }
}

/// Reads big-endian fields from a byte array; every read checks bounds and throws `DecodeError.truncated`.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int) throws(DecodeError) -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw .truncated }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(DecodeError) -> T {
        let slice = try take(MemoryLayout<T>.size)
        var v: T = 0
        for b in slice { v = (v << 8) | T(b) }
        return v
    }

    public mutating func u8() throws(DecodeError) -> UInt8 { try integer(UInt8.self) }
    public mutating func u16() throws(DecodeError) -> UInt16 { try integer(UInt16.self) }
    public mutating func u32() throws(DecodeError) -> UInt32 { try integer(UInt32.self) }
    public mutating func u64() throws(DecodeError) -> UInt64 { try integer(UInt64.self) }
    public mutating func i64() throws(DecodeError) -> Int64 { Int64(bitPattern: try u64()) }
    public mutating func f64() throws(DecodeError) -> Double { Double(bitPattern: try u64()) }
    public mutating func raw(_ n: Int) throws(DecodeError) -> [UInt8] { Array(try take(n)) }

    public mutating func string() throws(DecodeError) -> String {
        let n = Int(try u16())
        let slice = try take(n)
        guard let s = String(validating: slice, as: UTF8.self) else { throw .invalid("string is not UTF-8") }
        return s
    }

    /// Longest text field (a prompt or an answer): 256 KiB.
    public static let maxText = 1 << 18

    public mutating func text() throws(DecodeError) -> String {
        let n = Int(try u32())
        guard n <= Self.maxText else { throw .invalid("text of \(n) bytes (at most \(Self.maxText))") }
        let slice = try take(n)
        guard let s = String(validating: slice, as: UTF8.self) else { throw .invalid("text is not UTF-8") }
        return s
    }

    public mutating func strings() throws(DecodeError) -> [String] {
        let count = Int(try u8())
        var list: [String] = []
        for _ in 0..<count { list.append(try string()) }
        return list
    }

    /// Throws unless every byte was consumed.
    public func expectEnd() throws(DecodeError) {
        if remaining != 0 { throw .invalid("\(remaining) trailing bytes") }
    }
}
