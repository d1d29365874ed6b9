import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Reading input files: only regular files are read. A FIFO would block the reader (opening it
// waits for a writer) or feed it forever, and a device never ends; both are refused up front,
// with an `InputError` naming the file, like every other bad input.

/// Why a file of type `mode` (`st_mode`) cannot be read as `expected`; nil for a regular file.
/// A FIFO or a device would block or never end, so only regular files are read.
public func fileTypeProblem(mode: mode_t, expected: String) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFDIR: return "is a directory, expected \(expected)"
    case S_IFIFO: return "is a FIFO (named pipe), expected a regular file"
    case S_IFCHR: return "is a character device, expected a regular file"
    case S_IFBLK: return "is a block device, expected a regular file"
    case S_IFSOCK: return "is a socket, expected a regular file"
    default: return "is not a regular file, expected \(expected)"
    }
}

/// The message for the current `errno`.
public func errnoText() -> String { String(cString: strerror(errno)) }

/// Opens a regular file for reading; returns its descriptor (the caller closes it) and size.
///
/// The type is checked with `stat` before opening, because opening a FIFO for reading blocks until a
/// writer appears; the file is then opened non-blocking and checked again with `fstat` (in case it
/// was replaced in between), and switched back to blocking reads.
public func openRegularFile(path: String, expected: String = "a regular file") throws(InputError) -> (descriptor: Int32, size: Int) {
    var status = stat()
    guard stat(path, &status) == 0 else {
        throw InputError(file: path, "cannot open the file for reading: \(errnoText())")
    }
    if let problem = fileTypeProblem(mode: status.st_mode, expected: expected) { throw InputError(file: path, problem) }
    let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else {
        throw InputError(file: path, "cannot open the file for reading: \(errnoText())")
    }
    guard fstat(descriptor, &status) == 0 else {
        let text = errnoText()
        _ = close(descriptor)
        throw InputError(file: path, "cannot read the file: \(text)")
    }
    if let problem = fileTypeProblem(mode: status.st_mode, expected: expected) {
        _ = close(descriptor)
        throw InputError(file: path, problem)
    }
    let flags = fcntl(descriptor, F_GETFL)
    if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK) }
    return (descriptor, Int(status.st_size))
}

/// Reads up to `count` bytes at `offset` (fewer only at the end of the file), retrying on EINTR.
public func readBytes(descriptor: Int32, at offset: Int, count: Int, path: String) throws(InputError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let got = bytes.withUnsafeMutableBytes { raw in
            pread(descriptor, raw.baseAddress! + done, count - done, off_t(offset + done))
        }
        if got < 0 {
            if errno == EINTR { continue }
            throw InputError(file: path, "cannot read the file: \(errnoText())")
        }
        if got == 0 { break }
        done += got
    }
    bytes.removeSubrange(done...)
    return bytes
}

/// Reads at most `maxBytes` from the start of a regular file.
public func readPrefix(path: String, maxBytes: Int, expected: String = "a regular file") throws(InputError) -> [UInt8] {
    let file = try openRegularFile(path: path, expected: expected)
    defer { _ = close(file.descriptor) }
    return try readBytes(descriptor: file.descriptor, at: 0, count: maxBytes, path: path)
}

/// Reads a whole regular file.
public func readWholeFile(path: String, expected: String) throws(InputError) -> Data {
    let file = try openRegularFile(path: path, expected: expected)
    defer { _ = close(file.descriptor) }
    var bytes = try readBytes(descriptor: file.descriptor, at: 0, count: file.size, path: path)
    // The file may have grown since fstat: read on to its end.
    while true {
        let more = try readBytes(descriptor: file.descriptor, at: bytes.count, count: 1 << 20, path: path)
        if more.isEmpty { break }
        bytes += more
    }
    return Data(bytes)
}
