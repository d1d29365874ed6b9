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
        role = try NodeRole(decoding: try r.u8())
        activeVehicles = try r.u16()
        queued = try r.u16()
        busySlots = try r.u16()
        slots = try r.u16()
    }
}

/// A vehicle's V2V beacon; the envelope carries its position. It also says what the vehicle can
/// do for a neighbour: compute on board, or relay to an RSU.
public struct V2VBeacon: WirePayload {
    public static let kind = MessageKind.v2vBeacon
    public var speed: Double
    public var heading: Double
    /// On-board compute slots free now (0: none, or no on-board compute).
    public var freeSlots: UInt8
    /// The cellular rate, bits/s, the vehicle would get at its best RSU now (0: no RSU in range).
    public var uplinkRate: Double

    public init(speed: Double, heading: Double, freeSlots: UInt8 = 0, uplinkRate: Double = 0) {
        self.speed = speed
        self.heading = heading
        self.freeSlots = freeSlots
        self.uplinkRate = uplinkRate
    }

    public func encode(into w: inout ByteWriter) {
        w.f64(speed)
        w.f64(heading)
        w.u8(freeSlots)
        w.f64(uplinkRate)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        speed = try r.f64()
        heading = try r.f64()
        freeSlots = try r.u8()
        uplinkRate = try r.f64()
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
    /// Size of the answer (emulated like the payload).
    public var resultBytes: UInt32
    /// Absolute deadline, emulated seconds.
    public var deadline: Double
    /// Hops taken so far, e.g. ["rsu-3", "edge-1"]; a neighbour vehicle relaying the request over
    /// V2V sends it on with an empty route (it is the RSU's client).
    public var route: [String]
    /// The real prompt (a task with a prompt file), sent as bytes; empty when the task has none.
    /// The links account for its bytes on top of `payloadBytes`.
    public var prompt: String
    /// Split inference: the requester ran the first `splitAt` layers of the prefill and sends their
    /// output (activations and KV cache, `payloadBytes`); the server runs the rest and decodes.
    /// 0: the whole model.
    public var splitAt: UInt16
    /// A model split across vehicles: this stage runs layers `splitAt..<sliceEnd` (prefill and
    /// decode), then hands on to `chain[0]` over V2V, the last stage answers the requester.
    /// 0: not a pipeline stage.
    public var sliceEnd: UInt16
    /// The vehicles holding the stages after this one, in order.
    public var chain: [String]

    public init(requestID: String, attempt: UInt16, vehicleID: String, model: String, inputTokens: UInt32,
                outputTokens: UInt32, payloadBytes: UInt32, resultBytes: UInt32 = 2_000, deadline: Double, route: [String] = [],
                prompt: String = "", splitAt: UInt16 = 0, sliceEnd: UInt16 = 0, chain: [String] = []) {
        self.splitAt = splitAt
        self.sliceEnd = sliceEnd
        self.chain = chain
        self.requestID = requestID
        self.attempt = attempt
        self.vehicleID = vehicleID
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.resultBytes = resultBytes
        self.deadline = deadline
        self.route = route
        self.prompt = prompt
    }

    /// Bytes the links carry for it: the declared payload plus the prompt's real bytes.
    public var linkBytes: Int { Int(payloadBytes) + prompt.utf8.count }

    public func encode(into w: inout ByteWriter) {
        w.string(requestID)
        w.u16(attempt)
        w.string(vehicleID)
        w.string(model)
        w.u32(inputTokens)
        w.u32(outputTokens)
        w.u32(payloadBytes)
        w.u32(resultBytes)
        w.f64(deadline)
        w.strings(route)
        w.text(prompt)
        w.u16(splitAt)
        w.u16(sliceEnd)
        w.strings(chain)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        requestID = try r.string()
        attempt = try r.u16()
        vehicleID = try r.string()
        model = try r.string()
        inputTokens = try r.u32()
        outputTokens = try r.u32()
        payloadBytes = try r.u32()
        resultBytes = try r.u32()
        deadline = try r.f64()
        route = try r.strings()
        prompt = try r.text()
        splitAt = try r.u16()
        sliceEnd = try r.u16()
        chain = try r.strings()
        guard sliceEnd == 0 || sliceEnd > splitAt else { throw .invalid("slice \(splitAt)..<\(sliceEnd)") }
    }
}

/// Withdraws one attempt of a request (a hedged request was answered on another path, or a
/// neighbour's shared result made it unnecessary): the server drops it if it has not answered yet.
public struct InferenceCancel: WirePayload {
    public static let kind = MessageKind.cancel
    public var requestID: String
    public var attempt: UInt16

    public init(requestID: String, attempt: UInt16) {
        self.requestID = requestID
        self.attempt = attempt
    }

    public func encode(into w: inout ByteWriter) {
        w.string(requestID)
        w.u16(attempt)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        requestID = try r.string()
        attempt = try r.u16()
    }
}

/// The result of a shareable task, broadcast over V2V by the vehicle that obtained it; the
/// envelope carries its position. Neighbours with a pending task of the same key reuse it.
public struct SharedResult: WirePayload {
    public static let kind = MessageKind.sharedResult
    /// The request that computed it.
    public var requestID: String
    /// Task name and area, e.g. `hazard-caption@12,-3`: only a task with the same key can reuse it.
    public var key: String
    /// Emulated seconds when the result was obtained (freshness is measured from it).
    public var computedAt: Double
    /// Who computed it.
    public var servedBy: String
    public var resultBytes: UInt32
    /// The generated answer (a real model server); empty for a modelled one.
    public var answer: String

    public init(requestID: String, key: String, computedAt: Double, servedBy: String, resultBytes: UInt32, answer: String = "") {
        self.requestID = requestID
        self.key = key
        self.computedAt = computedAt
        self.servedBy = servedBy
        self.resultBytes = resultBytes
        self.answer = answer
    }

    /// Bytes the result stands for beyond the frame: none when the real answer is in it.
    public var virtualResultBytes: Int { answer.isEmpty ? Int(resultBytes) : 0 }

    public func encode(into w: inout ByteWriter) {
        w.string(requestID)
        w.string(key)
        w.f64(computedAt)
        w.string(servedBy)
        w.u32(resultBytes)
        w.text(answer)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        requestID = try r.string()
        key = try r.string()
        computedAt = try r.f64()
        servedBy = try r.string()
        resultBytes = try r.u32()
        answer = try r.text()
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
    /// The generated answer (a real model server); empty for a modelled one. When present, its
    /// bytes are the result's size on the links (`resultBytes` equals them).
    public var answer: String

    public init(requestID: String, attempt: UInt16, status: Status, servedBy: String, route: [String],
                queueWait: Double = 0, computeTime: Double = 0, resultBytes: UInt32 = 0, detail: String = "", answer: String = "") {
        self.requestID = requestID
        self.attempt = attempt
        self.status = status
        self.servedBy = servedBy
        self.route = route
        self.queueWait = queueWait
        self.computeTime = computeTime
        self.resultBytes = resultBytes
        self.detail = detail
        self.answer = answer
    }

    /// Bytes the result stands for beyond the frame: none when the real answer is in it.
    public var virtualResultBytes: Int { answer.isEmpty ? Int(resultBytes) : 0 }

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
        w.text(answer)
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
        answer = try r.text()
    }
}

extension NodeRole {
    init(decoding code: UInt8) throws(DecodeError) {
        guard let role = NodeRole(wireCode: code) else { throw .invalid("unknown role \(code)") }
        self = role
    }
}
