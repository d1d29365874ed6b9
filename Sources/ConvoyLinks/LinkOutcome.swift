#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an emulated link does with one message.
///
/// Every link model in this module is a pure function of its inputs and its own state: times are
/// emulated seconds passed in by the caller (no model reads a clock), and randomness comes only from
/// the caller's `SeededGenerator`, so a run repeats with its seed.
public enum LinkOutcome: Sendable, Equatable {
    /// The message reaches the other end at emulated time `at` (seconds).
    case deliver(at: Double)
    /// The message was sent but lost on the way (packet error, residual block error, configured loss).
    case lost
    /// The receiver is beyond the link's reach (outside the cell radius, beyond V2V range or below the
    /// lowest V2V modulation threshold); nothing was transmitted.
    case outOfRange

    /// The delivery time, or `nil` when the message is lost or out of range.
    public var deliveryTime: Double? {
        if case .deliver(let at) = self { return at }
        return nil
    }
}

/// Radio propagation delay.
public enum Propagation {
    /// Speed of light in vacuum, m/s.
    public static let speedOfLight = 299_792_458.0

    /// One-way propagation delay over `distance` metres at the speed of light, in seconds.
    public static func delay(distance: Double) -> Double { max(0, distance) / speedOfLight }
}

/// Smallest distance (metres) the log-distance path-loss formulas are evaluated at, so that a
/// receiver standing on the transmitter does not give log(0).
public let minimumLinkDistance = 1.0

/// `10^(dB/10)`.
@inline(__always) func linear(fromDB dB: Double) -> Double { pow(10, dB / 10) }

/// Bits in `bytes` octets.
@inline(__always) func bits(_ bytes: Int) -> Double {
    precondition(bytes >= 0, "a message cannot have a negative size")
    return Double(bytes) * 8
}
