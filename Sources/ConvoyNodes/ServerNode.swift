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

    private enum Pending {
        case handle(InferenceRequest, Client)
        case reply(InferenceReply, Client)
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
        await node.run()
        await loop.stop()
        withExtendedLifetime(context) {}
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
            cell = CellLink(position: rsu.position, radius: rsu.radius, parameters: links.cellular)
            upstreamLink = rsu.edge.map { _ in WiredLink(parameters: links.backhaul) }
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

    func stop() {
        guard !stopping else { return }
        stopping = true
        shell.flushRecords()
        Task { await shell.loop.stop() }
    }

    private func run() async {
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
            shell.schedulePeriodic(Timers.tick, at: now + min(0.02, interval / 4))
        case Timers.flush:
            shell.flushRecords()
            shell.schedulePeriodic(Timers.flush, at: now + 0.1)
        default:
            guard let item = pending.removeValue(forKey: id) else { return }
            switch item {
            case .handle(let request, let client): handle(request, from: client, now: now)
            case .reply(let reply, let client): sendReply(reply, to: client, now: now)
            }
        }
    }

    private func message(_ socket: Int, _ frames: [[UInt8]]) {
        switch socket {
        case Sockets.clients:
            guard frames.count == 2 else { return shell.count("frames_bad_shape") }
            guard let envelope = shell.decode(frames[1]) else { return }
            guard let request = shell.decodePayload(InferenceRequest.self, envelope) else {
                return shell.count("unexpected_kind_\(envelope.kind.rawValue)")
            }
            receive(request, envelope: envelope, routingID: frames[0], frameBytes: frames[1].count)
        case Sockets.beacons:
            guard frames.count == 2, let envelope = shell.decode(frames[1]), envelope.sender == upstream else { return }
            if let change = liveness.heard(envelope.sender, incarnation: envelope.incarnation, at: shell.now) {
                shell.record(DetectionRecord(observer: shell.id, peer: change.peer, state: change.to.rawValue, at: change.at))
            }
        case Sockets.upstream:
            guard frames.count == 1, let envelope = shell.decode(frames[0]) else { return }
            guard let reply = shell.decodePayload(InferenceReply.self, envelope) else { return }
            upstreamReplied(reply)
        default:
            break
        }
    }

    // MARK: - Requests

    /// A request arrives from a client: emulate the link it came over, then handle it when it has
    /// really "arrived".
    private func receive(_ request: InferenceRequest, envelope: Envelope, routingID: [UInt8], frameBytes: Int) {
        let now = shell.now
        let isVehicle = request.route.isEmpty
        let client = Client(routingID: routingID, node: envelope.sender, isVehicle: isVehicle)
        let bytes = frameBytes + Int(request.payloadBytes)
        var outcome = LinkOutcome.deliver(at: now)
        if isVehicle {
            guard let from = envelope.position else { return shell.count("requests_without_position") }
            vehiclePositions[envelope.sender] = from
            if cell != nil {
                outcome = cell!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &shell.rng)
            } else if macro != nil {
                outcome = macro!.uplink(vehicle: envelope.sender, from: from, bytes: bytes, sentAt: envelope.sentAt, now: now, rng: &shell.rng)
                if case .deliver(let at) = outcome { outcome = .deliver(at: at + shell.config.map.links.wan.latency) }
            } else {
                return shell.count("requests_from_vehicles_without_cell")
            }
        }
        switch outcome {
        case .deliver(let at) where at > now:
            pending[shell.scheduleOneShot(at: at)] = .handle(request, client)
        case .deliver:
            handle(request, from: client, now: now)
        case .lost:
            shell.count("uplink_lost")
        case .outOfRange:
            shell.count("uplink_out_of_range")
        }
    }

    private func handle(_ request: InferenceRequest, from client: Client, now: Double) {
        let upstreamAlive = upstream.map { liveness.isAlive($0) } ?? false
        let decision = ServingDecision.decide(server: &server, nextHopAvailable: upstreamAlive, requestID: request.requestID,
                                              model: request.model, inputTokens: Int(request.inputTokens),
                                              outputTokens: Int(request.outputTokens), replyBy: request.deadline, now: now)
        let route = request.route + [shell.id]
        switch decision {
        case .serve(let job, let duplicate):
            if duplicate { shell.count("requests_deduplicated") }
            let reply = InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .completed, servedBy: shell.id,
                                       route: route, queueWait: job.queueWait, computeTime: job.computeTime,
                                       resultBytes: UInt32(shell.config.scenario.workload.resultBytes))
            if job.finishAt > now {
                pending[shell.scheduleOneShot(at: job.finishAt)] = .reply(reply, client)
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
        let frame = shell.envelope(next, position: position)
        let key = "\(request.requestID)#\(request.attempt)"
        forwarded[key] = Forwarded(client: client, request: request)
        switch upstreamLink!.transmit(bytes: frame.count + Int(request.payloadBytes), now: now, rng: &shell.rng) {
        case .deliver(let at):
            shell.send([frame], on: Sockets.upstream, at: at)
        case .lost, .outOfRange:
            shell.count("upstream_lost")  // the client's attempt times out and fails over
        }
    }

    private func upstreamReplied(_ reply: InferenceReply) {
        let key = "\(reply.requestID)#\(reply.attempt)"
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

    private func sendReply(_ reply: InferenceReply, to client: Client, now: Double) {
        let frame = shell.envelope(reply, position: position)
        let bytes = frame.count + Int(reply.resultBytes)
        var outcome: LinkOutcome
        if client.isVehicle {
            let to = vehiclePositions[client.node] ?? position
            if cell != nil {
                outcome = cell!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now, rng: &shell.rng)
            } else if macro != nil {
                outcome = macro!.downlink(vehicle: client.node, to: to, bytes: bytes, now: now + shell.config.map.links.wan.latency,
                                          rng: &shell.rng)
            } else {
                outcome = .deliver(at: now)
            }
        } else if let parameters = clientLinkParameters {
            outcome = clientLinks[client.node, default: WiredLink(parameters: parameters)].transmit(bytes: bytes, now: now, rng: &shell.rng)
        } else {
            outcome = .deliver(at: now)
        }
        switch outcome {
        case .deliver(let at):
            shell.send([client.routingID, frame], on: Sockets.clients, at: at)
        case .lost:
            shell.count("downlink_lost")
        case .outOfRange:
            shell.count("downlink_out_of_range")
        }
    }

    private func beacon(now: Double) {
        let topic: String = switch shell.role {
        case .rsu: Topic.rsuBeacon
        case .edge: Topic.edgeBeacon
        default: Topic.cloudBeacon
        }
        let beacon = Beacon(role: shell.role,
                            activeVehicles: UInt16(clamping: cell?.activeVehicles(now: now) ?? 0),
                            queued: UInt16(clamping: server?.waiting(now: now) ?? 0),
                            busySlots: UInt16(clamping: server?.busy(now: now) ?? 0),
                            slots: UInt16(clamping: server?.slots ?? 0))
        shell.publish(topic, beacon, position: position, on: Sockets.bus)
    }
}
