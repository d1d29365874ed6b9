/// A small, fast, seedable generator (SplitMix64). The same seed gives the same sequence on
/// every platform, so a run's random draws repeat with its seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for one stream of a run (`seed`) and one consumer (`label`, e.g. a node id),
    /// so that two nodes of the same run draw independent sequences.
    public init(seed: UInt64, label: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in label.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        state = seed ^ hash
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// An exponential draw with the given mean (for Poisson arrivals).
    public mutating func exponential(mean: Double) -> Double {
        -mean * log1mUnit()
    }

    private mutating func log1mUnit() -> Double {
        // log(1 - u) with u in [0, 1): never log(0).
        var u = unit()
        if u >= 1 { u = 0.999_999_999 }
        return _log(1 - u)
    }
}

#if canImport(Glibc)
import Glibc
private func _log(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
import Darwin
private func _log(_ x: Double) -> Double { Darwin.log(x) }
#endif
