import ConvoyCore

/// What a message is. The numbers are part of the protocol (docs: Sources/ConvoyWire/PROTOCOL.md).
public enum MessageKind: UInt8, Sendable, CaseIterable {
    /// Presence and load of an RSU, edge server or cloud (broadcast).
    case beacon = 1
    /// A vehicle's V2V beacon (broadcast).
    case v2vBeacon = 2
    /// An inference request (vehicle → RSU/cloud, RSU → edge, edge → cloud).
    case request = 3
    /// The answer to a request, travelling back the way the request came.
    case reply = 4
    /// A batch of records for the run's recorder (JSON payload).
    case record = 6
    /// A control command to the launcher (`convoy fail`, `convoy recover`; JSON payload).
    case control = 7
    /// The launcher's answer to a control command (JSON payload).
    case controlReply = 8
    /// Withdraws an attempt (vehicle → server, along the request's path).
    case cancel = 9
    /// A shareable result, broadcast over V2V.
    case sharedResult = 10
    /// Federated fine-tuning, towards the aggregator: a pull for the global adapter, or a chunk of
    /// a client's update (vehicle → RSU → … → aggregator).
    case fedUp = 11
    /// Federated fine-tuning, from the aggregator: a chunk of the global adapter, or an
    /// acknowledgement of an upload (aggregator → … → vehicle).
    case fedDown = 12
    /// Federated analytics: a vehicle's answer to the query (vehicle → RSU → … → aggregator).
    case analyticsUp = 13
    /// Federated analytics: the aggregator's receipt of an answer (aggregator → … → vehicle).
    case analyticsAck = 14

    /// The name PROTOCOL.md uses (also in the `link_stats` and `link_samples` tables).
    public var name: String {
        switch self {
        case .beacon: "beacon"
        case .v2vBeacon: "v2v_beacon"
        case .request: "request"
        case .reply: "reply"
        case .record: "record"
        case .control: "control"
        case .controlReply: "control_reply"
        case .cancel: "cancel"
        case .sharedResult: "shared_result"
        case .fedUp: "fed_up"
        case .fedDown: "fed_down"
        case .analyticsUp: "analytics_up"
        case .analyticsAck: "analytics_ack"
        }
    }
}

/// The versioned envelope every Convoy message travels in: one ZeroMQ frame.
///
/// Layout (big-endian), documented byte by byte in PROTOCOL.md:
/// magic "CV", version u8, kind u8, flags u8, sender length u8, sender UTF-8, incarnation u32,
/// sequence u64, sent_at i64 (µs of emulated time), [x f64, y f64 if flags bit 0],
/// [deliver_at i64 µs if flags bit 1], payload length u32, payload.
public struct Envelope: Sendable, Equatable {
    public static let version: UInt8 = 3
    public static let magic: [UInt8] = [0x43, 0x56]  // "CV"
    /// Frames larger than this are dropped unread.
    public static let maxFrameBytes = 1 << 20
    public static let maxSenderBytes = NodeID.maxBytes

    public var kind: MessageKind
    public var sender: String
    public var incarnation: UInt32
    public var sequence: UInt64
    /// Emulated seconds since the run started, at µs resolution on the wire.
    public var sentAt: Double
    public var position: Position?
    /// When the emulated link delivers this message (emulated seconds), if the sender applied the
    /// link model: the receiver compares it with the actual arrival to measure emulation accuracy.
    public var deliverAt: Double?
    public var payload: [UInt8]

    public init(kind: MessageKind, sender: String, incarnation: UInt32, sequence: UInt64, sentAt: Double,
                position: Position? = nil, deliverAt: Double? = nil, payload: [UInt8]) {
        self.kind = kind
        self.sender = sender
        self.incarnation = incarnation
        self.sequence = sequence
        self.sentAt = sentAt
        self.position = position
        self.deliverAt = deliverAt
        self.payload = payload
    }

    /// Bytes an envelope adds around a payload.
    public static func overhead(sender: String, position: Bool, deliverAt: Bool) -> Int {
        6 + min(sender.utf8.count, maxSenderBytes) + 20 + (position ? 16 : 0) + (deliverAt ? 8 : 0) + 4
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 48 + sender.utf8.count + payload.count)
        w.raw(Self.magic)
        w.u8(Self.version)
        w.u8(kind.rawValue)
        w.u8((position == nil ? 0 : 1) | (deliverAt == nil ? 0 : 2))
        let id = Array(sender.utf8.prefix(Self.maxSenderBytes))
        w.u8(UInt8(id.count))
        w.raw(id)
        w.u32(incarnation)
        w.u64(sequence)
        w.i64(Int64((sentAt * 1e6).rounded()))
        if let position {
            w.f64(position.x)
            w.f64(position.y)
        }
        if let deliverAt { w.i64(Int64((deliverAt * 1e6).rounded())) }
        w.u32(UInt32(payload.count))
        w.raw(payload)
        return w.bytes
    }

    /// The sender id of an encoded envelope, read from its header alone (for the forwarder, which
    /// checks it against the publisher's key without decoding the rest); nil if the header is bad.
    public static func sender(ofFrame frame: [UInt8]) -> String? {
        guard frame.count >= 6, frame[0] == magic[0], frame[1] == magic[1] else { return nil }
        let length = Int(frame[5])
        guard length > 0, length <= maxSenderBytes, frame.count >= 6 + length else { return nil }
        return String(validating: frame[6..<(6 + length)], as: UTF8.self)
    }

    /// Decodes one frame; throws `DecodeError` for anything that is not a well-formed envelope of
    /// this protocol version (callers count and drop such frames).
    public init(decoding frame: [UInt8]) throws(DecodeError) {
        guard frame.count <= Self.maxFrameBytes else { throw .oversized(frame.count) }
        var r = ByteReader(frame)
        guard try r.raw(2) == Self.magic else { throw .badMagic }
        let version = try r.u8()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let rawKind = try r.u8()
        guard let kind = MessageKind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        let flags = try r.u8()
        guard flags & ~3 == 0 else { throw .invalid("unknown flags \(flags)") }
        let idLength = Int(try r.u8())
        guard idLength > 0, idLength <= Self.maxSenderBytes,
              let sender = String(validating: try r.raw(idLength), as: UTF8.self)
        else { throw .invalid("bad sender id") }
        self.kind = kind
        self.sender = sender
        incarnation = try r.u32()
        sequence = try r.u64()
        sentAt = Double(try r.i64()) / 1e6
        if flags & 1 == 1 {
            let x = try r.f64(), y = try r.f64()
            guard x.isFinite, y.isFinite else { throw .invalid("non-finite position") }
            position = Position(x: x, y: y)
        } else {
            position = nil
        }
        deliverAt = flags & 2 == 2 ? Double(try r.i64()) / 1e6 : nil
        let length = Int(try r.u32())
        payload = try r.raw(length)
        try r.expectEnd()
    }
}
