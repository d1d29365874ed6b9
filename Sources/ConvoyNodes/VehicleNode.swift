import ConvoyCore
import ConvoyLinks
import ConvoyMobility
import ConvoyReasoning
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// A vehicle: follows its trajectory, hears RSU beacons in range, beacons to its neighbours over
/// V2V, issues inference requests from the scenario's task mix and fails them over
/// (`RequestLedger`), and reports every request and attempt to the recorder. It may compute on
/// board, serve or relay its neighbours' requests, and shares shareable results over V2V
/// (VehicleNode+V2V.swift).
actor VehicleNode {
    enum Sockets {
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

    /// Something due at a one-shot timer.
    enum Due {
        /// A V2V message held back until its modelled delivery.
        case v2v(V2VMessage, Envelope, modelledAt: Double)
        /// An attempt of the vehicle's own request on its on-board compute is answered.
        case onboard(requestID: String, attempt: Int, ReplyOutcome)
        /// A neighbour's request computed here: the reply goes back over V2V.
        case neighbour(InferenceReply, requester: String)
    }

    let shell: NodeShell
    let trajectory: Trajectory
    let map: MapSpec
    let workload: WorkloadSpec
    /// The nodes the access socket is connected to (RSUs, and the cloud over the macro cell).
    let reachable: Set<String>
    var liveness: LivenessTracker
    var ledger = RequestLedger()
    var rsuLoad: [String: Beacon] = [:]
    /// The macro cell's load, from the cloud's beacons (heard within the macro cell).
    var macroLoad: Beacon?
    var openRecords: [String: RequestRecord] = [:]
    var requestSequence = 0
    var nextRequestAt: Double
    /// Arrival times and tasks come from their own stream, so runs of one seed offer the same
    /// workload whatever the policy or the timing of other events.
    var arrivalRNG: SeededGenerator
    /// Arrivals still to come, from the scenario's arrivals file.
    var listedArrivals: ArraySlice<ArrivalFile.Arrival> = []
    let topics: Topic
    let policy: any PathPolicy
    var subscribed: Set<String> = []
    var due: [UInt64: Due] = [:]
    /// On-board compute (scenario `onboard:`), for the vehicle's own requests and its neighbours'.
    var onboard: ComputeServer?
    /// On-board jobs by `requestID#attempt`: the timer that answers each (so a cancel can stop it).
    var onboardTimers: [String: UInt64] = [:]
    /// Neighbours' requests relayed to an RSU, by `requestID#attempt`.
    var relayed: [String: (request: InferenceRequest, requester: String, rsu: String)] = [:]
    var neighbours: [String: Neighbour] = [:]
    /// Shared results heard from neighbours, by key.
    var sharedResults: [String: SharedResult] = [:]
    /// Expected compute behind each RSU and the cloud, per task (`MapSpec.serviceTimes`).
    var serviceTimes: [String: [String: Double]] = [:]
    /// The cell the vehicle would use now (best RSU, else the macro cell), for handover records.
    var servingCell: String?
    var finished = false
    /// Set when the run ends: no new requests; open ones may still complete until this time.
    var drainUntil: Double?

    struct Neighbour {
        var position: Position
        var heardAt: Double
        var freeSlots: Int
        var uplinkRate: Double
    }

    static func run(config: RunConfig, id: String, trajectoryPath: String) async throws {
        let trajectory = try TrajectoryFile.read(path: trajectoryPath)
        let map = config.map
        var arrivals: [ArrivalFile.Arrival] = []
        if let path = config.scenario.workload.arrivalsPath {
            arrivals = try ArrivalFile.load(path: path, tasks: config.scenario.workload.tasks).arrivals[id] ?? []
        }
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
        let node = VehicleNode(shell: shell, trajectory: trajectory, reachable: Set(targets), arrivals: arrivals)
        ProcessSignals.onTermination { _ in Task { await node.drain() } }
        await node.run()
        await loop.stop()
        await context.close()
    }

    private init(shell: NodeShell, trajectory: Trajectory, reachable: Set<String>, arrivals: [ArrivalFile.Arrival]) {
        self.shell = shell
        self.trajectory = trajectory
        self.map = shell.config.map
        self.topics = Topic(map: shell.config.map)
        self.policy = PathPolicies.named(shell.config.scenario.policy) ?? BestRatePolicy()
        self.workload = shell.config.scenario.workload
        self.reachable = reachable
        liveness = LivenessTracker(config: shell.config.scenario.liveness)
        if let spec = shell.config.scenario.onboard {
            onboard = ComputeServer(device: spec.profile, slots: spec.slots, queueCapacity: spec.queue)
        }
        arrivalRNG = SeededGenerator(seed: shell.config.seed, label: "arrivals/\(shell.id)")
        // The first request goes out once RSU beacons had a chance to arrive.
        let firstRequest = trajectory.start + 3 * shell.config.scenario.liveness.beaconInterval
        if workload.arrival == .file {
            // Listed arrivals outside the vehicle's time in the trace are skipped.
            let inTrace = arrivals.filter { $0.time >= trajectory.start && $0.time < min(trajectory.end, shell.config.duration) }
            if inTrace.count < arrivals.count { shell.count("arrivals_outside_trace", by: arrivals.count - inTrace.count) }
            listedArrivals = inTrace[...]
            nextRequestAt = inTrace.first.map { max($0.time, firstRequest) } ?? .infinity
        } else {
            nextRequestAt = firstRequest
        }
    }

    /// Where the vehicle is at `time`: interpolated, holding the nearest sample outside the trace.
    func position(at time: Double) -> Position {
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
        shell.loop.subscribe(Sockets.broadcast, prefix: Array(Topic.direct(shell.id).utf8))
        if map.macro != nil { shell.loop.subscribe(Sockets.broadcast, prefix: Array(Topic.cloudBeacon.utf8)) }
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
            switch due.removeValue(forKey: id) {
            case .v2v(let message, let envelope, let modelledAt)?:
                shell.observeDelivery("v2v", envelope.kind, sentAt: envelope.sentAt, modelledAt: modelledAt, actualAt: now)
                v2vDelivered(message, from: envelope.sender, position: envelope.position!, now: now)
            case .onboard(let requestID, let attempt, let outcome)?:
                onboardTimers[Self.key(requestID, attempt)] = nil
                apply(ledger.replied(requestID: requestID, attempt: attempt, outcome: outcome, now: now, candidates: candidates(now: now)))
            case .neighbour(let reply, let requester)?:
                onboardTimers[Self.key(reply.requestID, Int(reply.attempt))] = nil
                sendDirect(reply, to: requester, now: now)
            case nil:
                break
            }
        }
    }

    static func key(_ requestID: String, _ attempt: Int) -> String { "\(requestID)#\(attempt)" }

    // MARK: - Paths

    /// What the vehicle's policy ranks, for every request at `now`: the RSUs in range, the macro
    /// cell, on-board compute and neighbours (per request: its payload, deadline and compute).
    func candidates(now: Double) -> RequestLedger.Candidates {
        let here = position(at: now)
        let views = rsuViews(at: here)
        let macro = map.macro.map {
            MacroView(position: $0.position, radius: $0.radius, target: map.cloud.id, activeVehicles: Int(macroLoad?.activeVehicles ?? 0),
                      queued: Int(macroLoad?.queued ?? 0))
        }
        let neighbourViews = neighbours.filter { now - $0.value.heardAt < Self.neighbourTimeout }.map { id, n in
            NeighbourView(id: id, position: n.position, freeSlots: n.freeSlots, uplinkRate: n.uplinkRate)
        }
        var base = PathContext(position: here, rsus: views, macro: macro, cellular: map.links.cellular, macroCellular: map.links.macro,
                               wanLatency: map.links.wan.latency, neighbours: neighbourViews, v2v: map.links.v2v,
                               prices: shell.config.scenario.prices)
        return { [self] spec in
            let deadlineAt = openRecords[spec.requestID]?.deadlineAt ?? now + spec.deadline
            base.payloadBytes = spec.payloadBytes
            base.budget = max(0, deadlineAt - now)
            base.serviceTime = serviceTimes(for: spec)
            base.neighbourComputeTime = onboardTime(for: spec)
            if let onboard {
                let finish = onboard.estimatedFinish(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens, now: now)
                base.onboard = OnboardView(id: shell.id, finishIn: finish.map { $0 - now })
            }
            return policy.rank(base).map { route in
                var annotated = route
                annotated.expectedLatency = base.expectedLatency(route)
                return annotated
            }
        }
    }

    /// The RSUs whose radius covers `here`, as the vehicle knows them (liveness, advertised load).
    private func rsuViews(at here: Position) -> [RSUView] {
        map.rsus.filter { here.distance(to: $0.position) <= $0.radius }.map { rsu in
            RSUView(id: rsu.id, position: rsu.position, radius: rsu.radius, alive: liveness.isAlive(rsu.id),
                    activeVehicles: Int(rsuLoad[rsu.id]?.activeVehicles ?? 0), queued: Int(rsuLoad[rsu.id]?.queued ?? 0),
                    cellular: rsu.cellular)
        }
    }

    private func serviceTimes(for spec: RequestSpec) -> [String: Double] {
        if let cached = serviceTimes[spec.task] { return cached }
        let times = map.serviceTimes(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                     budget: ledger.config.attemptTimeout)
        serviceTimes[spec.task] = times
        return times
    }

    /// Compute seconds of `spec` on an idle on-board device (every vehicle has the same), nil if none or it does not fit.
    private func onboardTime(for spec: RequestSpec) -> Double? {
        guard let device = shell.config.scenario.onboard?.profile, let model = ModelProfile.catalog[spec.model],
              ComputeModel.fits(model: model, device: device) else { return nil }
        return ComputeModel.inferenceTime(model: model, device: device, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens)
    }

    func inRange(of rsu: RSUSpec, at now: Double) -> Bool {
        position(at: now).distance(to: rsu.position) <= rsu.radius
    }

    /// The best alive RSU in range and the rate the vehicle gets there (for relaying and its V2V beacon).
    func bestRSU(now: Double) -> (id: String, rate: Double)? {
        let here = position(at: now)
        return PathContext(position: here, rsus: rsuViews(at: here), macro: nil, cellular: map.links.cellular).usableRSUs
            .max { ($0.rate, $1.rsu.id) < ($1.rate, $0.rsu.id) }.map { ($0.rsu.id, $0.rate) }
    }

    static let neighbourTimeout = 3.0

    private func tick(now: Double) {
        updateSubscriptions(now: now)
        var routes = candidates(now: now)
        recordHandover(now: now)
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
            routes = candidates(now: now)
            for change in changes where change.to == .dead && liveness.state(of: change.peer) != nil {
                apply(ledger.targetLost(change.peer, outcome: "target-dead", now: now, candidates: routes))
                relayTargetLost(change.peer, now: now)
            }
        }
        // Attempts to RSUs we drove out of, and to neighbours gone silent or out of V2V range.
        let here = position(at: now)
        for target in ledger.targetsInFlight.sorted() where target != shell.id {
            let gone = if let rsu = map.rsu(target) { !inRange(of: rsu, at: now) } else {
                map.role(of: target) == nil && !neighbourReachable(target, from: here, now: now)
            }
            if gone { apply(ledger.targetLost(target, outcome: "out-of-range", now: now, candidates: routes)) }
        }
        while now >= nextRequestAt && now < lastSampleTime && drainUntil == nil {
            openRequest(now: now, candidates: routes)
        }
        apply(ledger.tick(now: now, candidates: routes))
        if let drainUntil, ledger.openCount == 0 || now >= drainUntil { return finish(reason: "run-ended") }
        if now >= lastSampleTime && ledger.openCount == 0 { finish(reason: "vehicle-left") }
        if now >= lastSampleTime + workload.longestDeadline + 1 { finish(reason: "vehicle-left") }
    }

    /// Attach (none → cell), detach (cell → none) or handover (cell → other cell) of the serving
    /// cell: the best RSU in range, else the macro cell.
    private func recordHandover(now: Double) {
        let here = position(at: now)
        let macroCell = map.macro.flatMap { here.distance(to: $0.position) <= $0.radius ? $0.id : nil }
        let cell = bestRSU(now: now)?.id ?? macroCell
        guard cell != servingCell else { return }
        let event = servingCell == nil ? "attach" : cell == nil ? "detach" : "handover"
        shell.record(HandoverRecord(vehicleID: shell.id, at: now, event: event, fromCell: servingCell, toCell: cell, x: here.x, y: here.y))
        servingCell = cell
    }

    // MARK: - Requests

    private func openRequest(now: Double, candidates: RequestLedger.Candidates) {
        let task: TaskSpec
        if workload.arrival == .file {
            let arrival = listedArrivals.removeFirst()
            task = arrival.task.flatMap(workload.task(named:)) ?? workload.pickTask(using: &arrivalRNG)
            nextRequestAt = listedArrivals.first?.time ?? .infinity
        } else {
            // On schedule: a late tick does not shift the arrivals after it.
            task = workload.pickTask(using: &arrivalRNG)
            nextRequestAt += workload.nextInterval(using: &arrivalRNG)
        }
        requestSequence += 1
        let here = position(at: now)
        let spec = RequestSpec(requestID: "\(shell.id)/\(requestSequence)", task: task.name, model: task.model,
                               inputTokens: task.inputTokens, outputTokens: task.outputTokens, payloadBytes: task.payloadBytes,
                               resultBytes: task.resultBytes, deadline: task.deadline,
                               sharingKey: task.shareable ? workload.sharingKey(task: task.name, at: here) : nil)
        var record = RequestRecord(requestID: spec.requestID, vehicleID: shell.id, createdAt: now, deadlineAt: now + spec.deadline,
                                   model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                   payloadBytes: spec.payloadBytes)
        record.task = task.name
        record.cost = 0
        openRecords[spec.requestID] = record
        shell.record(record)
        // A fresh result a neighbour shared answers it at once.
        if let key = spec.sharingKey, let shared = freshSharedResult(key, now: now) {
            return apply([.finished(.init(requestID: spec.requestID, status: .completed, at: now, createdAt: now, attempts: 0,
                                          reason: nil, reply: Self.cacheHit(shared)))])
        }
        apply(ledger.open(spec, now: now, candidates: candidates(spec), width: policy.width))
    }

    func apply(_ actions: [RequestLedger.Action]) {
        for action in actions {
            switch action {
            case .send(let spec, let attempt, let route, let replyBy):
                openRecords[spec.requestID]?.cost? += shell.config.scenario.prices[route.path]
                send(spec, attempt: attempt, route: route, replyBy: replyBy)
            case .cancel(let requestID, let attempt, let route):
                cancel(requestID: requestID, attempt: attempt, route: route)
            case .attemptEnded(let requestID, let attempt, let route, let sentAt, let endedAt, let outcome, let detail):
                shell.record(AttemptRecord(requestID: requestID, attempt: attempt, path: route.path.rawValue, target: route.target,
                                           sentAt: sentAt, endedAt: endedAt, outcome: outcome, detail: detail))
            case .finished(let done):
                finished(done)
            }
        }
    }

    private func finished(_ done: RequestLedger.Finished) {
        guard var record = openRecords.removeValue(forKey: done.requestID) else { return }
        record.status = done.status
        record.finishedAt = done.at
        record.attempts = done.attempts
        record.reason = done.reason
        let latency = done.at - done.createdAt
        record.latencyMs = latency * 1000
        record.deadlineMet = done.status == .completed && done.at <= record.deadlineAt
        record.cacheHit = done.reply?.path == Self.cachePath
        if let reply = done.reply {
            record.servedBy = reply.servedBy
            record.path = reply.path
            record.queueWaitMs = reply.queueWait * 1000
            record.computeMs = reply.computeTime * 1000
            record.networkMs = max(0, latency - reply.queueWait - reply.computeTime) * 1000
            if !record.cacheHit!, let task = record.task.flatMap(workload.task(named:)), task.shareable {
                share(record, task: task, now: done.at)
            }
        }
        shell.record(record)
    }

    private func send(_ spec: RequestSpec, attempt: Int, route: Route, replyBy: Double) {
        let now = shell.now
        shell.record(AttemptRecord(requestID: spec.requestID, attempt: attempt, path: route.path.rawValue, target: route.target,
                                   sentAt: now, outcome: "pending"))
        let request = InferenceRequest(requestID: spec.requestID, attempt: UInt16(clamping: attempt), vehicleID: shell.id,
                                       model: spec.model, inputTokens: UInt32(spec.inputTokens), outputTokens: UInt32(spec.outputTokens),
                                       payloadBytes: UInt32(spec.payloadBytes), resultBytes: UInt32(spec.resultBytes), deadline: replyBy)
        switch route.path {
        case .onboard:
            computeOwn(request, now: now)
        case .v2v:
            sendDirect(request, to: route.target, now: now)
        case .rsu, .macro:
            guard reachable.contains(route.target) else { return shell.count("routes_without_socket") }
            shell.send([Array(route.target.utf8), shell.envelope(request, position: position(at: now))], on: Sockets.access)
        }
    }

    /// Withdraws an attempt still in flight: tells its server, or stops the on-board job.
    private func cancel(requestID: String, attempt: Int, route: Route) {
        let now = shell.now
        let cancel = InferenceCancel(requestID: requestID, attempt: UInt16(clamping: attempt))
        switch route.path {
        case .onboard:
            stopOnboard(requestID: requestID, attempt: attempt, now: now)
        case .v2v:
            sendDirect(cancel, to: route.target, now: now)
        case .rsu, .macro:
            guard reachable.contains(route.target) else { return }
            shell.send([Array(route.target.utf8), shell.envelope(cancel, position: position(at: now))], on: Sockets.access)
        }
    }

    // MARK: - On-board compute

    /// Runs one of the vehicle's own attempts on board; the answer comes back through a timer.
    private func computeOwn(_ request: InferenceRequest, now: Double) {
        let attempt = Int(request.attempt)
        func answer(_ outcome: ReplyOutcome, at time: Double) {
            let timer = shell.scheduleOneShot(at: time)
            due[timer] = .onboard(requestID: request.requestID, attempt: attempt, outcome)
            onboardTimers[Self.key(request.requestID, attempt)] = timer
        }
        guard onboard != nil else {
            return answer(ReplyOutcome(kind: .failed, servedBy: shell.id, path: "onboard", detail: "no on-board compute"), at: now)
        }
        switch onboard!.admit(requestID: request.requestID, model: request.model, inputTokens: Int(request.inputTokens),
                              outputTokens: Int(request.outputTokens), now: now) {
        case .admitted(let job), .duplicate(let job):
            if job.admittedAt == now { shell.count("compute_ms", by: Int((job.computeTime * 1000).rounded())) }
            answer(ReplyOutcome(kind: .completed, servedBy: shell.id, path: "onboard", queueWait: job.queueWait,
                                computeTime: job.computeTime), at: job.finishAt)
        case .rejected:
            answer(ReplyOutcome(kind: .rejected, servedBy: shell.id, path: "onboard", detail: "full"), at: now)
        case .unsupported(let why):
            answer(ReplyOutcome(kind: .failed, servedBy: shell.id, path: "onboard", detail: why), at: now)
        }
    }

    /// Stops an on-board job whose answer is no longer wanted, giving its compute back.
    func stopOnboard(requestID: String, attempt: Int, now: Double) {
        guard let timer = onboardTimers.removeValue(forKey: Self.key(requestID, attempt)) else { return }
        due[timer] = nil
        if let saved = onboard?.cancel(requestID: requestID, now: now), saved > 0 {
            shell.count("compute_ms", by: -Int((saved * 1000).rounded()))
        }
    }

    // MARK: - Messages

    private func message(_ socket: Int, _ frames: [[UInt8]]) {
        let now = shell.now
        if socket == Sockets.broadcast {
            guard frames.count == 2, let envelope = shell.decode(frames[1]) else { return }
            if envelope.kind == .beacon { return serverBeacon(envelope, now: now) }
            v2vReceived(envelope, now: now)
            return
        }
        guard socket == Sockets.access, frames.count == 2, let node = String(validating: frames[0], as: UTF8.self),
              reachable.contains(node), let envelope = shell.decode(frames[1]),
              let reply = shell.decodePayload(InferenceReply.self, envelope) else { return shell.count("frames_bad_shape") }
        // A reply over an RSU's cell only reaches a vehicle still in that cell.
        if let rsu = map.rsu(node), !inRange(of: rsu, at: now) { return shell.count("replies_out_of_range") }
        shell.observeArrival(envelope, link: map.rsu(node) != nil ? "cellular-down" : "macro-down")
        if relayReplied(reply, now: now) { return }
        received(reply, over: map.rsu(node) != nil ? "rsu" : "macro", now: now)
    }

    /// A reply to one of the vehicle's own attempts, over `access` ("rsu", "macro" or "v2v").
    func received(_ reply: InferenceReply, over access: String, now: Double) {
        let kind: ReplyOutcome.Kind = switch reply.status {
        case .completed: .completed
        case .rejected: .rejected
        case .failed: .failed
        }
        let path = [access] + reply.route.dropFirst().compactMap { hop in map.role(of: hop).map(\.rawValue) }
        let outcome = ReplyOutcome(kind: kind, servedBy: reply.servedBy, path: path.joined(separator: ">"),
                                   queueWait: reply.queueWait, computeTime: reply.computeTime, detail: reply.detail)
        let before = ledger.discardedReplies
        apply(ledger.replied(requestID: reply.requestID, attempt: Int(reply.attempt), outcome: outcome, now: now,
                             candidates: candidates(now: now)))
        if ledger.discardedReplies > before { shell.count("replies_discarded_late") }
    }

    private func serverBeacon(_ envelope: Envelope, now: Double) {
        if envelope.sender == map.cloud.id, let macro = map.macro {
            // The cloud beacons the macro cell's load, heard within the macro cell.
            guard position(at: now).distance(to: macro.position) <= macro.radius else { return }
            macroLoad = shell.decodePayload(Beacon.self, envelope)
            return
        }
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
