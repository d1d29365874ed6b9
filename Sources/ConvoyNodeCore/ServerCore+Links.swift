import ConvoyCore
import ConvoyLinks
import ConvoyWire

/// The links a server owns: its cell (or the macro cell), the wired link to its next hop, and the
/// wired links back to its clients; and the imposed partition or degradation on all of them.
extension ServerCore {
    /// The wired link from this node's server clients (an edge's RSUs: backhaul; the cloud's edges: WAN).
    var clientLink: LinkName {
        switch role {
        case .edge: .backhaul
        case .rsu, .cloud, .vehicle: .wan
        }
    }

    /// A request arrives from a client. From a vehicle, this node owns the access link (the RSU's
    /// cell, or the cloud's macro cell plus WAN): the request is handled at its modelled delivery
    /// instant, or dropped. From an RSU or edge, the sender already applied the wired link.
    mutating func receive(_ request: InferenceRequest, envelope: Envelope, routingID: [UInt8], frameBytes: Int, now: Double) {
        let client = Client(routingID: routingID, node: envelope.sender, isVehicle: request.route.isEmpty)
        guard client.isVehicle else {
            out.observeArrival(envelope, link: clientLink, now: now)
            return deliver(.handle(request, client), degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
        guard let from = envelope.position else { return out.count("requests_without_position") }
        vehiclePositions[envelope.sender] = from
        let bytes = frameBytes + Int(request.payloadBytes)
        guard let (link, outcome) = accessUplink(envelope, from: from, bytes: bytes, kind: .request, now: now) else { return }
        deliverArrived(.handle(request, client), over: link, envelope, outcome, now: now)
    }

    /// A client withdraws an attempt; from a vehicle it crosses the access link like a request.
    mutating func receive(_ cancel: InferenceCancel, envelope: Envelope, frameBytes: Int, now: Double) {
        guard map.role(of: envelope.sender) == nil, let from = envelope.position else {
            out.observeArrival(envelope, link: clientLink, now: now)
            return deliver(.cancel(cancel), degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
        guard let (link, outcome) = accessUplink(envelope, from: from, bytes: frameBytes, kind: .cancel, now: now) else { return }
        deliverArrived(.cancel(cancel), over: link, envelope, outcome, now: now)
    }

    /// A message towards an aggregator (federated fine-tuning's `FedUp`, federated analytics'
    /// answers) arrived with `route` so far: from a vehicle it crosses this node's cell like a
    /// request (its real bytes are the frame); from an RSU or edge the sender applied the wired
    /// link. A vehicle speaks for itself only, and only servers of the map relay (route not empty):
    /// anything else is counted under `refusal` and dropped. `held` is what to do with the message
    /// once delivered, given who sent it.
    mutating func receiveTowardsAggregator(for vehicle: String, route: [String], envelope: Envelope, routingID: [UInt8], frameBytes: Int,
                                           refusal: String, now: Double, held: (Client) -> Held) {
        if route.isEmpty ? vehicle != envelope.sender : map.role(of: envelope.sender).map({ $0 == .vehicle }) ?? true {
            return out.count(refusal)
        }
        let client = Client(routingID: routingID, node: envelope.sender, isVehicle: route.isEmpty)
        guard client.isVehicle else {
            out.observeArrival(envelope, link: clientLink, now: now)
            return deliver(held(client), degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
        guard let from = envelope.position else { return out.count("\(envelope.kind.name)_without_position") }
        vehiclePositions[envelope.sender] = from
        out.count("\(envelope.kind.name)_bytes_from_vehicles", by: frameBytes)
        guard let (link, outcome) = accessUplink(envelope, from: from, bytes: frameBytes, kind: envelope.kind, now: now) else { return }
        deliverArrived(held(client), over: link, envelope, outcome, now: now)
    }

    /// Delivers what came from a vehicle over this node's access `link`, sampled against the
    /// modelled instant when it is carried out.
    private mutating func deliverArrived(_ item: Held, over link: LinkName, _ envelope: Envelope, _ outcome: LinkOutcome, now: Double) {
        guard case .deliver(let at) = outcome else { return deliver(item, outcome, now: now) }
        deliver(.arrived(item, link: link, kind: envelope.kind, sentAt: envelope.sentAt, modelledAt: at), outcome, now: now)
    }

    /// The uplink of this node's cell (an RSU's, or the cloud's macro cell plus WAN) for a message
    /// from a vehicle at `from`, degraded and metered; nil if this node has no cell.
    private mutating func accessUplink(_ envelope: Envelope, from: Position, bytes: Int, kind: MessageKind,
                                       now: Double) -> (LinkName, LinkOutcome)? {
        let link: LinkName
        var outcome: LinkOutcome
        if cell != nil {
            link = .cellularUp
            outcome = cell!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &rng)
        } else if macro != nil {
            link = .macroUp
            outcome = macro!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &rng)
            if case .deliver(let at) = outcome { outcome = .deliver(at: at + map.links.wan.latency) }
        } else {
            out.count("requests_from_vehicles_without_cell")
            return nil
        }
        outcome = degrade(outcome)
        out.meter(link, kind, outcome, bytes: bytes)
        return (link, outcome)
    }

    /// Wall-clock seconds messages to vehicles leave ahead of their delivery instant, for a run
    /// whose beacons lead by `lead`: enough for the transport's usual latency, short enough that a
    /// crash lets little through (the beacons' lead would let through up to 50 ms of replies).
    public static func replyLead(beaconLead lead: Double) -> Double { min(lead, 0.01) }

    /// Sends a reply back to `client` over the link this node owns towards it: the RSU's cell or the
    /// macro cell (plus WAN) for a vehicle, the backhaul or WAN for an RSU or edge.
    mutating func sendReply(_ reply: InferenceReply, to client: Client, now: Double) {
        answered[AttemptKey(reply.requestID, Int(reply.attempt))] = now
        sendBack(reply, virtualBytes: reply.virtualResultBytes, to: client, now: now)
    }

    /// Sends `payload` back to `client` over the link this node owns towards it (see `sendReply`).
    mutating func sendBack<P: WirePayload>(_ payload: P, virtualBytes: Int, to client: Client, now: Double) {
        let link: LinkName = client.isVehicle ? (cell != nil ? .cellularDown : .macroDown) : clientLink
        transmit(payload, virtualBytes: virtualBytes, link: link, on: .client(routingID: client.routingID),
                 ahead: client.isVehicle ? sendAhead : 0) { core, bytes in
            if client.isVehicle {
                let to = core.vehiclePositions[client.node] ?? core.position
                if core.cell != nil { return core.cell!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now, rng: &core.rng) }
                if core.macro != nil {
                    let wan = core.map.links.wan.latency
                    return core.macro!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now + wan, rng: &core.rng)
                }
                return .deliver(at: now)
            }
            guard var parameters = core.clientLinkParameters else { return .deliver(at: now) }
            if let rsu = core.map.rsu(client.node) { parameters = core.map.backhaul(of: rsu) }
            return core.clientLinks[client.node, default: WiredLink(parameters: parameters)].transmit(bytes: bytes, now: now, rng: &core.rng)
        }
    }

    /// Sends `payload` to the next hop over the wired link towards it.
    mutating func transmitUpstream<P: WirePayload>(_ payload: P, virtualBytes: Int, now: Double) {
        guard let link = role.uplink, upstreamLink != nil else { return }
        transmit(payload, virtualBytes: virtualBytes, link: link, on: .upstream) { core, bytes in
            core.upstreamLink!.transmit(bytes: bytes, now: now, rng: &core.rng)
        }
    }

    /// Puts `payload` through an emulated link (`model` gives the outcome for the bytes on the wire)
    /// and sends it at the delivery instant (`ahead` seconds before it, stamped with it, for a
    /// receiver that holds it until then). `virtualBytes` is the size the message stands for
    /// beyond its frame (a request's input, a reply's result). The outcome is metered; lost and
    /// out-of-range messages are not sent.
    private mutating func transmit<P: WirePayload>(_ payload: P, virtualBytes: Int, link: LinkName, on channel: Channel, ahead: Double = 0,
                                                   through model: (inout ServerCore, Int) -> LinkOutcome) {
        let message = Outbound(payload, on: channel, position: position)
        let bytes = Envelope.overhead(sender: id, position: true, deliverAt: true) + message.body.count + virtualBytes
        let outcome = degrade(model(&self, bytes))
        out.meter(link, P.kind, outcome, bytes: bytes)
        guard case .deliver(let at) = outcome else { return }
        var timed = message
        timed.deliverAt = at
        timed.at = at - ahead
        send(timed)
    }

    /// The outcome of a link, made worse by an imposed degradation: lost with its extra loss
    /// probability, else delivered its extra latency later.
    mutating func degrade(_ outcome: LinkOutcome) -> LinkOutcome {
        guard let imposed, imposed.mode == .degrade, let d = imposed.degradation, case .deliver(let at) = outcome else { return outcome }
        if rng.unit() < d.loss { return .lost }
        return .deliver(at: at + d.latency)
    }

    /// Broadcasts: a degraded node's suffer its extra loss (not its extra latency).
    mutating func publish(_ message: Outbound) {
        if case .lost = degrade(.deliver(at: 0)) { return out.count("degrade_dropped_broadcast") }
        send(message)
    }

    /// A partitioned node sends nothing (its records still reach the launcher).
    private mutating func send(_ message: Outbound) {
        if imposed?.mode == .partition { return out.count("partition_dropped_out") }
        out.send(message)
    }
}
