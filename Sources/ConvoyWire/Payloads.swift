import ConvoyCore

/// A payload with a fixed binary layout (PROTOCOL.md).
public protocol WirePayload: Sendable, Equatable {
    static var kind: MessageKind { get }
    func encode(into writer: inout ByteWriter)
    init(from reader: inout ByteReader) throws(DecodeError)
}

extension WirePayload {
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        encode(into: &w)
        return w.bytes
    }

    /// Decodes a whole payload; trailing bytes are an error.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Self {
        var r = ByteReader(bytes)
        let value = try Self(from: &r)
        try r.expectEnd()
        return value
    }
}

/// Presence and load of an RSU, edge server or cloud; also its liveness heartbeat.
public struct Beacon: WirePayload {
    public static let kind = MessageKind.beacon
    public var role: NodeRole
    /// Vehicles active in the sender's cell (RSUs; 0 otherwise).
    public var activeVehicles: UInt16
    /// Requests waiting for a compute slot.
    public var queued: UInt16
    /// Compute slots busy / total (0 / 0 for a node without compute).
    public var busySlots: UInt16
    public var slots: UInt16

    public init(role: NodeRole, activeVehicles: UInt16 = 0, queued: UInt16 = 0, busySlots: UInt16 = 0, slots: UInt16 = 0) {
        self.role = role
        self.activeVehicles = activeVehicles
        self.queued = queued
        self.busySlots = busySlots
        self.slots = slots
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(role.wireCode)
        w.u16(activeVehicles)
        w.u16(queued)
        w.u16(busySlots)
        w.u16(slots)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        role = try NodeRole(wireCode: try r.u8())
        activeVehicles = try r.u16()
        queued = try r.u16()
        busySlots = try r.u16()
        slots = try r.u16()
    }
}

/// A vehicle's V2V beacon; the envelope carries its position.
public struct V2VBeacon: WirePayload {
    public static let kind = MessageKind.v2vBeacon
    public var speed: Double
    public var heading: Double

    public init(speed: Double, heading: Double) {
        self.speed = speed
        self.heading = heading
    }

    public func encode(into w: inout ByteWriter) {
        w.f64(speed)
        w.f64(heading)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        speed = try r.f64()
        heading = try r.f64()
    }
}

/// An inference request. Forwarded unchanged along the path (vehicle → RSU → edge → cloud); each
/// hop puts its own envelope around it.
public struct InferenceRequest: WirePayload {
    public static let kind = MessageKind.request
    /// Unique per run: `<vehicle id>/<sequence>`. Servers de-duplicate on it.
    public var requestID: String
    /// 1 for the first attempt; a failover re-send carries the next number.
    public var attempt: UInt16
    public var vehicleID: String
    public var model: String
    public var inputTokens: UInt32
    public var outputTokens: UInt32
    /// Size of the input the request carries (emulated: the links account for it, the bytes are not sent).
    public var payloadBytes: UInt32
    /// Absolute deadline, emulated seconds.
    public var deadline: Double
    /// Hops taken so far, e.g. ["rsu-3", "edge-1"].
    public var route: [String]

    public init(requestID: String, attempt: UInt16, vehicleID: String, model: String, inputTokens: UInt32,
                outputTokens: UInt32, payloadBytes: UInt32, deadline: Double, route: [String] = []) {
        self.requestID = requestID
        self.attempt = attempt
        self.vehicleID = vehicleID
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.deadline = deadline
        self.route = route
    }

    public func encode(into w: inout ByteWriter) {
        w.string(requestID)
        w.u16(attempt)
        w.string(vehicleID)
        w.string(model)
        w.u32(inputTokens)
        w.u32(outputTokens)
        w.u32(payloadBytes)
        w.f64(deadline)
        w.strings(route)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        requestID = try r.string()
        attempt = try r.u16()
        vehicleID = try r.string()
        model = try r.string()
        inputTokens = try r.u32()
        outputTokens = try r.u32()
        payloadBytes = try r.u32()
        deadline = try r.f64()
        route = try r.strings()
    }
}

/// The answer to a request; travels back along the request's route.
public struct InferenceReply: WirePayload {
    public static let kind = MessageKind.reply

    public enum Status: UInt8, Sendable {
        /// Computed; `servedBy` did it.
        case completed = 0
        /// The server (and everything behind it) is full: try another path now.
        case rejected = 1
        /// The request cannot be served on this path (e.g. the next hop is dead): try another.
        case failed = 2
    }

    public var requestID: String
    public var attempt: UInt16
    public var status: Status
    public var servedBy: String
    /// The route the request took to `servedBy`, e.g. ["rsu-3", "edge-1"].
    public var route: [String]
    public var queueWait: Double
    public var computeTime: Double
    public var resultBytes: UInt32
    public var detail: String

    public init(requestID: String, attempt: UInt16, status: Status, servedBy: String, route: [String],
                queueWait: Double = 0, computeTime: Double = 0, resultBytes: UInt32 = 0, detail: String = "") {
        self.requestID = requestID
        self.attempt = attempt
        self.status = status
        self.servedBy = servedBy
        self.route = route
        self.queueWait = queueWait
        self.computeTime = computeTime
        self.resultBytes = resultBytes
        self.detail = detail
    }

    public func encode(into w: inout ByteWriter) {
        w.string(requestID)
        w.u16(attempt)
        w.u8(status.rawValue)
        w.string(servedBy)
        w.strings(route)
        w.f64(queueWait)
        w.f64(computeTime)
        w.u32(resultBytes)
        w.string(detail)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        requestID = try r.string()
        attempt = try r.u16()
        let raw = try r.u8()
        guard let status = Status(rawValue: raw) else { throw .invalid("unknown reply status \(raw)") }
        self.status = status
        servedBy = try r.string()
        route = try r.strings()
        queueWait = try r.f64()
        computeTime = try r.f64()
        resultBytes = try r.u32()
        detail = try r.string()
    }
}

extension NodeRole {
    /// The role's number on the wire.
    public var wireCode: UInt8 {
        switch self {
        case .vehicle: 0
        case .rsu: 1
        case .edge: 2
        case .cloud: 3
        }
    }

    public init(wireCode: UInt8) throws(DecodeError) {
        switch wireCode {
        case 0: self = .vehicle
        case 1: self = .rsu
        case 2: self = .edge
        case 3: self = .cloud
        default: throw .invalid("unknown role \(wireCode)")
        }
    }
}
