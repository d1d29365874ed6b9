#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Emulated time, shared by every process of a run.
///
/// All processes of a run agree on `epoch`, the wall-clock instant (Unix seconds, `CLOCK_REALTIME`)
/// at which the run's emulated time was 0. Emulated time advances `speed` times as fast as wall time:
/// with `speed` 0.5 one emulated second lasts two wall seconds. This type is the only place where
/// emulated and wall time are converted into each other.
public struct EmulationClock: Sendable, Equatable {
    public var epoch: Double
    public var speed: Double

    public init(epoch: Double, speed: Double = 1) {
        precondition(speed > 0, "speed must be positive")
        self.epoch = epoch
        self.speed = speed
    }

    /// A clock whose emulated time 0 is now.
    public static func startingNow(speed: Double = 1) -> EmulationClock {
        EmulationClock(epoch: wallNow(), speed: speed)
    }

    /// Current wall-clock time in Unix seconds (`CLOCK_REALTIME`).
    public static func wallNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Emulated seconds since the run started.
    public func now() -> Double { emulated(atWall: Self.wallNow()) }

    /// Emulated time at the wall-clock instant `wall` (Unix seconds).
    public func emulated(atWall wall: Double) -> Double { (wall - epoch) * speed }

    /// Wall-clock instant (Unix seconds) at which emulated time reaches `time`.
    public func wall(atEmulated time: Double) -> Double { epoch + time / speed }

    /// Wall-clock seconds that `seconds` of emulated time last.
    public func wallDuration(ofEmulated seconds: Double) -> Double { seconds / speed }
}
