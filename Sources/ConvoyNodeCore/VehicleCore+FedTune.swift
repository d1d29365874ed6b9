import ConvoyCore
import ConvoyFederated
import ConvoyWire

/// A vehicle's part in federated fine-tuning: carries out its `FedParticipant`'s actions. Pulls and
/// update chunks go to the RSU it uses on the access socket (the RSU applies its cell's uplink to
/// them, shared with everything else in the cell); training goes to the run's trainer process.
extension VehicleCore {
    mutating func fedHandle(_ event: FedParticipant.Event, now: Double) {
        guard var participant = fed else { return out.count("fed_messages_not_participating") }
        let actions = participant.handle(event, now: now)
        fed = participant
        let here = position(at: now)
        for action in actions {
            switch action {
            case .send(let message, let via):
                out.send(Outbound(message, on: .access(node: via), position: here))
            case .train(let job, let adapter, let steps):
                guard let ft = scenario.fedtune else { continue }
                out.append(.trainer(.train(id: job, client: id, adapter: adapter, steps: steps, batch: ft.batch,
                                           learningRate: ft.learningRate, seed: seed &+ job &* 7919)))
            case .wake(let at):
                schedule(.fed, at: at)
            case .count(let name, let n):
                out.count(name, by: n)
            }
        }
    }

    /// The trainer answered a training job of this vehicle.
    mutating func trainerReplied(_ frames: [[UInt8]], now: Double) {
        guard let reply = TrainerReply.decode(frames) else { return out.count("trainer_replies_malformed") }
        fedHandle(.trained(id: reply.id, adapter: reply.error == nil ? reply.adapter : nil, samples: reply.samples, loss: reply.loss,
                           realSeconds: reply.wallSeconds, failure: reply.error ?? (reply.adapter == nil ? "no adapter in the reply" : nil)),
                  now: now)
    }
}
