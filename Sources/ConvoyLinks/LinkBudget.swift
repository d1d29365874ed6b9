import ConvoyCore
import Foundation

/// A link budget at one distance: what `convoy link` prints, and what the emulation applies to one
/// message on an idle link (no queueing behind other traffic, no jitter).
public struct LinkBudget: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case cellular, macro, v2v, backhaul, wan
    }

    public var kind: Kind
    public var distanceM: Double?
    public var pathLossDB: Double?
    public var snrDB: Double?
    /// Modulation (V2V) or CQI efficiency (cellular with the CQI table); nil otherwise.
    public var scheme: String?
    /// Rate available to the message, bit/s (after sharing); nil when out of range.
    public var rateBitsPerSecond: Double?
    public var messageBytes: Int
    public var serialisationMs: Double?
    public var propagationMs: Double?
    /// serialisation + propagation (+ latency for wired links); nil when out of range.
    public var deliveryMs: Double?
    public var lossProbability: Double?
    public var inRange: Bool

    enum CodingKeys: String, CodingKey {
        case kind, distanceM = "distance_m", pathLossDB = "path_loss_db", snrDB = "snr_db", scheme
        case rateBitsPerSecond = "rate_bps", messageBytes = "message_bytes", serialisationMs = "serialisation_ms"
        case propagationMs = "propagation_ms", deliveryMs = "delivery_ms", lossProbability = "loss_probability", inRange = "in_range"
    }

    /// Cellular (RSU cell or macro cell) at `distance`, for a vehicle holding `1/sharing` of the band.
    public static func cellular(distance: Double, bytes: Int, parameters: CellularParameters, radius: Double = .infinity,
                                sharing: Int = 1, kind: Kind = .cellular) -> LinkBudget {
        let pl = CellularBudget.pathLossDB(distance: distance)
        let snr = CellularBudget.snrDB(distance: distance, parameters: parameters)
        let rate = CellularBudget.rateBitsPerSecond(distance: distance, parameters: parameters, share: 1 / Double(max(1, sharing)))
        let inRange = distance <= radius && rate > 0
        let efficiency = parameters.rateModel == .lteCQI ? parameters.rateModel.spectralEfficiency(snrDB: snr) : nil
        let serialisation = inRange ? bits(bytes) / rate : nil
        let propagation = Propagation.delay(distance: distance)
        return LinkBudget(kind: kind, distanceM: distance, pathLossDB: pl, snrDB: snr,
                          scheme: efficiency.map { "CQI efficiency \($0) bit/s/Hz" }, rateBitsPerSecond: inRange ? rate : nil,
                          messageBytes: bytes, serialisationMs: serialisation.map { $0 * 1e3 }, propagationMs: propagation * 1e3,
                          deliveryMs: serialisation.map { ($0 + propagation) * 1e3 }, lossProbability: parameters.residualLoss,
                          inRange: inRange)
    }

    public static func v2v(distance: Double, bytes: Int, parameters: V2VParameters) -> LinkBudget {
        let pl = V2VBudget.pathLossDB(distance: distance, frequencyGHz: parameters.frequencyGHz)
        let snr = V2VBudget.snrDB(distance: distance, parameters: parameters)
        let modulation = V2VBudget.modulation(snrDB: snr)
        let rate = V2VBudget.rateBitsPerSecond(snrDB: snr, bandwidthHz: parameters.bandwidthHz)
        let inRange = distance <= parameters.rangeM && rate != nil
        let serialisation = inRange ? rate.map { bits(bytes) / $0 } : nil
        let propagation = Propagation.delay(distance: distance)
        return LinkBudget(kind: .v2v, distanceM: distance, pathLossDB: pl, snrDB: snr, scheme: modulation?.name,
                          rateBitsPerSecond: inRange ? rate : nil, messageBytes: bytes, serialisationMs: serialisation.map { $0 * 1e3 },
                          propagationMs: propagation * 1e3, deliveryMs: serialisation.map { ($0 + propagation) * 1e3 },
                          lossProbability: inRange ? V2VBudget.packetErrorRate(snrDB: snr, bytes: bytes) : nil, inRange: inRange)
    }

    public static func wired(_ kind: Kind, bytes: Int, parameters: WiredParameters) -> LinkBudget {
        let serialisation = bits(bytes) / parameters.bandwidthBitsPerSecond
        return LinkBudget(kind: kind, distanceM: nil, pathLossDB: nil, snrDB: nil, scheme: nil,
                          rateBitsPerSecond: parameters.bandwidthBitsPerSecond, messageBytes: bytes,
                          serialisationMs: serialisation * 1e3, propagationMs: parameters.latency * 1e3,
                          deliveryMs: (serialisation + parameters.latency) * 1e3, lossProbability: parameters.loss, inRange: true)
    }

    /// Human-readable lines.
    public var text: String {
        func f(_ v: Double?, _ digits: Int, _ unit: String) -> String {
            v.map { String(format: "%.\(digits)f \(unit)", $0) } ?? "—"
        }
        var lines = ["link:          \(kind.rawValue)"]
        if let distanceM { lines.append("distance:      \(f(distanceM, 1, "m"))") }
        if pathLossDB != nil { lines.append("path loss:     \(f(pathLossDB, 1, "dB"))") }
        if snrDB != nil { lines.append("SNR:           \(f(snrDB, 1, "dB"))") }
        if let scheme { lines.append("scheme:        \(scheme)") }
        lines.append("rate:          \(f(rateBitsPerSecond.map { $0 / 1e6 }, 2, "Mbit/s"))")
        lines.append("message:       \(messageBytes) bytes")
        lines.append("serialisation: \(f(serialisationMs, 3, "ms"))")
        lines.append("\(distanceM == nil ? "latency:      " : "propagation:  ") \(f(propagationMs, 4, "ms"))")
        lines.append("delivery:      \(f(deliveryMs, 3, "ms"))\(inRange ? "" : " (out of range)")")
        if let lossProbability { lines.append("loss:          \(String(format: "%.4g", lossProbability))") }
        return lines.joined(separator: "\n")
    }
}
