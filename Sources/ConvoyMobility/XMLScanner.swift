import ConvoyCore

/// A small, fast, streaming XML tokenizer for machine-written files (SUMO output and networks).
///
/// It reports start tags (with their attributes as byte ranges into the window), end tags and
/// comments, tracks the 1-based line of each token, and checks the well-formedness that matters for
/// reading data safely: tags closed, attribute values quoted, end tags matching start tags, one root
/// element, nothing but comments and processing instructions after it. Text content, CDATA,
/// DOCTYPE and processing instructions are skipped. Entities in attribute values (`&amp;` … `&#x…;`)
/// are decoded by `string(_:)`.
///
/// Every error is an `InputError` naming the file and line: "truncated XML" when the file ends inside
/// the document, "malformed XML" otherwise. A tag, comment, CDATA section or processing instruction
/// longer than `TraceLimits.maxLineLength` is refused (on the line where it starts) rather than
/// buffered; text between tags is skipped without buffering. Errors quote at most a short excerpt.
struct XMLScanner {
    enum Token {
        /// A start tag; `selfClosing` for `<name …/>`. Attributes are in `attributes`.
        case start(name: Range<Int>, selfClosing: Bool)
        case end(name: Range<Int>)
        /// A comment's text (between `<!--` and `-->`).
        case comment(Range<Int>)
        /// The end of the file after a complete document.
        case endOfDocument
    }

    struct Attribute {
        var name: Range<Int>
        var value: Range<Int>
    }

    var buffer: StreamBuffer
    /// Attributes of the last start tag, as ranges into `buffer.bytes` (valid until the next `next()`).
    private(set) var attributes: [Attribute] = []
    /// 1-based line where the last token starts.
    private(set) var tokenLine = 1
    /// 1-based line at `buffer.position`.
    private var line = 1
    /// Names of the open elements, outermost first.
    private var openElements: [[UInt8]] = []
    private var rootSeen = false
    /// What the root element must be called (for the "truncated" message); nil: any.
    let expectedRoot: String?

    var file: String { buffer.file }
    var depth: Int { openElements.count }

    /// `expected` says what the file should be, for the error when it is not a regular file.
    init(path: String, expectedRoot: String?, expected: String = "a trace file") throws(InputError) {
        self.init(buffer: try StreamBuffer(path: path, expected: expected), expectedRoot: expectedRoot)
    }

    /// A scanner over an open buffer (nothing consumed yet).
    init(buffer: StreamBuffer, expectedRoot: String?) {
        self.buffer = buffer
        self.expectedRoot = expectedRoot
        attributes.reserveCapacity(16)
    }

    func malformed(_ message: String, line: Int? = nil) -> InputError {
        InputError(file: file, line: line ?? tokenLine, "malformed XML: \(message)")
    }

    /// The last line that holds any content (for errors at the end of the file).
    private var lastContentLine: Int {
        buffer.lastByte == 0x0A ? max(1, line - 1) : line
    }

    private func truncated() -> InputError {
        let root = openElements.first.map { String(decoding: $0, as: UTF8.self) } ?? expectedRoot ?? "the root element"
        return InputError(
            file: file, line: lastContentLine,
            "truncated XML: the file ends inside the document; expected it to end with </\(root)>")
    }

    /// The bytes of a range in the current window.
    func bytes(_ range: Range<Int>) -> ArraySlice<UInt8> { buffer.bytes[range] }

    /// Whether the bytes in `range` spell `literal`.
    func equals(_ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return buffer.bytes.withUnsafeBufferPointer { window in
            memcmp(window.baseAddress! + range.lowerBound, literal.utf8Start, range.count) == 0
        }
    }

    /// The value of the attribute called `name` of the last start tag.
    func attribute(_ name: StaticString) -> Range<Int>? {
        for attribute in attributes where equals(attribute.name, name) { return attribute.value }
        return nil
    }

    /// An attribute value (or any range) as a string, with XML entities decoded.
    func string(_ range: Range<Int>) throws(InputError) -> String {
        let raw = buffer.bytes[range]
        guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
        return try decodeEntities(raw)
    }

