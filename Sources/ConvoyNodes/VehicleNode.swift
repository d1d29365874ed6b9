import ConvoyCore
import ConvoyLinks
import ConvoyMobility
import ConvoyReasoning
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// A vehicle: follows its trajectory, hears RSU beacons in range, beacons to its neighbours over
/// V2V, issues inference requests and fails them over (`RequestLedger`), and reports every
/// request and attempt to the recorder.
actor VehicleNode {
    private enum Sockets {
        /// `access` is one ROUTER connected to every RSU (and the cloud, over the macro cell),
        /// addressing each by its node id.
        static let bus = 0, broadcast = 1, recorder = 2, access = 3
    }

    private enum Timers {
        /// Housekeeping every 100 ms (or beacon interval if shorter): position, handovers, subscriptions, records.
        static let tick: UInt64 = 1
        static let v2v: UInt64 = 3
        /// An exact wake-up for the next liveness transition, deadline or request arrival.
        static let wake: UInt64 = 4
    }

    private let shell: NodeShell
    private let trajectory: Trajectory
    private let map: MapSpec
    private let workload: WorkloadSpec
    /// The nodes the access socket is connected to (RSUs, and the cloud over the macro cell).
    private let reachable: Set<String>
    private var liveness: LivenessTracker
    private var ledger = RequestLedger()
    private var rsuLoad: [String: Beacon] = [:]
    private var openRecords: [String: RequestRecord] = [:]
    private var requestSequence = 0
    private var nextRequestAt: Double
    private let topics: Topic
    private let policy: any PathPolicy
    private var subscribed: Set<String> = []
    private var neighbours: [String: Double] = [:]
    /// V2V beacons held back until their modelled delivery: (sender, sent at, deliver at).
    private var heldV2V: [UInt64: (sender: String, sentAt: Double, at: Double)] = [:]
    /// The cell the vehicle would use now (best RSU, else the macro cell), for handover records.
    private var servingCell: String?
    private var finished = false
    /// Set when the run ends: no new requests; open ones may still complete until this time.
    private var drainUntil: Double?

    static func run(config: RunConfig, id: String, trajectoryPath: String) async throws {
        let trajectory = try TrajectoryFile.read(path: trajectoryPath)
        let map = config.map
        var sockets: [SocketSpec] = [
            SocketSpec(.pub, connect: [config.busInbound]),
            SocketSpec(.sub, connect: [config.busOutbound]),  // topics follow the vehicle (updateSubscriptions)
            SocketSpec(.push, connect: [config.recorder], lingerMs: 2000),
        ]
        var targets = map.rsus.map(\.id)
        if map.macro != nil { targets.append(map.cloud.id) }
        sockets.append(SocketSpec(.router, routingID: Array(id.utf8),
                                  peers: targets.map { (config.endpoint(of: $0), Array($0.utf8)) }))
        let context = try ZMQContext()
        let loop = try await EventLoop.start(context: context, sockets: sockets, name: "io-\(id)")
        let shell = NodeShell(config: config, id: id, role: .vehicle, incarnation: 1, loop: loop, recorderSocket: Sockets.recorder)
        let node = VehicleNode(shell: shell, trajectory: trajectory, reachable: Set(targets))
        ProcessSignals.onTermination { _ in Task { await node.drain() } }
        await node.run()
        await loop.stop()
        await context.close()
    }

    private init(shell: NodeShell, trajectory: Trajectory, reachable: Set<String>) {
        self.shell = shell
        self.trajectory = trajectory
        self.map = shell.config.map
        self.topics = Topic(map: shell.config.map)
        self.policy = PathPolicies.named(shell.config.scenario.policy) ?? BestRatePolicy()
        self.workload = shell.config.scenario.workload
        self.reachable = reachable
        liveness = LivenessTracker(config: shell.config.scenario.liveness)
        // The first request goes out once RSU beacons had a chance to arrive.
        nextRequestAt = max(shell.now, trajectory.start) + 3 * shell.config.scenario.liveness.beaconInterval
    }

    /// Where the vehicle is at `time`: interpolated, holding the nearest sample outside the trace.
    private func position(at time: Double) -> Position {
        if let p = trajectory.position(at: time) { return p }
        if time <= trajectory.start { return trajectory.samples.first!.position }
        if time >= trajectory.end { return trajectory.samples.last!.position }
        return trajectory.samples.last { $0.time <= time }!.position  // inside a gap
    }

    private var lastSampleTime: Double { min(trajectory.end, shell.config.duration) }

    private func run() async {
        let now = shell.now
        shell.schedulePeriodic(Timers.tick, at: now)
        shell.schedulePeriodic(Timers.v2v, at: now + shell.rng.unit())
        for await event in shell.loop.events {
            switch event {
            case .timer(let id): timer(id)
            case .message(let socket, let frames): message(socket, frames)
            }
            if finished { break }
            armWake()
        }
    }

    /// When the next exact wake-up is armed for (infinity: none).
    private var armedWake = Double.infinity

    /// Arms a one-shot wake-up at the earliest instant something is due (a peer turning suspect or
    /// dead, an attempt's reply-by or a deadline, the next request), so the vehicle needs no fast
    /// polling tick and still acts on time.
    private func armWake() {
        var next = min(liveness.nextTransition ?? .infinity, ledger.nextDeadline ?? .infinity)
        if drainUntil == nil { next = min(next, nextRequestAt) }
        guard next.isFinite, next < armedWake - 1e-4 else { return }
        armedWake = next
        // Liveness thresholds are strict (silent longer than…): wake just after them.
        shell.schedulePeriodic(Timers.wake, at: next + 1e-4)
    }

    /// The run ends (SIGTERM): stop issuing requests, let the open ones finish for a while.
    func drain() {
        guard drainUntil == nil else { return finish(reason: "run-ended") }  // a second signal: stop now
        drainUntil = shell.now + workload.drainTime
    }

    /// Ends every open request with `reason`, flushes the records and stops.
    func finish(reason: String) {
        guard !finished else { return }
        apply(ledger.closeAll(reason: reason, now: shell.now))
        shell.flushRecords()
        finished = true
        Task { await shell.loop.stop() }
    }

    // MARK: - Timers

    private func timer(_ id: UInt64) {
        let now = shell.now
        switch id {
        case Timers.tick:
            tick(now: now)
            shell.flushRecords()
            shell.schedulePeriodic(Timers.tick, at: now + min(0.1, shell.config.scenario.liveness.beaconInterval))
        case Timers.wake:
            armedWake = .infinity
            tick(now: now)
        case Timers.v2v:
            v2vBeacon(now: now)
            shell.schedulePeriodic(Timers.v2v, at: now + 1)
        default:
            if let held = heldV2V.removeValue(forKey: id) {
                neighbours[held.sender] = held.at
                shell.observeDelivery("v2v", .v2vBeacon, sentAt: held.sentAt, modelledAt: held.at, actualAt: now)
            }
        }
    }

    private func candidates(at now: Double) -> [Route] {
        let here = position(at: now)
        let views = map.rsus.lazy.filter { here.distance(to: $0.position) <= $0.radius }.map { rsu in
            RSUView(id: rsu.id, position: rsu.position, radius: rsu.radius, alive: self.liveness.isAlive(rsu.id),
                    activeVehicles: Int(self.rsuLoad[rsu.id]?.activeVehicles ?? 0), queued: Int(self.rsuLoad[rsu.id]?.queued ?? 0),
                    cellular: rsu.cellular)
        }
        let macro = map.macro.map { MacroView(position: $0.position, radius: $0.radius, target: map.cloud.id) }
        return policy.rank(PathContext(position: here, rsus: Array(views), macro: macro, cellular: map.links.cellular,
                                       macroCellular: map.links.macro, wanLatency: map.links.wan.latency,
                                       payloadBytes: workload.payloadBytes))
    }

    private func inRange(of rsu: RSUSpec, at now: Double) -> Bool {
        position(at: now).distance(to: rsu.position) <= rsu.radius
    }

    private func tick(now: Double) {
        updateSubscriptions(now: now)
        var routes = candidates(at: now)
        recordHandover(to: routes.first, now: now)
        // RSUs that fell silent: dead if we are still in their range, otherwise just out of reach.
        let changes = liveness.check(now: now)
        for change in changes {
            guard let rsu = map.rsu(change.peer) else { continue }
            if inRange(of: rsu, at: now) {
                shell.record(DetectionRecord(observer: shell.id, peer: change.peer, state: change.to.rawValue, at: now))
            } else {
                liveness.forget(change.peer)
            }
        }
        if !changes.isEmpty {
            routes = candidates(at: now)
            for change in changes where change.to == .dead && liveness.state(of: change.peer) != nil {
                apply(ledger.targetLost(change.peer, outcome: "target-dead", now: now, candidates: routes))
            }
        }
        // Attempts to RSUs we drove out of.
        for target in ledger.targetsInFlight.sorted() {
            guard let rsu = map.rsu(target), !inRange(of: rsu, at: now) else { continue }
            apply(ledger.targetLost(rsu.id, outcome: "out-of-range", now: now, candidates: routes))
        }
        if now >= nextRequestAt && now < lastSampleTime && drainUntil == nil {
            openRequest(now: now, candidates: routes)
            nextRequestAt = now + workload.nextInterval(using: &shell.rng)
        }
        apply(ledger.tick(now: now, candidates: routes))
        if let drainUntil, ledger.openCount == 0 || now >= drainUntil { return finish(reason: "run-ended") }
        if now >= lastSampleTime && ledger.openCount == 0 { finish(reason: "vehicle-left") }
        if now >= lastSampleTime + workload.deadline + 1 { finish(reason: "vehicle-left") }
    }

    /// Attach (none → cell), detach (cell → none) or handover (cell → other cell) of the serving cell.
    private func recordHandover(to best: Route?, now: Double) {
        let cell = best.map { $0.path == .macro ? (map.macro?.id ?? $0.target) : $0.target }
        guard cell != servingCell else { return }
        let event = servingCell == nil ? "attach" : cell == nil ? "detach" : "handover"
        let here = position(at: now)
        shell.record(HandoverRecord(vehicleID: shell.id, at: now, event: event, fromCell: servingCell, toCell: cell, x: here.x, y: here.y))
        servingCell = cell
    }

    // MARK: - Requests

    private func openRequest(now: Double, candidates: [Route]) {
        requestSequence += 1
        let spec = RequestSpec(requestID: "\(shell.id)/\(requestSequence)", model: workload.model, inputTokens: workload.inputTokens,
                               outputTokens: workload.outputTokens, payloadBytes: workload.payloadBytes, deadline: workload.deadline)
        let record = RequestRecord(requestID: spec.requestID, vehicleID: shell.id, createdAt: now, deadlineAt: now + spec.deadline,
                                   model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                   payloadBytes: spec.payloadBytes)
        openRecords[spec.requestID] = record
        shell.record(record)
        apply(ledger.open(spec, now: now, candidates: candidates))
    }

    private func apply(_ actions: [RequestLedger.Action]) {
        for action in actions {
            switch action {
            case .send(let spec, let attempt, let route, let replyBy):
                send(spec, attempt: attempt, route: route, replyBy: replyBy)
            case .attemptEnded(let requestID, let attempt, let route, let sentAt, let endedAt, let outcome, let detail):
                shell.record(AttemptRecord(requestID: requestID, attempt: attempt, path: route.path.rawValue, target: route.target,
                                           sentAt: sentAt, endedAt: endedAt, outcome: outcome, detail: detail))
            case .finished(let done):
                guard var record = openRecords.removeValue(forKey: done.requestID) else { continue }
                record.status = done.status
                record.finishedAt = done.at
                record.attempts = done.attempts
                record.reason = done.reason
                let latency = done.at - done.createdAt
                record.latencyMs = latency * 1000
                record.deadlineMet = done.status == .completed && done.at <= record.deadlineAt
                if let reply = done.reply {
                    record.servedBy = reply.servedBy
                    record.path = reply.path
                    record.queueWaitMs = reply.queueWait * 1000
                    record.computeMs = reply.computeTime * 1000
                    record.networkMs = max(0, latency - reply.queueWait - reply.computeTime) * 1000
                }
                shell.record(record)
            }
        }
    }

    private func send(_ spec: RequestSpec, attempt: Int, route: Route, replyBy: Double) {
        let now = shell.now
        shell.record(AttemptRecord(requestID: spec.requestID, attempt: attempt, path: route.path.rawValue, target: route.target,
                                   sentAt: now, outcome: "pending"))
        guard reachable.contains(route.target) else { return shell.count("routes_without_socket") }
        let request = InferenceRequest(requestID: spec.requestID, attempt: UInt16(clamping: attempt), vehicleID: shell.id,
                                       model: spec.model, inputTokens: UInt32(spec.inputTokens), outputTokens: UInt32(spec.outputTokens),
                                       payloadBytes: UInt32(spec.payloadBytes), deadline: replyBy)
        shell.send([Array(route.target.utf8), shell.envelope(request, position: position(at: now))], on: Sockets.access)
    }

    // MARK: - Messages

    private func message(_ socket: Int, _ frames: [[UInt8]]) {
        let now = shell.now
        if socket == Sockets.broadcast {
            guard frames.count == 2, let envelope = shell.decode(frames[1]) else { return }
            switch envelope.kind {
            case .beacon: rsuBeacon(envelope, now: now)
            case .v2vBeacon: v2vReceived(envelope, now: now)
            default: shell.count("unexpected_kind_\(envelope.kind.rawValue)")
            }
            return
        }
        guard socket == Sockets.access, frames.count == 2, let node = String(validating: frames[0], as: UTF8.self),
              reachable.contains(node), let envelope = shell.decode(frames[1]),
              let reply = shell.decodePayload(InferenceReply.self, envelope) else { return shell.count("frames_bad_shape") }
        // A reply over an RSU's cell only reaches a vehicle still in that cell.
        if let rsu = map.rsu(node), !inRange(of: rsu, at: now) { return shell.count("replies_out_of_range") }
        shell.observeArrival(envelope, link: map.rsu(node) != nil ? "cellular-down" : "macro-down")
        let kind: ReplyOutcome.Kind = switch reply.status {
        case .completed: .completed
        case .rejected: .rejected
        case .failed: .failed
        }
        let path = (map.rsu(node) != nil ? ["rsu"] : ["macro"]) + reply.route.dropFirst().compactMap { hop in
            map.role(of: hop).map(\.rawValue)
        }
        let outcome = ReplyOutcome(kind: kind, servedBy: reply.servedBy, path: path.joined(separator: ">"),
                                   queueWait: reply.queueWait, computeTime: reply.computeTime, detail: reply.detail)
        let before = ledger.discardedReplies
        apply(ledger.replied(requestID: reply.requestID, attempt: Int(reply.attempt), outcome: outcome, now: now,
                             candidates: candidates(at: now)))
        if ledger.discardedReplies > before { shell.count("replies_discarded_late") }
    }

    private func rsuBeacon(_ envelope: Envelope, now: Double) {
        guard let rsu = map.rsu(envelope.sender), let beacon = shell.decodePayload(Beacon.self, envelope) else { return }
        // RSU beacons are broadcast over the cell: heard only within its radius.
        let heard = inRange(of: rsu, at: now)
        shell.meter("rsu-beacon", .beacon, heard ? .deliver(at: now) : .outOfRange)
        guard heard else { return }
        rsuLoad[rsu.id] = beacon
        if let change = liveness.heard(rsu.id, incarnation: envelope.incarnation, at: now), change.from != .alive {
            shell.record(DetectionRecord(observer: shell.id, peer: rsu.id, state: change.to.rawValue, at: now))
        }
    }

    // MARK: - V2V

    private func v2vBeacon(now: Double) {
        let here = position(at: now)
        let sample = trajectory.samples.last { $0.time <= now }
        shell.publish(topics.v2v(at: here), V2VBeacon(speed: sample?.speed ?? 0, heading: sample?.angle ?? 0),
                      position: here, on: Sockets.bus)
        neighbours = neighbours.filter { now - $0.value < 3 }
        shell.setCounter("v2v_neighbours", neighbours.count)
    }

    private func v2vReceived(_ envelope: Envelope, now: Double) {
        guard envelope.sender != shell.id, let from = envelope.position else { return }
        let outcome = V2VLink.receive(from: from, to: position(at: now), bytes: envelope.payload.count + 64, sentAt: envelope.sentAt,
                                      parameters: map.links.v2v, rng: &shell.rng)
        shell.meter("v2v", .v2vBeacon, outcome)
        if case .deliver(let at) = outcome {
            heldV2V[shell.scheduleOneShot(at: at)] = (envelope.sender, envelope.sentAt, at)
        }
    }

    /// Subscribes to the beacons of the RSUs around the vehicle and to the V2V topics of the 3 × 3
    /// grid cells around it; unsubscribes from those it moved away from.
    private func updateSubscriptions(now: Double) {
        let here = position(at: now)
        let wanted = topics.v2vAround(here).union(Topic.rsuBeacons(near: here, in: map))
        guard wanted != subscribed else { return }
        for topic in subscribed.subtracting(wanted) { shell.loop.unsubscribe(Sockets.broadcast, prefix: Array(topic.utf8)) }
        for topic in wanted.subtracting(subscribed) { shell.loop.subscribe(Sockets.broadcast, prefix: Array(topic.utf8)) }
        subscribed = wanted
    }
}
