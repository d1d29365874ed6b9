import ConvoyCore
import ConvoyLinks
import ConvoyReasoning
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// An RSU, edge server or cloud: serves requests on its own compute or forwards them to its next
/// hop (RSU → edge → cloud), routes replies back, beacons its presence and load, and watches its
/// next hop's beacons.
///
/// Link emulation happens where the shared resource lives:
/// - RSU: its cell, both directions (uplink on receipt, downlink before sending the reply); its
///   backhaul towards the edge on sending.
/// - edge: the backhaul towards each RSU on sending replies; the WAN towards the cloud on sending.
/// - cloud: the macro cell (plus WAN) for vehicles that reach it directly; the WAN towards each
///   edge on sending replies.
actor ServerNode {
    private enum Sockets {
        static let clients = 0, bus = 1, beacons = 2, recorder = 3, upstream = 4
    }

    private enum Timers {
        static let beacon: UInt64 = 1, tick: UInt64 = 2, flush: UInt64 = 3
    }

    /// Who sent a request, so the reply can go back.
    private struct Client {
        var routingID: [UInt8]
        var node: String
        var isVehicle: Bool
    }

    private struct Forwarded {
        var client: Client
        var request: InferenceRequest
    }

    /// A request held back by the access link until its modelled delivery instant.
    private struct Arrival {
        var link: String
        var sentAt: Double
        var modelledAt: Double
    }

    private enum Pending {
        /// A request to handle; `Arrival` when this node applied the access link (it samples it).
        case handle(InferenceRequest, Client, Arrival?)
        case reply(InferenceReply, Client)
        /// A reply from the next hop, held back by this node's degradation.
        case upstreamReply(InferenceReply)
        /// A client withdraws an attempt.
        case cancel(InferenceCancel)
    }

    private let shell: NodeShell
    private let position: Position
    private let upstream: String?
    private var server: ComputeServer?
    private var cell: CellLink?
    private var macro: CellLink?
    private var upstreamLink: WiredLink?
    private var clientLinks: [String: WiredLink] = [:]
    private let clientLinkParameters: WiredParameters?
    private var liveness: LivenessTracker
    private var forwarded: [String: Forwarded] = [:]
    private var pending: [UInt64: Pending] = [:]
    /// Replies waiting for their compute to finish, by `requestID#attempt`: the timer that sends each.
    private var computing: [String: UInt64] = [:]
    private var vehiclePositions: [String: Position] = [:]
    private var stopping = false

    static func run(config: RunConfig, id: String, incarnation: UInt32) async throws {
        let map = config.map
        guard let role = map.role(of: id) else { throw InputError(file: config.runDirectory, field: "id", "'\(id)' is not a node of the map") }
        var upstream: String?
        var sockets: [SocketSpec] = [
            SocketSpec(.router, bind: [config.endpoint(of: id)]),
            SocketSpec(.pub, connect: [config.busInbound]),
            SocketSpec(.sub, connect: [config.busOutbound]),
            SocketSpec(.push, connect: [config.recorder], lingerMs: 2000),
        ]
        switch role {
        case .rsu: upstream = map.rsu(id)?.edge
        case .edge: upstream = map.cloud.id
        default: upstream = nil
        }
        if let upstream {
            sockets.append(SocketSpec(.dealer, connect: [config.endpoint(of: upstream)], routingID: Array(id.utf8)))
            sockets[Sockets.beacons].subscribe = [Array((role == .rsu ? Topic.edgeBeacon : Topic.cloudBeacon).utf8)]
        }
        let context = try ZMQContext()
        let loop = try await EventLoop.start(context: context, sockets: sockets, name: "io-\(id)")
        let node = ServerNode(shell: NodeShell(config: config, id: id, role: role, incarnation: incarnation, loop: loop,
                                               recorderSocket: Sockets.recorder), upstream: upstream)
        ProcessSignals.onTermination { _ in Task { await node.stop() } }
        ProcessSignals.on([SIGUSR1]) { _ in Task { await node.reloadImposedFault() } }
        await node.run()
        await loop.stop()
        await context.close()
    }

    private init(shell: NodeShell, upstream: String?) {
        self.shell = shell
        self.upstream = upstream
        let map = shell.config.map
        let links = map.links
        liveness = LivenessTracker(config: shell.config.scenario.liveness)
        var compute: ComputeSpec?
        switch shell.role {
        case .rsu:
            let rsu = map.rsu(shell.id)!
            position = rsu.position
            compute = rsu.compute
            cell = CellLink(position: rsu.position, radius: rsu.radius, parameters: map.cellular(of: rsu))
            upstreamLink = rsu.edge.map { _ in WiredLink(parameters: map.backhaul(of: rsu)) }
            clientLinkParameters = nil
        case .edge:
            let edge = map.edge(shell.id)!
            position = edge.position
            compute = edge.compute
            upstreamLink = WiredLink(parameters: links.wan)
            clientLinkParameters = links.backhaul
        default:
            position = map.macro?.position ?? Position(x: 0, y: 0)
            compute = map.cloud.compute
            if let m = map.macro { macro = CellLink(position: m.position, radius: m.radius, parameters: links.macro) }
            clientLinkParameters = links.wan
        }
        if let compute {
            server = ComputeServer(device: compute.profile, slots: compute.slots, queueCapacity: compute.queue)
        }
    }

    func reloadImposedFault() {
        shell.reloadImposedFault()
    }

    func stop() {
        guard !stopping else { return }
        stopping = true
        shell.flushRecords()
        Task { await shell.loop.stop() }
    }

    private func run() async {
        shell.reloadImposedFault()
        let now = shell.now
        shell.schedulePeriodic(Timers.beacon, at: now)
        shell.schedulePeriodic(Timers.tick, at: now + 0.02)
        shell.schedulePeriodic(Timers.flush, at: now + 0.1)
        for await event in shell.loop.events {
            if stopping { break }
            switch event {
            case .timer(let id): timer(id)
            case .message(let socket, let frames): message(socket, frames)
            }
        }
    }

    // MARK: - Events

    private func timer(_ id: UInt64) {
        let now = shell.now
        let interval = shell.config.scenario.liveness.beaconInterval
        switch id {
        case Timers.beacon:
            beacon(now: now)
            shell.schedulePeriodic(Timers.beacon, at: now + interval)
        case Timers.tick:
            checkUpstream(now: now)
            shell.schedulePeriodic(Timers.tick, at: now + interval / 2)
        case Timers.flush:
            shell.flushRecords()
            shell.schedulePeriodic(Timers.flush, at: now + 0.1)
        default:
            guard let item = pending.removeValue(forKey: id) else { return }
            perform(item, now: now)
        }
    }

    /// Carries out `item` when `outcome` delivers it: now, or held until its instant. A lost
    /// message is counted under `dropped` (if given; link outcomes are already metered).
    private func deliver(_ item: Pending, _ outcome: LinkOutcome, now: Double, dropped: String? = nil) {
        switch outcome {
        case .deliver(let at) where at > now: pending[shell.scheduleOneShot(at: at)] = item
        case .deliver: perform(item, now: now)
        case .lost, .outOfRange: if let dropped { shell.count(dropped) }
        }
    }

    private func perform(_ item: Pending, now: Double) {
        switch item {
        case .handle(let request, let client, let arrival):
            if let arrival {
                shell.observeDelivery(arrival.link, .request, sentAt: arrival.sentAt, modelledAt: arrival.modelledAt, actualAt: now)
            }
            handle(request, from: client, now: now)
        case .reply(let reply, let client):
            computing[Self.key(reply.requestID, reply.attempt)] = nil
            sendReply(reply, to: client, now: now)
        case .upstreamReply(let reply): upstreamReplied(reply)
        case .cancel(let cancel): withdraw(cancel, now: now)
        }
    }

    private func message(_ socket: Int, _ frames: [[UInt8]]) {
        guard shell.admitsInbound() else { return }
        switch socket {
        case Sockets.clients:
            guard frames.count == 2 else { return shell.count("frames_bad_shape") }
            guard let envelope = shell.decode(frames[1]) else { return }
            switch envelope.kind {
            case .request:
                guard let request = shell.decodePayload(InferenceRequest.self, envelope) else { return }
                receive(request, envelope: envelope, routingID: frames[0], frameBytes: frames[1].count)
            case .cancel:
                guard let cancel = shell.decodePayload(InferenceCancel.self, envelope) else { return }
                receive(cancel, envelope: envelope, frameBytes: frames[1].count)
            default:
                shell.count("unexpected_kind_\(envelope.kind.rawValue)")
            }
        case Sockets.beacons:
            guard frames.count == 2, let envelope = shell.decode(frames[1]), envelope.sender == upstream else { return }
            if let change = liveness.heard(envelope.sender, incarnation: envelope.incarnation, at: shell.now) {
                shell.record(DetectionRecord(observer: shell.id, peer: change.peer, state: change.to.rawValue, at: change.at))
            }
        case Sockets.upstream:
            guard frames.count == 1, let envelope = shell.decode(frames[0]) else { return }
            guard let reply = shell.decodePayload(InferenceReply.self, envelope) else { return }
            shell.observeArrival(envelope, link: upstreamLinkName)
            let now = shell.now
            deliver(.upstreamReply(reply), shell.degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        default:
            break
        }
    }

    // MARK: - Requests

    /// The wired link towards the next hop (RSU → edge: backhaul; edge → cloud: WAN).
    private var upstreamLinkName: String { shell.role == .rsu ? "backhaul" : "wan" }

    /// A request arrives from a client. From a vehicle, this node owns the access link (the RSU's
    /// cell, or the cloud's macro cell plus WAN): the request is handled at its modelled delivery
    /// instant, or dropped. From an RSU or edge, the sender already applied the wired link.
    private func receive(_ request: InferenceRequest, envelope: Envelope, routingID: [UInt8], frameBytes: Int) {
        let now = shell.now
        let client = Client(routingID: routingID, node: envelope.sender, isVehicle: request.route.isEmpty)
        guard client.isVehicle else {
            shell.observeArrival(envelope, link: shell.role == .edge ? "backhaul" : "wan")
            return deliver(.handle(request, client, nil), shell.degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
        guard let from = envelope.position else { return shell.count("requests_without_position") }
        vehiclePositions[envelope.sender] = from
        guard let (link, outcome) = accessUplink(envelope, from: from, bytes: frameBytes + Int(request.payloadBytes), kind: .request),
              case .deliver(let at) = outcome else { return }
        deliver(.handle(request, client, Arrival(link: link, sentAt: envelope.sentAt, modelledAt: at)), outcome, now: now)
    }

    /// A client withdraws an attempt; from a vehicle it crosses the access link like a request.
    private func receive(_ cancel: InferenceCancel, envelope: Envelope, frameBytes: Int) {
        let now = shell.now
        guard shell.config.map.role(of: envelope.sender) == nil, let from = envelope.position else {
            shell.observeArrival(envelope, link: shell.role == .edge ? "backhaul" : "wan")
            return deliver(.cancel(cancel), shell.degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
        guard let (_, outcome) = accessUplink(envelope, from: from, bytes: frameBytes, kind: .cancel) else { return }
        deliver(.cancel(cancel), outcome, now: now)
    }

    /// The uplink of this node's cell (an RSU's, or the cloud's macro cell plus WAN) for a message
    /// from a vehicle at `from`, degraded and metered; nil if this node has no cell.
    private func accessUplink(_ envelope: Envelope, from: Position, bytes: Int, kind: MessageKind) -> (String, LinkOutcome)? {
        let now = shell.now
        let link: String
        var outcome: LinkOutcome
        if cell != nil {
            link = "cellular-up"
            outcome = cell!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &shell.rng)
        } else if macro != nil {
            link = "macro-up"
            outcome = macro!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &shell.rng)
            if case .deliver(let at) = outcome { outcome = .deliver(at: at + shell.config.map.links.wan.latency) }
        } else {
            shell.count("requests_from_vehicles_without_cell")
            return nil
        }
        outcome = shell.degrade(outcome)
        shell.meter(link, kind, outcome)
        return (link, outcome)
    }

    private static func key(_ requestID: String, _ attempt: UInt16) -> String { "\(requestID)#\(attempt)" }

    /// Drops a withdrawn attempt: sent on if it was forwarded; its reply is not sent if it is still
    /// computing here, and the compute is given back when no other attempt waits for the same job.
    private func withdraw(_ cancel: InferenceCancel, now: Double) {
        let key = Self.key(cancel.requestID, cancel.attempt)
        if forwarded.removeValue(forKey: key) != nil {
            shell.count("cancels_forwarded")
            shell.transmit(cancel, virtualBytes: 0, position: position, link: upstreamLinkName, on: Sockets.upstream) { bytes in
                upstreamLink!.transmit(bytes: bytes, now: now, rng: &shell.rng)
            }
            return
        }
        guard let timer = computing.removeValue(forKey: key) else { return shell.count("cancels_too_late") }
        pending[timer] = nil
        shell.count("cancels_applied")
        let prefix = cancel.requestID + "#"
        guard !computing.keys.contains(where: { $0.hasPrefix(prefix) }), let saved = server?.cancel(requestID: cancel.requestID, now: now),
              saved > 0 else { return }
        shell.count("compute_ms", by: -Int((saved * 1000).rounded()))
    }

    private func handle(_ request: InferenceRequest, from client: Client, now: Double) {
        let upstreamAlive = upstream.map { liveness.isAlive($0) } ?? false
        let decision = ServingDecision.decide(server: &server, nextHopAvailable: upstreamAlive, requestID: request.requestID,
                                              model: request.model, inputTokens: Int(request.inputTokens),
                                              outputTokens: Int(request.outputTokens), replyBy: request.deadline, now: now)
        let route = request.route + [shell.id]
        switch decision {
        case .serve(let job, let duplicate):
            if duplicate {
                shell.count("requests_deduplicated")
            } else {
                shell.count("compute_ms", by: Int((job.computeTime * 1000).rounded()))
            }
            let reply = InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .completed, servedBy: shell.id,
                                       route: route, queueWait: job.queueWait, computeTime: job.computeTime,
                                       resultBytes: request.resultBytes)
            if job.finishAt > now {
                let timer = shell.scheduleOneShot(at: job.finishAt)
                pending[timer] = .reply(reply, client)
                computing[Self.key(request.requestID, request.attempt)] = timer
            } else {
                sendReply(reply, to: client, now: now)
            }
        case .forward:
            forward(request, route: route, client: client, now: now)
        case .rejected(let why), .failed(let why):
            let status: InferenceReply.Status = if case .rejected = decision { .rejected } else { .failed }
            sendReply(InferenceReply(requestID: request.requestID, attempt: request.attempt, status: status, servedBy: shell.id,
                                     route: route, detail: why), to: client, now: now)
        }
    }

    private func forward(_ request: InferenceRequest, route: [String], client: Client, now: Double) {
        guard upstreamLink != nil else { return }
        var next = request
        next.route = route
        forwarded[Self.key(request.requestID, request.attempt)] = Forwarded(client: client, request: request)
        // A lost forward is not answered: the client's attempt times out and fails over.
        shell.transmit(next, virtualBytes: Int(request.payloadBytes), position: position, link: upstreamLinkName,
                       on: Sockets.upstream) { bytes in
            upstreamLink!.transmit(bytes: bytes, now: now, rng: &shell.rng)
        }
    }

    private func upstreamReplied(_ reply: InferenceReply) {
        let key = Self.key(reply.requestID, reply.attempt)
        guard let entry = forwarded.removeValue(forKey: key) else { return shell.count("replies_unmatched") }
        sendReply(reply, to: entry.client, now: shell.now)
    }

    /// The next hop died: everything forwarded to it fails back to the clients at once, so they
    /// can fail over without waiting for a time-out.
    private func checkUpstream(now: Double) {
        for change in liveness.check(now: now) {
            shell.record(DetectionRecord(observer: shell.id, peer: change.peer, state: change.to.rawValue, at: now))
            guard change.to == .dead else { continue }
            for (key, entry) in forwarded {
                forwarded[key] = nil
                sendReply(InferenceReply(requestID: entry.request.requestID, attempt: entry.request.attempt, status: .failed,
                                         servedBy: shell.id, route: entry.request.route + [shell.id],
                                         detail: "\(change.peer) unreachable"), to: entry.client, now: now)
            }
        }
    }

    /// Sends a reply back to `client` over the link this node owns towards it: the RSU's cell or the
    /// macro cell (plus WAN) for a vehicle, the backhaul or WAN for an RSU or edge.
    private func sendReply(_ reply: InferenceReply, to client: Client, now: Double) {
        let link: String = if client.isVehicle { cell != nil ? "cellular-down" : "macro-down" } else {
            shell.role == .edge ? "backhaul" : "wan"
        }
        shell.transmit(reply, virtualBytes: Int(reply.resultBytes), position: position, link: link, on: Sockets.clients,
                       before: [client.routingID]) { bytes in
            if client.isVehicle {
                let to = vehiclePositions[client.node] ?? position
                if cell != nil { return cell!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now, rng: &shell.rng) }
                if macro != nil {
                    let wan = shell.config.map.links.wan.latency
                    return macro!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now + wan, rng: &shell.rng)
                }
                return .deliver(at: now)
            }
            guard var parameters = clientLinkParameters else { return .deliver(at: now) }
            if let rsu = shell.config.map.rsu(client.node) { parameters = shell.config.map.backhaul(of: rsu) }
            return clientLinks[client.node, default: WiredLink(parameters: parameters)].transmit(bytes: bytes, now: now, rng: &shell.rng)
        }
    }

    private func beacon(now: Double) {
        let topic: String = switch shell.role {
        case .rsu: Topic.rsuBeacon(shell.id)
        case .edge: Topic.edgeBeacon
        default: Topic.cloudBeacon
        }
        let beacon = Beacon(role: shell.role,
                            activeVehicles: UInt16(clamping: (cell ?? macro)?.activeVehicles(now: now) ?? 0),
                            queued: UInt16(clamping: server?.waiting(now: now) ?? 0),
                            busySlots: UInt16(clamping: server?.busy(now: now) ?? 0),
                            slots: UInt16(clamping: server?.slots ?? 0))
        shell.publish(topic, beacon, position: position, on: Sockets.bus)
    }
}
