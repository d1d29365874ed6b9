import CZlib
import ConvoyCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A forward-only stream of a trace file's bytes, decompressed when the file is gzip. Readers pull
/// chunks from it, so no reader ever holds the whole file in memory.
protocol ByteSource: AnyObject {
    /// Appends up to `maxBytes` more bytes to `buffer`; returns how many (0 only at the end).
    /// Throws an `InputError` naming the file when reading or decompressing fails (e.g. truncated gzip).
    func read(into buffer: inout [UInt8], maxBytes: Int) throws(InputError) -> Int
    /// Releases the file (idempotent).
    func close()
}

/// Opens `path` for streaming: a gzip file (magic bytes 1f 8b) is decompressed on the fly. Only a
/// regular file is opened (see `openRegularFile`); `expected` says what it should be, for errors.
func openByteSource(path: String, expected: String = "a trace file") throws(InputError) -> any ByteSource {
    let file = try FileByteSource(path: path, expected: expected)
    var head: [UInt8] = []
    _ = try file.read(into: &head, maxBytes: 2)
    if head == [0x1F, 0x8B] {
        return try GzipByteSource(file: file, pending: head)
    }
    return PrefixedByteSource(pending: head, inner: file)
}

/// Plain file bytes through POSIX `read`.
final class FileByteSource: ByteSource {
    let path: String
    private var descriptor: Int32
    /// Reused read buffer.
    private var scratch: [UInt8] = []

    /// Opens a regular file; a directory, FIFO or device is an `InputError` (see `openRegularFile`).
    init(path: String, expected: String = "a trace file") throws(InputError) {
        self.path = path
        descriptor = try openRegularFile(path: path, expected: expected).descriptor
    }

    func read(into buffer: inout [UInt8], maxBytes: Int) throws(InputError) -> Int {
        guard descriptor >= 0, maxBytes > 0 else { return 0 }
        if scratch.count < maxBytes { scratch = [UInt8](repeating: 0, count: maxBytes) }
        var got = 0
        while true {
            got = scratch.withUnsafeMutableBytes { raw in Glibc.read(descriptor, raw.baseAddress!, maxBytes) }
            if got >= 0 || errno != EINTR { break }
        }
        if got < 0 {
            throw InputError(file: path, "cannot read the file: \(errnoText())")
        }
        buffer.append(contentsOf: scratch[0..<got])
        return got
    }

    deinit { close() }

    func close() {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
        descriptor = -1
    }
}

/// Serves a few already-read bytes, then the rest of `inner`.
final class PrefixedByteSource: ByteSource {
    var pending: [UInt8]
    let inner: any ByteSource

    init(pending: [UInt8], inner: any ByteSource) {
        self.pending = pending
        self.inner = inner
    }

    func read(into buffer: inout [UInt8], maxBytes: Int) throws(InputError) -> Int {
        if !pending.isEmpty {
            let count = min(maxBytes, pending.count)
            buffer.append(contentsOf: pending.prefix(count))
            pending.removeFirst(count)
            return count
        }
        return try inner.read(into: &buffer, maxBytes: maxBytes)
    }

    func close() { inner.close() }
}

/// Decompresses a gzip file (one or more concatenated members) with zlib, chunk by chunk.
///
/// Errors name the file: a file that ends before its last member's trailer is "truncated gzip";
/// corrupt data is "corrupt gzip" with zlib's message.
final class GzipByteSource: ByteSource {
    private let file: FileByteSource
    private var stream = z_stream()
    private var input: [UInt8]
    private var inputOffset = 0
    private var fileEnded = false
    /// True between the end of a member and the start of the next (or the end of the file).
    private var atMemberBoundary = false
    private var finished = false
    private var open = false
    /// Reused output buffer.
    private var scratch: [UInt8] = []

    init(file: FileByteSource, pending: [UInt8]) throws(InputError) {
        self.file = file
        self.input = pending
        let status = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw InputError(file: file.path, "cannot start gzip decompression (zlib \(status))") }
        open = true
    }

    deinit { close() }

    func close() {
        if open { inflateEnd(&stream) }
        open = false
        file.close()
    }

    func read(into buffer: inout [UInt8], maxBytes: Int) throws(InputError) -> Int {
        guard !finished, maxBytes > 0 else { return 0 }
        while true {
            if inputOffset == input.count, !fileEnded {
                input.removeAll(keepingCapacity: true)
                inputOffset = 0
                if try file.read(into: &input, maxBytes: 256 * 1024) == 0 { fileEnded = true }
            }
            if inputOffset == input.count, fileEnded {
                finished = true
                if atMemberBoundary { return 0 }
                throw InputError(file: file.path, "truncated gzip: the file ends inside the compressed data")
            }
            if atMemberBoundary {
                // Another member follows (concatenated gzip): start it afresh.
                inflateReset(&stream)
                atMemberBoundary = false
            }
            if scratch.count < maxBytes { scratch = [UInt8](repeating: 0, count: maxBytes) }
            let available = input.count - inputOffset
            let (status, consumed, produced): (Int32, Int, Int) = input.withUnsafeMutableBufferPointer { inBuf in
                scratch.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_in = inBuf.baseAddress! + inputOffset
                    stream.avail_in = UInt32(available)
                    stream.next_out = outBuf.baseAddress!
                    stream.avail_out = UInt32(maxBytes)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, available - Int(stream.avail_in), maxBytes - Int(stream.avail_out))
                }
            }
            buffer.append(contentsOf: scratch[0..<produced])
            inputOffset += consumed
            switch status {
            case Z_OK, Z_BUF_ERROR:
                break
            case Z_STREAM_END:
                atMemberBoundary = true
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                finished = true
                throw InputError(file: file.path, "corrupt gzip data: \(reason)")
            }
            if produced > 0 { return produced }
        }
    }
}
