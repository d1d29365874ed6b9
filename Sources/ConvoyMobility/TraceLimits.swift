import ConvoyCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bounds every trace is checked against when it is loaded (all formats, plain or gzip, and
/// Convoy's own index and trajectory files). A value outside them is an `InputError` naming the file,
/// the line (where there is one) and the field, so that nothing downstream ever sees a time or a
/// position it cannot convert to an integer (grid cells, microseconds, …).
public enum TraceLimits {
    /// Largest |time| of a sample, in seconds: 1e9 s, about 31.7 years.
    public static let maxTime = 1e9
    /// Largest |x| and |y| of a position, in metres (1e9 m), both as written and after projection:
    /// the bound every position in Convoy obeys (`Position.maxCoordinate`).
    public static let maxCoordinate = Position.maxCoordinate
    /// Longitudes must lie in [-180, 180] degrees, latitudes in [-90, 90].
    public static let maxLongitude = 180.0
    public static let maxLatitude = 90.0
    /// Longest line (CSV record, ns-2 line) or XML markup (tag, comment, …) in bytes: 1 MiB. Longer
    /// ones are refused rather than buffered.
    public static let maxLineLength = 1 << 20
    /// The longest excerpt of the input that an error message quotes, in Unicode scalars.
    public static let excerptLength = 40

    /// `maxLineLength` for people: "1 MiB".
    static let maxLineLengthText = "1 MiB"
}

/// At most `TraceLimits.excerptLength` scalars of `text`, with "…" when cut: what error messages quote
/// of the input, so that a huge field never ends up whole on stderr.
func excerpt<S: StringProtocol>(_ text: S, limit: Int = TraceLimits.excerptLength) -> String {
    let scalars = text.unicodeScalars
    var out = String.UnicodeScalarView()
    var index = scalars.startIndex
    var count = 0
    while index != scalars.endIndex, count < limit {
        out.append(scalars[index])
        scalars.formIndex(after: &index)
        count += 1
    }
    return index == scalars.endIndex ? String(out) : String(out) + "…"
}

/// `excerpt` of raw bytes (decoded as UTF-8, invalid bytes replaced), without decoding all of them.
func excerpt(bytes: ArraySlice<UInt8>, limit: Int = TraceLimits.excerptLength) -> String {
    // A scalar is at most 4 bytes: decode a little more than needed and let `excerpt` cut.
    let head = bytes.prefix(limit * 4 + 4)
    let text = String(decoding: head, as: UTF8.self)
    let cut = excerpt(text, limit: limit)
    return head.count < bytes.count && !cut.hasSuffix("…") ? cut + "…" : cut
}

/// A number as error messages print it (short, whatever its magnitude).
func describeNumber(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value < 0 ? "-infinity" : "infinity" }
    if value == value.rounded(), abs(value) < 1e15 { return String(format: "%.0f", value) }
    return "\(value)"
}

/// Which value of a sample a problem is about.
enum SampleField: Sendable, Equatable {
    case time, x, y, speed, angle
}

/// What is wrong with a sample time, or nil: it must be finite and within ±`TraceLimits.maxTime`.
func timeProblem(_ time: Double) -> String? {
    guard abs(time) <= TraceLimits.maxTime else {
        return "time \(describeNumber(time)) s is outside the supported range; expected |time| ≤ 1e9 s (about 31 years)"
    }
    return nil
}

/// What is wrong with a coordinate, or nil. Metric coordinates must be finite and within
/// ±`TraceLimits.maxCoordinate` metres; geographic ones (`geographic`: x is the longitude, y the
/// latitude) within [-180, 180] and [-90, 90] degrees.
func coordinateProblem(_ value: Double, axis: SampleField, geographic: Bool) -> String? {
    if geographic {
        let (name, limit) = axis == .x ? ("longitude", TraceLimits.maxLongitude) : ("latitude", TraceLimits.maxLatitude)
        guard abs(value) <= limit else {
            return "\(name) out of range [-\(Int(limit)), \(Int(limit))]: found \(describeNumber(value)); expected degrees"
        }
        return nil
    }
    guard abs(value) <= TraceLimits.maxCoordinate else {
        return "coordinate \(describeNumber(value)) m is outside the supported range; expected |\(axis == .x ? "x" : "y")| ≤ 1e9 m"
    }
    return nil
}

/// The first problem of a sample (time, then x, y, speed, angle), or nil when it is within
/// `TraceLimits`. Speed and angle must be finite when given.
func sampleProblem(_ sample: TraceSample, geographic: Bool) -> (field: SampleField, message: String)? {
    if let message = timeProblem(sample.time) { return (.time, message) }
    if let message = coordinateProblem(sample.position.x, axis: .x, geographic: geographic) { return (.x, message) }
    if let message = coordinateProblem(sample.position.y, axis: .y, geographic: geographic) { return (.y, message) }
    if let speed = sample.speed, !speed.isFinite { return (.speed, "speed \(describeNumber(speed)) is not finite; expected m/s") }
    if let angle = sample.angle, !angle.isFinite { return (.angle, "angle \(describeNumber(angle)) is not finite; expected degrees") }
    return nil
}

/// How a reader names the fields of a sample in its errors (column names, attribute names, …).
struct SampleFieldNames {
    var time = "time", x = "x", y = "y", speed = "speed", angle = "angle"

    static let metric = SampleFieldNames()
    static let geographic = SampleFieldNames(x: "lon", y: "lat")

    func name(_ field: SampleField) -> String {
        switch field {
        case .time: return time
        case .x: return x
        case .y: return y
        case .speed: return speed
        case .angle: return angle
        }
    }
}
