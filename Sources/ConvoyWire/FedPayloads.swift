import ConvoyCore

/// Adapter bytes in a federated fine-tuning message: u32 length + bytes, at most
/// `FedChunk.maxBytes` (frames stay under the transport's 1 MiB).
public enum FedChunk {
    public static let maxBytes = 512 * 1024

    static func write(_ data: [UInt8], into w: inout ByteWriter) {
        w.u32(UInt32(data.count))
        w.raw(data)
    }

    static func read(from r: inout ByteReader) throws(DecodeError) -> [UInt8] {
        let n = Int(try r.u32())
        guard n <= maxBytes else { throw .oversized(n) }
        return try r.raw(n)
    }
}

/// Federated fine-tuning towards the aggregator (PROTOCOL.md, "Federated fine-tuning"). Forwarded
/// hop by hop like a request (each hop appends itself to `route`) until the aggregator.
public struct FedUp: WirePayload {
    public static let kind = MessageKind.fedUp

    public enum Kind: UInt8, Sendable {
        /// "Send me the global adapter": `version` is the one the vehicle last trained from (0: none).
        case pull = 1
        /// One chunk of an update trained from global `version` (round, for synchronous schemes).
        case chunk = 2
    }

    public var kind: Kind
    public var vehicleID: String
    public var route: [String]
    public var version: UInt32
    /// The vehicle's upload number (per vehicle, from 1); 0 in a pull.
    public var transfer: UInt32
    public var index: UInt16
    public var count: UInt16
    public var totalBytes: UInt32
    /// Local samples (FedAvg's weight) and the mean training loss.
    public var samples: UInt32
    public var loss: Double
    /// Emulated and real seconds the local training took; when the upload began (emulated).
    public var trainSeconds: Double
    public var realTrainSeconds: Double
    public var uploadStartedAt: Double
    public var data: [UInt8]

    public init(kind: Kind, vehicleID: String, route: [String] = [], version: UInt32, transfer: UInt32 = 0, index: UInt16 = 0,
                count: UInt16 = 0, totalBytes: UInt32 = 0, samples: UInt32 = 0, loss: Double = 0, trainSeconds: Double = 0,
                realTrainSeconds: Double = 0, uploadStartedAt: Double = 0, data: [UInt8] = []) {
        self.kind = kind
        self.vehicleID = vehicleID
        self.route = route
        self.version = version
        self.transfer = transfer
        self.index = index
        self.count = count
        self.totalBytes = totalBytes
        self.samples = samples
        self.loss = loss
        self.trainSeconds = trainSeconds
        self.realTrainSeconds = realTrainSeconds
        self.uploadStartedAt = uploadStartedAt
        self.data = data
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.string(vehicleID)
        w.strings(route)
        w.u32(version)
        w.u32(transfer)
        w.u16(index)
        w.u16(count)
        w.u32(totalBytes)
        w.u32(samples)
        w.f64(loss)
        w.f64(trainSeconds)
        w.f64(realTrainSeconds)
        w.f64(uploadStartedAt)
        FedChunk.write(data, into: &w)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        let raw = try r.u8()
        guard let kind = Kind(rawValue: raw) else { throw .invalid("unknown fed_up kind \(raw)") }
        self.kind = kind
        vehicleID = try r.string()
        route = try r.strings()
        version = try r.u32()
        transfer = try r.u32()
        index = try r.u16()
        count = try r.u16()
        totalBytes = try r.u32()
        samples = try r.u32()
        loss = try r.f64()
        trainSeconds = try r.f64()
        realTrainSeconds = try r.f64()
        uploadStartedAt = try r.f64()
        data = try FedChunk.read(from: &r)
        if kind == .chunk {
            guard count > 0, index < count else { throw .invalid("chunk \(index) of \(count)") }
        }
    }
}

/// Federated fine-tuning from the aggregator towards a vehicle: routed back by `vehicleID`
/// through the hops its last `FedUp` came by.
public struct FedDown: WirePayload {
    public static let kind = MessageKind.fedDown

    public enum Kind: UInt8, Sendable {
        /// One chunk of global adapter `version` for the vehicle's `cluster`, with the local
        /// training to do (`steps`).
        case chunk = 1
        /// About upload `transfer`: its `status`, and the chunks still `missing`.
        case ack = 2
    }

    public enum Status: UInt8, Sendable {
        /// The chunks listed in `missing` have not arrived (all of them: the upload is unknown).
        case incomplete = 0
        /// Received whole and aggregated (or buffered).
        case accepted = 1
        /// Received after its round closed, or too stale: not aggregated. Pull again.
        case discarded = 2
        /// Training is over: stop.
        case finished = 3
    }

    public var kind: Kind
    public var vehicleID: String
    public var version: UInt32
    public var cluster: UInt16
    public var steps: UInt16
    public var transfer: UInt32
    public var index: UInt16
    public var count: UInt16
    public var totalBytes: UInt32
    public var status: Status
    public var missing: [UInt16]
    public var data: [UInt8]

    public init(kind: Kind, vehicleID: String, version: UInt32, cluster: UInt16 = 0, steps: UInt16 = 0, transfer: UInt32 = 0,
                index: UInt16 = 0, count: UInt16 = 0, totalBytes: UInt32 = 0, status: Status = .incomplete, missing: [UInt16] = [],
                data: [UInt8] = []) {
        self.kind = kind
        self.vehicleID = vehicleID
        self.version = version
        self.cluster = cluster
        self.steps = steps
        self.transfer = transfer
        self.index = index
        self.count = count
        self.totalBytes = totalBytes
        self.status = status
        self.missing = missing
        self.data = data
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.string(vehicleID)
        w.u32(version)
        w.u16(cluster)
        w.u16(steps)
        w.u32(transfer)
        w.u16(index)
        w.u16(count)
        w.u32(totalBytes)
        w.u8(status.rawValue)
        w.u16(UInt16(clamping: missing.count))
        for m in missing.prefix(Int(UInt16.max)) { w.u16(m) }
        FedChunk.write(data, into: &w)
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        let raw = try r.u8()
        guard let kind = Kind(rawValue: raw) else { throw .invalid("unknown fed_down kind \(raw)") }
        self.kind = kind
        vehicleID = try r.string()
        version = try r.u32()
        cluster = try r.u16()
        steps = try r.u16()
        transfer = try r.u32()
        index = try r.u16()
        count = try r.u16()
        totalBytes = try r.u32()
        let s = try r.u8()
        guard let status = Status(rawValue: s) else { throw .invalid("unknown fed_down status \(s)") }
        self.status = status
        let n = Int(try r.u16())
        var missing: [UInt16] = []
        missing.reserveCapacity(min(n, 4096))
        for _ in 0..<n { missing.append(try r.u16()) }
        self.missing = missing
        data = try FedChunk.read(from: &r)
        if kind == .chunk {
            guard count > 0, index < count else { throw .invalid("chunk \(index) of \(count)") }
        }
    }
}
