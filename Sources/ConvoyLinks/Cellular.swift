import ConvoyCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Radio parameters of a cellular cell (an RSU's cell or a macro cell).
///
/// | field | unit | default | meaning |
/// |---|---|---|---|
/// | `bandwidthHz` | Hz | 20 MHz | channel bandwidth `B`, shared by the vehicles active in the cell |
/// | `txPowerDBm` | dBm | 23 | transmit power (3GPP UE power class 3), used for both directions |
/// | `noiseDBm` | dBm | −80 | noise (plus interference) power at the receiver over `B` |
/// | `maxRateBitsPerSecond` | bit/s | `nil` | optional cap on one vehicle's rate after sharing; `nil`: no cap |
/// | `activityWindow` | s | 1 | a vehicle counts as active if it sent or received on the cell this recently |
/// | `residualLoss` | probability | 0 | residual block error rate: chance that a message is lost after transmission |
/// | `rateModel` | — | `.shannon` | Shannon capacity, or the LTE CQI table (`.lteCQI`, `CellularRateModel`) |
///
/// Decoding (JSON, YAML, …) accepts any subset of the fields; missing ones take their defaults, and
/// out-of-range values throw `DecodingError.dataCorrupted`.
public struct CellularParameters: Sendable, Equatable, Codable {
    public var bandwidthHz: Double
    public var txPowerDBm: Double
    public var noiseDBm: Double
    public var maxRateBitsPerSecond: Double?
    public var activityWindow: Double
    public var residualLoss: Double
    public var rateModel: CellularRateModel

    public init(
        bandwidthHz: Double = 20e6,
        txPowerDBm: Double = 23,
        noiseDBm: Double = -80,
        maxRateBitsPerSecond: Double? = nil,
        activityWindow: Double = 1.0,
        residualLoss: Double = 0,
        rateModel: CellularRateModel = .shannon
    ) {
        self.bandwidthHz = bandwidthHz
        self.txPowerDBm = txPowerDBm
        self.noiseDBm = noiseDBm
        self.maxRateBitsPerSecond = maxRateBitsPerSecond
        self.activityWindow = activityWindow
        self.residualLoss = residualLoss
        self.rateModel = rateModel
    }

    /// What is wrong with these parameters, or an empty list.
    public var problems: [String] {
        var problems: [String] = []
        if !(bandwidthHz > 0 && bandwidthHz.isFinite) { problems.append("bandwidthHz must be a positive number of Hz") }
        if !txPowerDBm.isFinite { problems.append("txPowerDBm must be finite") }
        if !noiseDBm.isFinite { problems.append("noiseDBm must be finite") }
        if let cap = maxRateBitsPerSecond, !(cap > 0) { problems.append("maxRateBitsPerSecond must be positive") }
        if !(activityWindow >= 0 && activityWindow.isFinite) { problems.append("activityWindow must be a non-negative number of seconds") }
        if !(residualLoss >= 0 && residualLoss <= 1) { problems.append("residualLoss must be a probability in [0, 1]") }
        return problems
    }

    private enum CodingKeys: String, CodingKey {
        case bandwidthHz, txPowerDBm, noiseDBm, maxRateBitsPerSecond, activityWindow, residualLoss, rateModel
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CellularParameters()
        self.init(
            bandwidthHz: try c.decode(.bandwidthHz, default: d.bandwidthHz),
            txPowerDBm: try c.decode(.txPowerDBm, default: d.txPowerDBm),
            noiseDBm: try c.decode(.noiseDBm, default: d.noiseDBm),
            maxRateBitsPerSecond: try c.decodeIfPresent(Double.self, forKey: .maxRateBitsPerSecond),
            activityWindow: try c.decode(.activityWindow, default: d.activityWindow),
            residualLoss: try c.decode(.residualLoss, default: d.residualLoss),
            rateModel: try c.decode(.rateModel, default: d.rateModel)
        )
        try c.require(bandwidthHz > 0 && bandwidthHz.isFinite, .bandwidthHz, "expected a positive bandwidth in Hz")
        try c.require(txPowerDBm.isFinite, .txPowerDBm, "expected a finite power in dBm")
        try c.require(noiseDBm.isFinite, .noiseDBm, "expected a finite power in dBm")
        try c.require(maxRateBitsPerSecond.map { $0 > 0 } ?? true, .maxRateBitsPerSecond, "expected a positive rate in bit/s")
        try c.require(activityWindow >= 0 && activityWindow.isFinite, .activityWindow, "expected a non-negative duration in seconds")
        try c.require(residualLoss >= 0 && residualLoss <= 1, .residualLoss, "expected a probability in [0, 1]")
    }
}

/// Link budget of a cellular link (vehicle ↔ RSU, vehicle ↔ macro cell).
///
/// - Path loss, 3GPP TR 36.814 V9.0.0, Table A.2.1.1-2 (macro cell, NLOS), distance `d` in metres
///   clamped to ≥ `minimumLinkDistance` (1 m):
///   `PL(d) = 128.1 + 37.6·log10(d / 1000 m)` dB.
/// - Signal-to-noise ratio: `SNR = P_tx − PL(d) − N` dB.
/// - Rate, Shannon capacity of the vehicle's share `s` of the band:
///   `R = s · B · log2(1 + 10^(SNR/10))` bit/s, then capped at `maxRateBitsPerSecond` if set.
///
/// Worked check with the defaults at 100 m: PL = 90.5 dB, SNR = 23 − 90.5 + 80 = 12.5 dB,
/// R = 20 MHz · log2(1 + 17.78) ≈ 84.6 Mbit/s.
public enum CellularBudget {
    /// Path loss in dB at `distance` metres (3GPP TR 36.814 macro model).
    public static func pathLossDB(distance: Double) -> Double {
        128.1 + 37.6 * log10(max(distance, minimumLinkDistance) / 1000)
    }

    /// Signal-to-noise ratio in dB at `distance` metres.
    public static func snrDB(distance: Double, parameters: CellularParameters = CellularParameters()) -> Double {
        parameters.txPowerDBm - pathLossDB(distance: distance) - parameters.noiseDBm
    }

    /// Rate in bit/s of a vehicle at `distance` metres that holds the fraction `share` (0 < share ≤ 1)
    /// of the band: `share · B · spectral efficiency` (Shannon, or the CQI table), capped at
    /// `maxRateBitsPerSecond`. 0 when the CQI table finds no usable CQI.
    public static func rateBitsPerSecond(
        distance: Double, parameters: CellularParameters = CellularParameters(), share: Double = 1
    ) -> Double {
        precondition(share > 0 && share <= 1, "a share of the band is in (0, 1]")
        let snr = snrDB(distance: distance, parameters: parameters)
        let rate = share * parameters.bandwidthHz * parameters.rateModel.spectralEfficiency(snrDB: snr)
        if let cap = parameters.maxRateBitsPerSecond { return min(rate, cap) }
        return rate
    }
}

/// How a cell turns SNR into bits per second per hertz.
public enum CellularRateModel: String, Sendable, Equatable, Codable, CaseIterable {
    /// `log2(1 + SNR)`: the paper's model, an upper bound.
    case shannon
    /// LTE link adaptation: the spectral efficiency of the highest CQI whose SNR threshold is met
    /// (3GPP TS 36.213 Table 7.2.3-1 efficiencies; thresholds for 10 % BLER as commonly used in
    /// system-level simulation). Below CQI 1 (−6.7 dB) nothing can be sent.
    case lteCQI = "lte-cqi"

    /// (SNR threshold dB, efficiency bit/s/Hz) for CQI 1…15.
    public static let cqiTable: [(snrDB: Double, efficiency: Double)] = [
        (-6.7, 0.1523), (-4.7, 0.2344), (-2.3, 0.3770), (0.2, 0.6016), (2.4, 0.8770),
        (4.3, 1.1758), (5.9, 1.4766), (8.1, 1.9141), (10.3, 2.4063), (11.7, 2.7305),
        (14.1, 3.3223), (16.3, 3.9023), (18.7, 4.5234), (21.0, 5.1152), (22.7, 5.5547),
    ]

    public func spectralEfficiency(snrDB: Double) -> Double {
        switch self {
        case .shannon: log2(1 + linear(fromDB: snrDB))
        case .lteCQI: Self.cqiTable.last { $0.snrDB <= snrDB }?.efficiency ?? 0
        }
    }
}

/// The radio cell of an RSU (or of a macro cell): the vehicles active in it, and for each of them an
/// uplink and a downlink transmission queue.
///
/// Model:
/// - Coverage: a vehicle farther than `radius` metres from `position` is `.outOfRange`; nothing is
///   transmitted and the vehicle is not marked active.
/// - Sharing: the band is split equally among the `n` vehicles active at that instant (OFDMA-like
///   equal resource share). A vehicle is active if it sent or received on the cell within the last
///   `activityWindow` seconds (`now − lastActivity ≤ activityWindow`); the vehicle that is
///   transmitting always counts, so `n ≥ 1`. Its rate is
///   `CellularBudget.rateBitsPerSecond(distance: d, share: 1/n)`, evaluated when the message is handed
///   to the cell (the rate of that instant holds for the whole message).
/// - Queueing: because each vehicle has its own share of the band, each vehicle has its own FIFO
///   `TransmissionQueue` per direction (a single cell-wide FIFO on top of the 1/n share would charge the
///   sharing twice). A message waits behind the same vehicle's earlier messages in that direction.
/// - Delivery: `finish + d / c`, where `finish` is when its serialisation `bits / rate` ends.
/// - Loss: after transmission (the message still occupies its queue), the message is lost with
///   probability `residualLoss`. Every in-range message consumes exactly one draw of the generator.
public struct CellLink: Sendable {
    /// Where the cell's antenna stands.
    public var position: Position
    /// Coverage radius in metres.
    public var radius: Double
    public var parameters: CellularParameters

    private struct VehicleState: Sendable {
        var lastActivity: Double
        var uplink = TransmissionQueue()
        var downlink = TransmissionQueue()
    }

    private var vehicles: [String: VehicleState] = [:]

    public init(position: Position, radius: Double, parameters: CellularParameters = CellularParameters()) {
        precondition(radius >= 0, "a cell radius cannot be negative")
        precondition(parameters.problems.isEmpty, "invalid cellular parameters: \(parameters.problems)")
        self.position = position
        self.radius = radius
        self.parameters = parameters
    }

    /// Whether a vehicle at `p` is within the cell's radius.
    public func covers(_ p: Position) -> Bool {
        p.distance(to: position) <= radius
    }

    /// A message from `vehicle` at `from` (its position when it sent, at `sentAt`) of `bytes`, arriving
    /// at the cell process at `now` (≥ `sentAt`). Marks the vehicle active.
    ///
    /// Serialisation is accounted from when the message was sent: the message enters the vehicle's
    /// uplink queue at `sentAt`, so `finish = max(sentAt, busyUntil) + bits / rate` and the message is
    /// delivered at `finish + d / c`. Since the cell process only learns of the message at `now`, a
    /// delivery time earlier than `now` is raised to `now` (the real transport already took longer
    /// than the emulated link would have); the queue still records the unclamped `finish`.
    public mutating func uplink(
        vehicle: String, from: Position, bytes: Int, sentAt: Double, now: Double,
        rng: inout SeededGenerator
    ) -> LinkOutcome {
        let distance = from.distance(to: position)
        guard reaches(distance) else { return .outOfRange }
        let duration = serialisation(bytes: bytes, vehicle: vehicle, distance: distance, now: now)
        let finish = vehicles[vehicle]!.uplink.transmit(arrival: sentAt, duration: duration).finish
        if lost(&rng) { return .lost }
        return .deliver(at: max(now, finish + Propagation.delay(distance: distance)))
    }

    /// A message from the cell to `vehicle` at `to` (its last known position), handed over at `now`.
    /// Marks the vehicle active. The message enters the vehicle's downlink queue at `now`:
    /// `finish = max(now, busyUntil) + bits / rate`, delivered at `finish + d / c`.
    public mutating func downlink(
        vehicle: String, to: Position, bytes: Int, now: Double, rng: inout SeededGenerator
    ) -> LinkOutcome {
        let distance = to.distance(to: position)
        guard reaches(distance) else { return .outOfRange }
        let duration = serialisation(bytes: bytes, vehicle: vehicle, distance: distance, now: now)
        let finish = vehicles[vehicle]!.downlink.transmit(arrival: now, duration: duration).finish
        if lost(&rng) { return .lost }
        return .deliver(at: finish + Propagation.delay(distance: distance))
    }

    /// How many vehicles are active in the cell at `now`.
    public func activeVehicles(now: Double) -> Int {
        vehicles.values.reduce(0) { $0 + (isActive($1, now: now) ? 1 : 0) }
    }

    /// Whether `vehicle` is active in the cell at `now`.
    public func isActive(vehicle: String, now: Double) -> Bool {
        vehicles[vehicle].map { isActive($0, now: now) } ?? false
    }

    /// The rate in bit/s that `vehicle` at `position` would get for a message handed over at `now`
    /// (counting itself as active), or `nil` when it is out of range. Does not change the cell.
    public func rateBitsPerSecond(vehicle: String, at p: Position, now: Double) -> Double? {
        let distance = p.distance(to: position)
        guard distance <= radius else { return nil }
        let n = activeVehicles(now: now) + (isActive(vehicle: vehicle, now: now) ? 0 : 1)
        return CellularBudget.rateBitsPerSecond(distance: distance, parameters: parameters, share: 1 / Double(n))
    }

    /// Seconds a new uplink message of `vehicle` arriving at `now` would wait behind its earlier ones.
    public func uplinkBacklog(vehicle: String, now: Double) -> Double {
        vehicles[vehicle]?.uplink.backlog(now: now) ?? 0
    }

    /// Seconds a new downlink message to `vehicle` handed over at `now` would wait behind earlier ones.
    public func downlinkBacklog(vehicle: String, now: Double) -> Double {
        vehicles[vehicle]?.downlink.backlog(now: now) ?? 0
    }

    // MARK: - Internals

    /// Within the radius, and at a distance where the rate model can send anything.
    private func reaches(_ distance: Double) -> Bool {
        distance <= radius
            && parameters.rateModel.spectralEfficiency(snrDB: CellularBudget.snrDB(distance: distance, parameters: parameters)) > 0
    }

    private func isActive(_ state: VehicleState, now: Double) -> Bool {
        now - state.lastActivity <= parameters.activityWindow
    }

    /// Marks `vehicle` active at `now`, forgets idle vehicles, and returns the serialisation time of
    /// `bytes` at the vehicle's current share of the band.
    private mutating func serialisation(bytes: Int, vehicle: String, distance: Double, now: Double) -> Double {
        let size = bits(bytes)
        forgetIdle(now: now)
        if var state = vehicles[vehicle] {
            state.lastActivity = max(state.lastActivity, now)
            vehicles[vehicle] = state
        } else {
            vehicles[vehicle] = VehicleState(lastActivity: now)
        }
        let n = max(1, activeVehicles(now: now))
        let rate = CellularBudget.rateBitsPerSecond(distance: distance, parameters: parameters, share: 1 / Double(n))
        return size / rate
    }

    /// Drops vehicles that are inactive and whose queues have drained, so the table stays small.
    private mutating func forgetIdle(now: Double) {
        let window = parameters.activityWindow
        vehicles = vehicles.filter { _, state in
            now - state.lastActivity <= window || state.uplink.busyUntil > now || state.downlink.busyUntil > now
        }
    }

    /// One draw: whether the message is lost to the residual block error rate.
    private func lost(_ rng: inout SeededGenerator) -> Bool {
        rng.unit() < parameters.residualLoss
    }
}