    private func decodeEntities(_ raw: ArraySlice<UInt8>) throws(InputError) -> String {
        var out: [UInt8] = []
        var i = raw.startIndex
        while i < raw.endIndex {
            guard raw[i] == UInt8(ascii: "&") else {
                out.append(raw[i])
                i += 1
                continue
            }
            guard let semicolon = raw[i...].firstIndex(of: UInt8(ascii: ";")) else {
                throw malformed("entity reference without ';'")
            }
            let name = String(decoding: raw[(i + 1)..<semicolon], as: UTF8.self)
            switch name {
            case "amp": out.append(UInt8(ascii: "&"))
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var scalar: Unicode.Scalar?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    scalar = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                } else if name.hasPrefix("#") {
                    scalar = UInt32(name.dropFirst(1)).flatMap(Unicode.Scalar.init)
                }
                guard let scalar else { throw malformed("unknown entity &\(excerpt(name));") }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            i = semicolon + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Advances `line` over `bytes[from..<to]`.
    @inline(__always)
    private mutating func countLines(_ from: Int, _ to: Int) {
        var newlines = 0
        buffer.bytes.withUnsafeBufferPointer { window in
            var i = from
            while i < to {
                if window[i] == 0x0A { newlines += 1 }
                i += 1
            }
        }
        line += newlines
    }

    /// The next token. Throws on malformed or truncated input.
    mutating func next() throws(InputError) -> Token {
        while true {
            // Skip text up to the next '<'.
            let lt: Int? = buffer.bytes.withUnsafeBufferPointer { window in
                var i = buffer.position
                let end = window.count
                var newlines = 0
                while i < end {
                    let byte = window[i]
                    if byte == UInt8(ascii: "<") { break }
                    if byte == 0x0A { newlines += 1 }
                    i += 1
                }
                line += newlines
                buffer.position = i
                return i < end ? i : nil
            }
            guard let start = lt else {
                if try buffer.refill() { continue }
                if !openElements.isEmpty || !rootSeen {
                    if !rootSeen { throw InputError(file: file, line: lastContentLine, "malformed XML: no root element found") }
                    throw truncated()
                }
                return .endOfDocument
            }
            tokenLine = line
            _ = start
            if let token = try scanMarkup() { return token }
        }
    }

    /// Scans the markup that starts with '<' at `buffer.position`. Returns nil for
    /// skipped markup.
    private mutating func scanMarkup() throws(InputError) -> Token? {
        // Make sure a few bytes are there to classify the markup.
        while buffer.bytes.count - buffer.position < 9, try buffer.refill() {}
        let start = buffer.position
        let b = buffer.bytes
        let second = start + 1 < b.count ? b[start + 1] : 0
        if second == UInt8(ascii: "!") {
            if start + 3 < b.count, b[start + 2] == UInt8(ascii: "-"), b[start + 3] == UInt8(ascii: "-") {
                let end = try findTerminator(after: 4, "-->")
                finishMarkup(end.start, end.afterEnd)
                return .comment((end.start + 4)..<end.terminator)
            }
            let isCDATA = b[start...].starts(with: Array("<![CDATA[".utf8))
            let end = try findTerminator(after: 2, isCDATA ? "]]>" : ">")
            finishMarkup(end.start, end.afterEnd)
            return nil
        }
        if second == UInt8(ascii: "?") {
            let end = try findTerminator(after: 2, "?>")
            finishMarkup(end.start, end.afterEnd)
            return nil
        }
        return try scanTag()
    }

    /// Finds `terminator` after the markup that starts at `buffer.position`, refilling as needed.
    /// Returns the markup's start, the terminator's position and the position after it, as they are
    /// in the (possibly compacted) window.
    private mutating func findTerminator(after skip: Int, _ terminator: StaticString) throws(InputError)
        -> (start: Int, terminator: Int, afterEnd: Int)
    {
        let pattern = Array(UnsafeBufferPointer(start: terminator.utf8Start, count: terminator.utf8CodeUnitCount))
        var scanned = skip
        while true {
            let start = buffer.position
            let b = buffer.bytes
            var i = start + scanned
            while i + pattern.count <= b.count {
                if b[i] == pattern[0], b[i..<(i + pattern.count)].elementsEqual(pattern) {
                    return (start, i, i + pattern.count)
                }
                i += 1
            }
            scanned = max(i - start, skip)
            if buffer.pendingExceedsLimit { throw buffer.tooLong(line: tokenLine, what: "XML markup") }
            guard try buffer.refill() else {
                countLines(buffer.position, buffer.bytes.count)
                throw truncated()
            }
        }
    }

    private mutating func finishMarkup(_ start: Int, _ afterEnd: Int) {
        countLines(start, afterEnd)
        buffer.position = afterEnd
    }

    /// Scans a start or end tag at `buffer.position` ('<' there) in one pass, refilling and starting
    /// over when the tag runs past the window.
    private mutating func scanTag() throws(InputError) -> Token? {
        while true {
            let window = buffer.bytes  // a reference, not a copy: the window is not mutated here
            let result = try window.withUnsafeBufferPointer { bytes throws(InputError) in
                try parseTag(bytes, start: buffer.position)
            }
            if let (token, end, newlines) = result {
                line += newlines
                buffer.position = end
                return token
            }
            // Parsed again from its start after the refill: bounded, so linear overall.
            if buffer.pendingExceedsLimit { throw buffer.tooLong(line: tokenLine, what: "XML tag") }
            guard try buffer.refill() else {
                countLines(buffer.position, buffer.bytes.count)
                throw truncated()
            }
        }
    }

    @inline(__always)
    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "/"), UInt8(ascii: ">"), UInt8(ascii: "="), UInt8(ascii: "\""),
            UInt8(ascii: "'"), UInt8(ascii: "<"):
            return false
        default:
            return true
        }
    }

    @inline(__always)
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D }

    /// Parses the tag starting at `start` ('<'). Returns the token, the index after its '>' and the
    /// line breaks inside it; nil when the window ends before the tag does.
    private mutating func parseTag(_ b: UnsafeBufferPointer<UInt8>, start: Int) throws(InputError) -> (Token, Int, Int)? {
        attributes.removeAll(keepingCapacity: true)
        let count = b.count
        var newlines = 0
        var i = start + 1
        guard i < count else { return nil }
        let isEnd = b[i] == UInt8(ascii: "/")
        if isEnd { i += 1 }
        let nameStart = i
        while i < count, Self.isNameByte(b[i]) { i += 1 }
        guard i < count else { return nil }
        let name = nameStart..<i
        guard !name.isEmpty else { throw malformed("element name expected after '<'") }
        if isEnd {
            while i < count, Self.isSpace(b[i]) {
                if b[i] == 0x0A { newlines += 1 }
                i += 1
            }
            guard i < count else { return nil }
            guard b[i] == UInt8(ascii: ">") else { throw malformed("unexpected text in the end tag </\(text(name))>") }
            guard let open = openElements.last else {
                throw malformed("end tag </\(text(name))> without a start tag")
            }
            guard UnsafeBufferPointer(rebasing: b[name]).elementsEqual(open) else {
                throw malformed(
                    "end tag </\(text(name))> does not match the start tag <\(excerpt(bytes: open[...]))>")
            }
            openElements.removeLast()
            return (.end(name: name), i + 1, newlines)
        }
        var selfClosing = false
        while true {
            let before = i
            while i < count, Self.isSpace(b[i]) {
                if b[i] == 0x0A { newlines += 1 }
                i += 1
            }
            guard i < count else { return nil }
            let byte = b[i]
            if byte == UInt8(ascii: ">") { break }
            if byte == UInt8(ascii: "/") {
                guard i + 1 < count else { return nil }
                guard b[i + 1] == UInt8(ascii: ">") else { throw malformed("'/' inside the tag <\(text(name))>") }
                selfClosing = true
                i += 1
                break
            }
            if byte == UInt8(ascii: "<") {
                line += newlines
                throw malformed("'<' inside a tag; expected '>' to close the tag first", line: line)
            }
            guard i > before else { throw malformed("space required between attributes of <\(text(name))>") }
            let attributeStart = i
            while i < count, Self.isNameByte(b[i]) { i += 1 }
            guard i < count else { return nil }
            let attributeName = attributeStart..<i
            guard !attributeName.isEmpty else { throw malformed("attribute name expected in <\(text(name))>") }
            while i < count, Self.isSpace(b[i]) {
                if b[i] == 0x0A { newlines += 1 }
                i += 1
            }
            guard i < count else { return nil }
            guard b[i] == UInt8(ascii: "=") else {
                throw malformed("attribute \(text(attributeName)) of <\(text(name))> has no value")
            }
            i += 1
            while i < count, Self.isSpace(b[i]) {
                if b[i] == 0x0A { newlines += 1 }
                i += 1
            }
            guard i < count else { return nil }
            guard b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") else {
                throw malformed("attribute value not quoted (\(text(attributeName)) of <\(text(name))>)")
            }
            let quote = b[i]
            i += 1
            let valueStart = i
            while i < count, b[i] != quote {
                if b[i] == 0x0A { newlines += 1 }
                i += 1
            }
            guard i < count else { return nil }
            attributes.append(Attribute(name: attributeName, value: valueStart..<i))
            i += 1
        }
        // b[i] is the closing '>'.
        if openElements.isEmpty {
            guard !rootSeen else { throw malformed("extra content after the root element: <\(text(name))>") }
            rootSeen = true
        }
        if !selfClosing { openElements.append(Array(b[name])) }
        return (.start(name: name, selfClosing: selfClosing), i + 1, newlines)
    }

    /// A short excerpt of the text in `range`, for error messages.
    private func text(_ range: Range<Int>) -> String { excerpt(bytes: buffer.bytes[range]) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
