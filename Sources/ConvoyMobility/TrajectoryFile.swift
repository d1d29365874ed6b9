import ConvoyCore
import Foundation

/// Compact per-vehicle trajectory files: the launcher writes one per vehicle into a run directory,
/// and each vehicle process loads only its own (one read, then a straight decode).
///
/// Layout, all little-endian:
///
///     offset  size  content
///     0       8     magic "CVYTRAJ\0"
///     8       4     UInt32 format version (1)
///     12      4     UInt32 n = byte length of the vehicle id (UTF-8)
///     16      n     vehicle id
///     16+n    8     Float64 maxGap (seconds)
///     24+n    8     UInt64 count of samples
///     32+n    40×c  per sample: Float64 time, x, y, speed, angle (NaN = absent speed/angle)
///
/// The file must be exactly that long: anything shorter is truncated, anything longer is refused too.
public enum TrajectoryFile {
    static let magic: [UInt8] = Array("CVYTRAJ\0".utf8)
    /// The version this build writes and reads.
    public static let version: UInt32 = 1
    static let bytesPerSample = 40

    /// Writes `trajectory` to `path` atomically (a reader never sees a half-written file).
    public static func write(_ trajectory: Trajectory, to path: String) throws {
        try encode(trajectory).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Reads a trajectory file written by `write`. Throws an `InputError` naming the file when it is
    /// missing, not a regular file, not a trajectory file, of another version, truncated, too long,
    /// or has samples out of time order or outside `TraceLimits`.
    public static func read(path: String) throws(InputError) -> Trajectory {
        try decode(readWholeFile(path: path, expected: "a Convoy trajectory file"), file: path)
    }

    /// The file's bytes for `trajectory`.
    public static func encode(_ trajectory: Trajectory) -> Data {
        let id = Array(trajectory.vehicleID.utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(32 + id.count + trajectory.samples.count * bytesPerSample)
        bytes += magic
        appendLittleEndian(version, to: &bytes)
        appendLittleEndian(UInt32(id.count), to: &bytes)
        bytes += id
        appendLittleEndian(trajectory.maxGap.bitPattern, to: &bytes)
        appendLittleEndian(UInt64(trajectory.samples.count), to: &bytes)
        for sample in trajectory.samples {
            for value in [sample.time, sample.position.x, sample.position.y, sample.speed ?? .nan, sample.angle ?? .nan] {
                appendLittleEndian(value.bitPattern, to: &bytes)
            }
        }
        return Data(bytes)
    }

    /// Decodes a trajectory file's bytes; `file` names it in errors.
    public static func decode(_ data: Data, file: String) throws(InputError) -> Trajectory {
        let result: Result<Trajectory, InputError> = data.withUnsafeBytes { raw in
            Result { () throws(InputError) -> Trajectory in try decode(raw, file: file) }
        }
        return try result.get()
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, file: String) throws(InputError) -> Trajectory {
        func fail(_ message: String) -> InputError { InputError(file: file, message) }
        guard raw.count >= 16, raw.prefix(8).elementsEqual(magic) else {
            throw fail("not a Convoy trajectory file (bad magic); expected one written by TrajectoryFile.write")
        }
        let fileVersion = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard fileVersion == version else {
            throw fail("unsupported trajectory file version \(fileVersion); expected \(version)")
        }
        let idLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        let headerLength = 32 + idLength
        guard raw.count >= headerLength else {
            throw fail("truncated trajectory file: \(raw.count) bytes, shorter than its \(headerLength)-byte header")
        }
        let id = String(decoding: UnsafeRawBufferPointer(rebasing: raw[16..<(16 + idLength)]), as: UTF8.self)
        let maxGap = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16 + idLength, as: UInt64.self)))
        let count = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 24 + idLength, as: UInt64.self))
        let (body, overflow) = count.multipliedReportingOverflow(by: UInt64(bytesPerSample))
        guard !overflow, body <= UInt64(Int.max - headerLength) else {
            throw fail("corrupt trajectory file: impossible sample count \(count)")
        }
        let expected = headerLength + Int(body)
        guard raw.count >= expected else {
            throw fail("truncated trajectory file: \(raw.count) bytes, expected \(expected) for \(count) samples")
        }
        guard raw.count == expected else {
            throw fail("corrupt trajectory file: \(raw.count) bytes, expected \(expected) for \(count) samples")
        }
        func double(_ offset: Int) -> Double {
            Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        }
        var samples = [TraceSample]()
        samples.reserveCapacity(Int(count))
        var offset = headerLength
        for _ in 0..<Int(count) {
            let speed = double(offset + 24)
            let angle = double(offset + 32)
            samples.append(
                TraceSample(
                    time: double(offset), position: Position(x: double(offset + 8), y: double(offset + 16)),
                    speed: speed.isNaN ? nil : speed, angle: angle.isNaN ? nil : angle))
            offset += bytesPerSample
        }
        guard Trajectory.isStrictlyIncreasing(samples) else {
            throw fail("corrupt trajectory file: sample times are not strictly increasing")
        }
        for (i, sample) in samples.enumerated() {
            if let (field, message) = sampleProblem(sample, geographic: false) {
                throw InputError(
                    file: file, field: SampleFieldNames.metric.name(field),
                    "corrupt trajectory file: sample \(i + 1) of vehicle \"\(excerpt(id))\": \(message)")
            }
        }
        guard !maxGap.isNaN else { throw fail("corrupt trajectory file: the maximum gap is not a number") }
        return Trajectory(unchecked: id, samples: samples, maxGap: maxGap)
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
