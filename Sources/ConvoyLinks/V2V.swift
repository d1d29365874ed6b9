import ConvoyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Radio parameters of vehicle-to-vehicle links (IEEE 802.11p / ITS-G5 on a 10 MHz channel).
///
/// | field | unit | default | meaning |
/// |---|---|---|---|
/// | `frequencyGHz` | GHz | 5.9 | carrier frequency `fc` |
/// | `bandwidthHz` | Hz | 10 MHz | channel width; the 802.11p rates scale with `bandwidthHz / 10 MHz` |
/// | `txPowerDBm` | dBm | 23 | transmit power |
/// | `noiseDBm` | dBm | −95 | noise power at the receiver over the channel |
/// | `rangeM` | m | 300 | receivers farther away are out of range whatever their SNR |
///
/// Decoding accepts any subset of the fields; missing ones take their defaults, and out-of-range
/// values throw `DecodingError.dataCorrupted`.
public struct V2VParameters: Sendable, Equatable, Codable {
    public var frequencyGHz: Double
    public var bandwidthHz: Double
    public var txPowerDBm: Double
    public var noiseDBm: Double
    public var rangeM: Double

    public init(
        frequencyGHz: Double = 5.9,
        bandwidthHz: Double = 10e6,
        txPowerDBm: Double = 23,
        noiseDBm: Double = -95,
        rangeM: Double = 300
    ) {
        self.frequencyGHz = frequencyGHz
        self.bandwidthHz = bandwidthHz
        self.txPowerDBm = txPowerDBm
        self.noiseDBm = noiseDBm
        self.rangeM = rangeM
    }

    /// What is wrong with these parameters, or an empty list.
    public var problems: [String] {
        var problems: [String] = []
        if !(frequencyGHz > 0 && frequencyGHz.isFinite) { problems.append("frequencyGHz must be a positive number of GHz") }
        if !(bandwidthHz > 0 && bandwidthHz.isFinite) { problems.append("bandwidthHz must be a positive number of Hz") }
        if !txPowerDBm.isFinite { problems.append("txPowerDBm must be finite") }
        if !noiseDBm.isFinite { problems.append("noiseDBm must be finite") }
        if !(rangeM >= 0) { problems.append("rangeM must be a non-negative number of metres") }
        return problems
    }

    private enum CodingKeys: String, CodingKey {
        case frequencyGHz, bandwidthHz, txPowerDBm, noiseDBm, rangeM
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = V2VParameters()
        self.init(
            frequencyGHz: try c.decode(.frequencyGHz, default: d.frequencyGHz),
            bandwidthHz: try c.decode(.bandwidthHz, default: d.bandwidthHz),
            txPowerDBm: try c.decode(.txPowerDBm, default: d.txPowerDBm),
            noiseDBm: try c.decode(.noiseDBm, default: d.noiseDBm),
            rangeM: try c.decode(.rangeM, default: d.rangeM)
        )
        try c.require(frequencyGHz > 0 && frequencyGHz.isFinite, .frequencyGHz, "expected a positive frequency in GHz")
        try c.require(bandwidthHz > 0 && bandwidthHz.isFinite, .bandwidthHz, "expected a positive bandwidth in Hz")
        try c.require(txPowerDBm.isFinite, .txPowerDBm, "expected a finite power in dBm")
        try c.require(noiseDBm.isFinite, .noiseDBm, "expected a finite power in dBm")
        try c.require(rangeM >= 0, .rangeM, "expected a non-negative distance in metres")
    }
}

/// One 802.11p modulation and coding scheme on a 10 MHz channel.
public struct V2VModulation: Sendable, Equatable {
    /// Human-readable name, e.g. "QPSK 1/2".
    public var name: String
    /// Lowest SNR (dB) at which this scheme is chosen; at this SNR a 1000-byte packet has a 10 %
    /// packet error rate.
    public var thresholdDB: Double
    /// PHY rate on a 10 MHz channel, bit/s.
    public var rateBitsPerSecond: Double
}

