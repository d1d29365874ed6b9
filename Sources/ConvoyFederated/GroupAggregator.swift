import ConvoyWire

/// The RSU level of hierarchical fine-tuning. The vehicles an RSU serves pull their model from it
/// and upload their updates to it (a `FedAggregator` of the `.group` tier runs their rounds); every
/// κ2 rounds the group's model goes up over the backhaul to the run's aggregator, in chunks, as the
/// update of one more client (a `FedParticipant` speaking for the RSU, whose "training" is those
/// κ2 rounds), and the next global model comes back the same way. So the backhaul carries one
/// model per RSU every κ2 rounds instead of every vehicle's update every round. Pure: event and
/// time in, the aggregator's actions out (`sendUp` towards the run's aggregator).
///
/// The group asks for a global model only while vehicles wait for one: an RSU nobody uses takes
/// no part in the global rounds. A vehicle that moves to another RSU mid-round uploads there: it
/// joins that group's round if the group is at the same version, else it is late and pulls again.
public struct GroupAggregator: Sendable {
    /// The participant's periodic tick (the node fires it once at its start; it re-arms itself) and
    /// its requested wake-ups, inside the aggregator's reserved timer ids.
    public static let tickTimer = FedAggregator.timerBase
    public static let wakeTimer = FedAggregator.timerBase + 1
    public static let tickInterval = 0.5

    public private(set) var local: FedAggregator
    var upward: FedParticipant
    /// The version of the global model being downloaded, and the participant's job it became.
    var downloading: UInt32 = 0
    var job: UInt64?
    var out: [FedAggregator.Action] = []

    /// `index`: the group's number in records (the RSU's place in the map, from 1); `incarnation`:
    /// the RSU's (a restarted RSU numbers its uploads past its previous incarnations'); `resume`,
    /// `pending`: its previous incarnation's files (see `FedAggregator.init`): the group goes on
    /// from its last closed round if the global model it gets is the one that round came from.
    public init(config: FedTuneConfig, id: String, index: Int, incarnation: UInt32 = 1, resume: [UInt8]? = nil, pending: [UInt8]? = nil) {
        local = FedAggregator(config: config, id: id, tier: .group(index: index), resume: resume, pending: pending)
        upward = FedParticipant(vehicle: id, trainSeconds: 0, transferTimeout: config.transferTimeout, pullInterval: 1,
                                chunkBytes: config.chunkBytes, trainingTimeout: .infinity)
        upward.measuresLateness = false
        upward.transfers = (max(1, incarnation) - 1) << 16
    }

    public mutating func handle(_ event: FedAggregator.Event, now: Double) -> [FedAggregator.Action] {
        switch event {
        case .timer(Self.tickTimer):
            tick(now: now)
            out.append(.arm(Self.tickTimer, at: now + Self.tickInterval))
        case .timer(Self.wakeTimer):
            tick(now: now)
        case .initial, .global, .finish:
            break
        case .stop:
            forward(event, now: now)
        default:
            forward(event, now: now)
            if local.wantsModel, upward.isIdle { tick(now: now) }  // vehicles wait: ask for the model now
        }
        defer { out = [] }
        return out
    }

    /// A message of the run's aggregator for this RSU (a chunk of the global model, an acknowledgement).
    public mutating func down(_ message: FedDown, now: Double) -> [FedAggregator.Action] {
        if message.kind == .chunk { downloading = message.version }
        participant(.down(message), now: now)
        if upward.isFinished, !local.finished { forward(.finish, now: now) }
        defer { out = [] }
        return out
    }

    private mutating func tick(now: Double) {
        // The participant needs the way up while it has something in hand, or vehicles wait for a model.
        participant(.tick(via: upward.isIdle && !local.wantsModel ? nil : "up"), now: now)
    }

    private mutating func forward(_ event: FedAggregator.Event, now: Double) {
        for action in local.handle(event, now: now) {
            guard case .handUp(let adapter, let samples, let loss) = action else { out.append(action); continue }
            guard let job else { out.append(.count("fed_group_handup_without_job")); continue }
            participant(.trained(id: job, adapter: adapter, samples: samples, loss: loss ?? .nan, realSeconds: 0, failure: nil), now: now)
        }
    }

    private mutating func participant(_ event: FedParticipant.Event, now: Double) {
        for action in upward.handle(event, now: now) {
            switch action {
            case .send(let message, _): out.append(.sendUp(message))
            case .train(let id, let adapter, _):
                job = id
                forward(.global(adapter, version: Int(downloading)), now: now)
            case .wake(let at): out.append(.arm(Self.wakeTimer, at: at))
            case .count(let name, let n): out.append(.count("fed_group_" + name.dropFirst("fed_".count), by: n))
            }
        }
    }
}
