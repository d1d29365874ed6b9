import ConvoyCore
import ConvoyFederated
import ConvoyLinks
import ConvoyReasoning
import ConvoyWire

/// A row a node sends to the run's recorder.
public enum NodeRecord: Sendable, Equatable {
    case request(RequestRecord)
    case attempt(AttemptRecord)
    case detection(DetectionRecord)
    case handover(HandoverRecord)
    case output(OutputRecord)
    case fedRound(FedRoundRecord)
    case fedUpdate(FedUpdateRecord)
    case fedEval(FedEvalRecord)
    case analyticsCell(AnalyticsCellRecord)
}

/// Where an outgoing message goes.
public enum Channel: Sendable, Hashable {
    /// Broadcast on the bus under `topic` (V2V, beacons, messages to one vehicle over V2V).
    case bus(topic: String)
    /// From a vehicle to a server over its access link (the vehicle's ROUTER, addressed by node id).
    case access(node: String)
    /// From a server back to a client that sent it a request (its ROUTER, by the client's routing id).
    case client(routingID: [UInt8])
    /// From a server to its next hop (its DEALER).
    case upstream
}

/// A message to send: the shell wraps `body` in an envelope (sender, incarnation, sequence, the
/// send time) and sends it on `channel` at `at` (now when nil or past).
public struct Outbound: Sendable, Equatable {
    public var channel: Channel
    public var kind: MessageKind
    public var body: [UInt8]
    public var position: Position?
    /// The modelled delivery instant, stamped in the envelope when the sender applied the link.
    public var deliverAt: Double?
    public var at: Double?
    /// The emulated instant the message is sent at, stamped in the envelope, when it is not now:
    /// a V2V beacon handed to the bus ahead of its instant (`VehicleCore.Setup.beaconLead`).
    public var sentAt: Double?

    public init<P: WirePayload>(_ payload: P, on channel: Channel, position: Position?, deliverAt: Double? = nil, at: Double? = nil,
                                sentAt: Double? = nil) {
        self.channel = channel
        self.kind = P.kind
        self.body = payload.encoded()
        self.position = position
        self.deliverAt = deliverAt
        self.at = at
        self.sentAt = sentAt
    }
}

/// What a node core asks its shell to do. The shell carries actions out in order and owns only
/// sockets, clocks and processes.
public enum NodeAction: Sendable, Equatable {
    case send(Outbound)
    /// Fire timer `id` once at emulated time `at` (each arm fires once, even for the same id).
    case arm(timer: UInt64, at: Double)
    case record(NodeRecord)
    case count(String, by: Int)
    case setCounter(String, Int)
    /// A message of `bytes` offered to `link`, and what became of it.
    case meter(LinkName, MessageKind, LinkOutcome, bytes: Int)
    /// A delivery on `link`, modelled vs actual (the shell samples them).
    case observe(LinkName, MessageKind, sentAt: Double, modelledAt: Double, actualAt: Double)
    case subscribe(topic: String)
    case unsubscribe(topic: String)
    /// Make or stop a call to the node's real model server (its compute backend's command).
    case compute(ComputeCommand)
    /// A request to the trainer process (federated fine-tuning); its answer comes back as an event.
    case trainer(TrainerRequest)
    /// Keep `bytes` in the node's state file `name` (in the run directory), replacing what was
    /// there: what the node's next incarnation starts from after a crash.
    case persist(name: String, bytes: [UInt8])
    /// Send the pending records and counters to the recorder now.
    case flushRecords
    /// Stop the node (after carrying out the actions before this one).
    case stop
}

/// The actions a core collects while it handles one event.
public struct ActionList: Sendable {
    public private(set) var actions: [NodeAction] = []

    public init() {}

    public mutating func append(_ action: NodeAction) { actions.append(action) }
    public mutating func send(_ outbound: Outbound) { actions.append(.send(outbound)) }
    public mutating func arm(_ timer: UInt64, at time: Double) { actions.append(.arm(timer: timer, at: time)) }
    public mutating func record(_ record: NodeRecord) { actions.append(.record(record)) }
    public mutating func count(_ name: String, by n: Int = 1) { actions.append(.count(name, by: n)) }
    public mutating func meter(_ link: LinkName, _ kind: MessageKind, _ outcome: LinkOutcome, bytes: Int) {
        actions.append(.meter(link, kind, outcome, bytes: bytes))
    }

    /// A message that arrived with its modelled delivery time: how late it really was.
    public mutating func observeArrival(_ envelope: Envelope, link: LinkName, now: Double) {
        guard let modelled = envelope.deliverAt else { return }
        actions.append(.observe(link, envelope.kind, sentAt: envelope.sentAt, modelledAt: modelled, actualAt: now))
    }

    /// Returns the actions collected so far and starts a new list.
    public mutating func take() -> [NodeAction] {
        defer { actions = [] }
        return actions
    }
}

/// Identifies one attempt of a request.
public struct AttemptKey: Sendable, Hashable, Comparable {
    public var requestID: String
    public var attempt: Int

    public init(_ requestID: String, _ attempt: Int) {
        self.requestID = requestID
        self.attempt = attempt
    }

    public static func < (a: AttemptKey, b: AttemptKey) -> Bool { (a.requestID, a.attempt) < (b.requestID, b.attempt) }
}

/// Frames decoded into an envelope and a payload; malformed ones are counted by reason and dropped.
public enum FrameDecoding {
    public static func envelope(_ frame: [UInt8], into out: inout ActionList) -> Envelope? {
        do {
            return try Envelope(decoding: frame)
        } catch {
            out.count(error.counterName)
            return nil
        }
    }

    public static func payload<P: WirePayload>(_ type: P.Type, _ envelope: Envelope, into out: inout ActionList) -> P? {
        guard envelope.kind == P.kind else { return nil }
        do {
            return try P.decode(envelope.payload)
        } catch {
            out.count(error.counterName)
            return nil
        }
    }
}