/// Link budget of a V2V link (802.11p).
///
/// - Path loss, 3GPP TR 37.885 V15.3.0, Table 6.2.1-1, V2V Highway/Urban LOS, `d` in metres clamped
///   to ≥ 1 m, `fc` in GHz: `PL = 38.77 + 16.7·log10(d) + 18.2·log10(fc)` dB
///   (at 5.9 GHz: `PL = 52.80 + 16.7·log10(d)`).
/// - `SNR = P_tx − PL − N` dB.
/// - Rate: the fastest 802.11p scheme whose threshold the SNR reaches (`mcsTable`); below the lowest
///   threshold (5 dB) there is no link. Thresholds 5, 6, 8, 11, 15, 20, 25, 26 dB for 3 … 27 Mbit/s are
///   the project brief's values; they are 1–5 dB more conservative than the ones implied by the
///   receiver minimum sensitivities of IEEE Std 802.11-2016 Table 17-18 for 10 MHz channels
///   (−85, −84, −82, −80, −77, −73, −69, −68 dBm) with the standard's 10 dB noise figure and 5 dB
///   implementation margin (4, 5, 7, 9, 12, 16, 20, 21 dB).
/// - Packet error rate: a logistic waterfall around the chosen scheme's threshold `θ`, calibrated like
///   the standard's sensitivity test (10 % PER for a 1000-byte packet at threshold):
///   `PER₁₀₀₀ = 1 / (1 + 9·exp(k·(SNR − θ)))`, `k = 2 /dB` (≈ 1.2 % at θ + 1 dB, 0.15 % at θ + 2 dB),
///   scaled to `L` bytes assuming independent errors: `PER(L) = 1 − (1 − PER₁₀₀₀)^(L/1000)`.
public enum V2VBudget {
    /// 802.11p schemes on a 10 MHz channel, slowest first.
    public static let mcsTable: [V2VModulation] = [
        V2VModulation(name: "BPSK 1/2", thresholdDB: 5, rateBitsPerSecond: 3e6),
        V2VModulation(name: "BPSK 3/4", thresholdDB: 6, rateBitsPerSecond: 4.5e6),
        V2VModulation(name: "QPSK 1/2", thresholdDB: 8, rateBitsPerSecond: 6e6),
        V2VModulation(name: "QPSK 3/4", thresholdDB: 11, rateBitsPerSecond: 9e6),
        V2VModulation(name: "16-QAM 1/2", thresholdDB: 15, rateBitsPerSecond: 12e6),
        V2VModulation(name: "16-QAM 3/4", thresholdDB: 20, rateBitsPerSecond: 18e6),
        V2VModulation(name: "64-QAM 2/3", thresholdDB: 25, rateBitsPerSecond: 24e6),
        V2VModulation(name: "64-QAM 3/4", thresholdDB: 26, rateBitsPerSecond: 27e6),
    ]

    /// Slope `k` of the packet-error waterfall, per dB.
    public static let perSlopePerDB = 2.0
    /// Packet length (bytes) at which `PER = 10 %` at a scheme's threshold.
    public static let perReferenceBytes = 1000.0

    /// Path loss in dB at `distance` metres and carrier `frequencyGHz` (3GPP TR 37.885 V2V LOS).
    public static func pathLossDB(distance: Double, frequencyGHz: Double = 5.9) -> Double {
        38.77 + 16.7 * log10(max(distance, minimumLinkDistance)) + 18.2 * log10(frequencyGHz)
    }

    /// Signal-to-noise ratio in dB at `distance` metres.
    public static func snrDB(distance: Double, parameters: V2VParameters = V2VParameters()) -> Double {
        parameters.txPowerDBm - pathLossDB(distance: distance, frequencyGHz: parameters.frequencyGHz) - parameters.noiseDBm
    }

    /// The fastest scheme whose threshold `snrDB` reaches, or `nil` below the lowest threshold.
    public static func modulation(snrDB: Double) -> V2VModulation? {
        mcsTable.last { $0.thresholdDB <= snrDB }
    }

    /// PHY rate in bit/s at `snrDB` on a channel of `bandwidthHz` (rates scale from 10 MHz), or `nil`
    /// below the lowest threshold.
    public static func rateBitsPerSecond(snrDB: Double, bandwidthHz: Double = 10e6) -> Double? {
        modulation(snrDB: snrDB).map { $0.rateBitsPerSecond * bandwidthHz / 10e6 }
    }

    /// Probability that a packet of `bytes` sent at the scheme chosen for `snrDB` is lost; 1 below
    /// the lowest threshold.
    public static func packetErrorRate(snrDB: Double, bytes: Int) -> Double {
        guard let scheme = modulation(snrDB: snrDB) else { return 1 }
        let reference = 1 / (1 + 9 * exp(perSlopePerDB * (snrDB - scheme.thresholdDB)))
        let length = Double(max(0, bytes)) / perReferenceBytes
        return -expm1(length * log1p(-reference))
    }
}

/// A V2V transmission (802.11p broadcast or unicast between two vehicles). Stateless: channel access
/// contention and the sender's own queue are not modelled.
///
/// - Out of range when `d > rangeM` or `SNR` is below the lowest scheme threshold.
/// - Lost with probability `V2VBudget.packetErrorRate(snrDB:bytes:)` (one generator draw per in-range
///   message).
/// - Otherwise delivered at `sentAt + bits / rate + d / c`.
public enum V2VLink {
    /// What happens to `bytes` sent at `sentAt` by a vehicle at `from` to a vehicle at `to`
    /// (positions at sending time).
    public static func receive(
        from: Position, to: Position, bytes: Int, sentAt: Double,
        parameters: V2VParameters = V2VParameters(), rng: inout SeededGenerator
    ) -> LinkOutcome {
        let size = bits(bytes)
        let distance = from.distance(to: to)
        guard distance <= parameters.rangeM else { return .outOfRange }
        let snr = V2VBudget.snrDB(distance: distance, parameters: parameters)
        guard let rate = V2VBudget.rateBitsPerSecond(snrDB: snr, bandwidthHz: parameters.bandwidthHz) else {
            return .outOfRange
        }
        if rng.unit() < V2VBudget.packetErrorRate(snrDB: snr, bytes: bytes) { return .lost }
        return .deliver(at: sentAt + size / rate + Propagation.delay(distance: distance))
    }
}
