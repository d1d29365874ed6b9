import ConvoyCore
import ConvoyFederated
import ConvoyWire

/// Federated fine-tuning at a server: the aggregator's actions carried out, and the relaying of
/// pulls and update chunks up towards the aggregator and of model chunks and acknowledgements
/// back down, each hop over its emulated link (the RSU's cell, backhaul, WAN) like requests and replies.
extension ServerCore {
    static let helloID: UInt64 = 1

    /// A pull or chunk arrived (after this node's access link, if it owns it): aggregated here, or
    /// sent on towards the aggregator. The way back to its vehicle is remembered.
    mutating func fedArrived(_ message: FedUp, from client: Client, now: Double) {
        wayBack[message.vehicleID] = client
        if aggregator != nil || group != nil { return aggregate(.up(message, via: message.route.first ?? id), now: now) }
        guard upstream != nil else { return out.count("fed_without_aggregator") }
        var next = message
        next.route.append(id)
        transmitUpstream(next, virtualBytes: 0, now: now)
    }

    /// A model chunk or acknowledgement for a vehicle: down the way its last message came.
    mutating func sendFedDown(_ message: FedDown, now: Double) {
        guard let client = wayBack[message.vehicleID] else { return out.count("fed_down_unroutable") }
        sendBack(message, virtualBytes: 0, to: client, now: now)
    }

    /// A message of the run's aggregator from upstream: for this RSU's group, or on down to a vehicle.
    mutating func fedFromUpstream(_ message: FedDown, now: Double) {
        guard message.vehicleID == id, var g = group else { return sendFedDown(message, now: now) }
        let actions = g.down(message, now: now)
        group = g
        carryOut(actions, now: now)
    }

    /// An event for the aggregator here: the run's, or this RSU's group (hierarchical).
    mutating func aggregate(_ event: FedAggregator.Event, now: Double) {
        if var g = group {
            let actions = g.handle(event, now: now)
            group = g
            carryOut(actions, now: now)
        } else if var agg = aggregator {
            let actions = agg.handle(event, now: now)
            aggregator = agg
            carryOut(actions, now: now)
        }
    }

    private mutating func carryOut(_ actions: [FedAggregator.Action], now: Double) {
        for action in actions {
            switch action {
            case .send(let message): sendFedDown(message, now: now)
            case .arm(let timer, let at): out.arm(timer, at: at)
            case .evaluate(let id, let adapter, let domains): out.append(.trainer(.evaluate(id: id, adapter: adapter, domains: domains)))
            case .round(let r): out.record(.fedRound(r))
            case .update(let u): out.record(.fedUpdate(u))
            case .eval(let e): out.record(.fedEval(e))
            case .count(let name, let n): out.count(name, by: n)
            case .setCounter(let name, let value): out.append(.setCounter(name, value))
            case .checkpoint(let c): out.append(.persist(name: FedCheckpoint.fileName, bytes: c.encoded()))
            case .pending(let records):
                out.append(.persist(name: FedCheckpoint.pendingFileName, bytes: FedCheckpoint.encodePending(records)))
            case .sendUp(var message):
                // The group's own messages start their route here (the run's aggregator sees this RSU as the client).
                message.route.append(id)
                transmitUpstream(message, virtualBytes: 0, now: now)
            case .handUp: out.count("fed_handup_unhandled")
            }
        }
    }

    mutating func trainerReplied(_ frames: [[UInt8]], now: Double) {
        guard let reply = TrainerReply.decode(frames) else { return out.count("trainer_replies_malformed") }
        if reply.id == Self.helloID {
            guard let adapter = reply.adapter, reply.error == nil else {
                out.count("trainer_hello_failed")
                return
            }
            out.append(.setCounter("fed_adapter_parameters", adapter.count))
            return aggregate(.initial(adapter), now: now)
        }
        aggregate(.evaluated(id: reply.id, losses: reply.error == nil ? reply.losses : nil, failure: reply.error), now: now)
    }
}
