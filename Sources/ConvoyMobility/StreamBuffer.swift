import ConvoyCore

/// A sliding window over a `ByteSource`: readers look at `bytes[position..<bytes.count]`, ask for
/// more with `refill()` when a token runs past the end, and move `position` forward. Consumed bytes
/// are dropped on refill, so memory stays at about one chunk plus the longest token.
struct StreamBuffer {
    static let chunkSize = 1 << 20

    let file: String
    private var source: any ByteSource
    /// The window; `position` indexes into it.
    var bytes: [UInt8] = []
    var position = 0
    /// True once the source is exhausted.
    private(set) var ended = false
    /// The last byte the source delivered (to tell whether the file ends with a line break).
    private(set) var lastByte: UInt8?

    /// Whether the file is gzip-compressed (and decompressed on the fly).
    let isGzip: Bool

    init(path: String, expected: String = "a trace file") throws(InputError) {
        file = path
        source = try openByteSource(path: path, expected: expected)
        isGzip = source is GzipByteSource
        bytes.reserveCapacity(Self.chunkSize * 2)
    }

    /// Drops the consumed bytes and appends the next chunk. Returns false at the end of the file.
    mutating func refill() throws(InputError) -> Bool {
        guard !ended else { return false }
        if position > 0 {
            bytes.removeSubrange(0..<position)
            position = 0
        }
        let got = try source.read(into: &bytes, maxBytes: Self.chunkSize)
        if got == 0 {
            ended = true
            source.close()
            return false
        }
        lastByte = bytes.last
        return true
    }

    /// The first `maxBytes` of the (decompressed) file, without consuming them.
    mutating func peek(maxBytes: Int) throws(InputError) -> ArraySlice<UInt8> {
        while bytes.count - position < maxBytes, try refill() {}
        return bytes[position..<min(bytes.count, position + maxBytes)]
    }

    /// The error for a line (record, XML markup) that starts on `line` and runs past
    /// `TraceLimits.maxLineLength` bytes.
    func tooLong(line: Int, what: String = "line") -> InputError {
        InputError(
            file: file, line: line,
            "\(what) longer than \(TraceLimits.maxLineLengthText); expected at most \(TraceLimits.maxLineLength) bytes")
    }

    /// Whether the unconsumed part of the window (bytes from `position` on) is longer than
    /// `TraceLimits.maxLineLength`: a reader that has not found the end of its line there refuses it.
    var pendingExceedsLimit: Bool { bytes.count - position > TraceLimits.maxLineLength }

    /// The next line without its line end (LF or CRLF), or nil at the end of the file; `lineNumber`
    /// (1-based) is the line's number, for the error when it is longer than
    /// `TraceLimits.maxLineLength`. Each byte is searched once: after a refill the search resumes
    /// where it stopped.
    mutating func nextLine(lineNumber: Int) throws(InputError) -> ArraySlice<UInt8>? {
        var searchFrom = position
        while true {
            if let newline = bytes[searchFrom...].firstIndex(of: 0x0A) {
                guard newline - position <= TraceLimits.maxLineLength else { throw tooLong(line: lineNumber) }
                var end = newline
                if end > position, bytes[end - 1] == 0x0D { end -= 1 }
                let line = bytes[position..<end]
                position = newline + 1
                return line
            }
            if pendingExceedsLimit { throw tooLong(line: lineNumber) }
            let scanned = bytes.count - position
            if try !refill() {
                guard position < bytes.count else { return nil }
                guard !pendingExceedsLimit else { throw tooLong(line: lineNumber) }
                var end = bytes.count
                if bytes[end - 1] == 0x0D { end -= 1 }
                let line = bytes[position..<end]
                position = bytes.count
                return line
            }
            searchFrom = position + scanned
        }
    }

    mutating func close() { source.close() }
}

/// Parses a decimal number from ASCII bytes: optional sign, digits, optional fraction and exponent,
/// optional surrounding spaces. Returns nil for anything else and for non-finite values.
///
/// Exact (correctly rounded) via the Clinger fast path for the usual SUMO output (≤ 15 significant
/// digits, no large exponent); everything else goes through `Double(String)`.
@inline(__always)
func parseDecimal(_ base: UnsafePointer<UInt8>, _ count: Int) -> Double? {
    var i = 0
    var end = count
    while i < end, base[i] == 0x20 || base[i] == 0x09 { i += 1 }
    while end > i, base[end - 1] == 0x20 || base[end - 1] == 0x09 { end -= 1 }
    guard i < end else { return nil }
    var negative = false
    if base[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if base[i] == UInt8(ascii: "+") { i += 1 }
    var mantissa: UInt64 = 0
    var digits = 0
    var fractionDigits = 0
    var sawDigit = false
    while i < end, base[i] &- 0x30 < 10 {
        mantissa = mantissa &* 10 &+ UInt64(base[i] &- 0x30)
        digits += 1
        sawDigit = true
        i += 1
    }
    if i < end, base[i] == UInt8(ascii: ".") {
        i += 1
        while i < end, base[i] &- 0x30 < 10 {
            mantissa = mantissa &* 10 &+ UInt64(base[i] &- 0x30)
            digits += 1
            fractionDigits += 1
            sawDigit = true
            i += 1
        }
    }
    guard sawDigit else { return nil }
    if i == end, digits <= 15, fractionDigits <= 22 {
        let value = Double(mantissa) / powersOfTen[fractionDigits]
        return negative ? -value : value
    }
    // Exponents, long mantissas, or trailing garbage: let the standard library decide.
    let text = String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    return parseNumber(text)
}

func parseDecimal(_ bytes: ArraySlice<UInt8>) -> Double? {
    bytes.withUnsafeBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return nil }
        return parseDecimal(base, buffer.count)
    }
}

private let powersOfTen: [Double] = (0...22).map { exponent in
    var value = 1.0
    for _ in 0..<exponent { value *= 10 }
    return value
}
