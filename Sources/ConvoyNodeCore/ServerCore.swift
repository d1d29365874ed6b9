import ConvoyCore
import ConvoyFederated
import ConvoyLinks
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// What an RSU, edge server or cloud decides: serves requests on its own compute or relays them to
/// its next hop (from the map's graph), routes replies back, beacons its presence and load, and
/// watches its next hop's beacons. Pure: event and time in, actions out (`NodeAction`).
///
/// Link emulation happens where the shared resource lives:
/// - RSU: its cell, both directions (uplink on receipt, downlink before sending the reply); its
///   backhaul towards the edge on sending.
/// - edge: the backhaul towards each RSU on sending replies; the WAN towards the cloud on sending.
/// - cloud: the macro cell (plus WAN) for vehicles that reach it directly; the WAN towards each
///   edge on sending replies.
public struct ServerCore: Sendable {
    public enum Socket: Sendable { case clients, beacons, upstream }

    public enum Event: Sendable {
        case start
        case timer(UInt64)
        /// `from`: the sender's authenticated identity (its CURVE key's node) on the clients socket;
        /// nil without CurveZMQ.
        case frames(Socket, [[UInt8]], from: String? = nil)
        /// The launcher imposed a partition, degradation or backend-down (nil: none).
        case imposed(FaultMode?, Degradation?)
        /// A call to the node's real model server ended (the shell measured it).
        case modelCallEnded(ModelCallResult)
        /// The trainer process answered (the federated fine-tuning aggregator).
        case trainer([[UInt8]])
        /// The run ends (SIGTERM).
        case stop
    }

    public enum Timers {
        public static let beacon: UInt64 = 1, tick: UInt64 = 2, flush: UInt64 = 3
        static let firstOneShot: UInt64 = 1000
    }

    /// Who sent a request, so the reply can go back.
    public struct Client: Sendable, Equatable {
        public var routingID: [UInt8]
        public var node: String
        public var isVehicle: Bool
    }

    /// Something held until a one-shot timer.
    indirect enum Held: Sendable {
        /// A request to handle.
        case handle(InferenceRequest, Client)
        /// A reply from the next hop, held back by this node's degradation.
        case upstreamReply(InferenceReply)
        case cancel(InferenceCancel)
        /// The compute asked to be woken (a job due).
        case compute
        /// Federated fine-tuning towards the aggregator, and back towards a vehicle.
        case fedUp(FedUp, Client)
        case fedDown(FedDown)
        /// Federated analytics towards the aggregator, its receipt back towards a vehicle, and the
        /// instant the estimate is due.
        case analyticsUp(AnalyticsReport, Client)
        case analyticsAck(AnalyticsAck)
        case analyticsDue
        /// A message from a vehicle whose access link this node applied: sampled (modelled against
        /// actual delivery) as it is carried out.
        case arrived(Held, link: LinkName, kind: MessageKind, sentAt: Double, modelledAt: Double)
    }

    /// An attempt computing here: who gets the answer.
    struct Serving {
        var client: Client
        var route: [String]
        var resultBytes: UInt32
        /// Past this instant nobody waits for the answer (the request's deadline).
        var replyBy: Double
    }

    /// How long an answered attempt is remembered, so that a late cancel of it counts as
    /// `cancels_too_late` rather than `cancels_unknown`.
    static let answeredMemory = 60.0

    public let id: String
    public let role: NodeRole
    let map: MapSpec
    let position: Position
    let upstream: String?
    /// The run's vehicles (nil: not known, no check): who may ask on another vehicle's behalf.
    let vehicles: Set<String>?
    var rng: SeededGenerator
    public internal(set) var compute: (any ComputeBackend)?
    var cell: CellLink?
    var macro: CellLink?
    var upstreamLink: WiredLink?
    var clientLinks: [String: WiredLink] = [:]
    let clientLinkParameters: WiredParameters?
    var liveness: LivenessTracker
    var relays = RelayTable<Client>()
    var held: [UInt64: Held] = [:]
    /// Emulated seconds by which a message to a vehicle over the cell is handed to the transport
    /// ahead of its delivery instant, stamped with that instant (the vehicle holds it until then;
    /// 0: sent at it). A crash or partition of this node then still lets through what it had
    /// sent for the next `sendAhead` seconds.
    public var sendAhead = 0.0
    var serving: [AttemptKey: Serving] = [:]
    /// Attempts answered (or refused) here in the last `answeredMemory` seconds, with when.
    var answered: [AttemptKey: Double] = [:]
    /// When this incarnation started: a request sent before it was addressed to a previous one
    /// (libzmq queued it while the node was down) and is dropped.
    var startedAt = -Double.infinity
    var lastForget = -Double.infinity
    var vehiclePositions: [String: Position] = [:]
    var imposed: (mode: FaultMode, degradation: Degradation?)?
    /// The federated fine-tuning aggregator, when the scenario places it here.
    public internal(set) var aggregator: FedAggregator?
    /// Hierarchical fine-tuning at an RSU: the group level of its vehicles.
    public internal(set) var group: GroupAggregator?
    /// Whether this node aggregates fine-tuning updates (and evaluates models with the trainer).
    public var aggregatesFedTune: Bool { aggregator != nil || group != nil }
    /// For federated fine-tuning and analytics: the client each vehicle's last message towards the
    /// aggregator came from (the way back).
    var wayBack: [String: Client] = [:]
    /// The federated analytics aggregator, when the scenario places it here.
    public internal(set) var analytics: AnalyticsAggregator?
    /// The analytics estimate's noise, its own stream (link draws stay as they are).
    var analyticsNoise: SeededGenerator
    var nextTimer = Timers.firstOneShot
    var reportedComputeMs = 0
    public private(set) var stopped = false
    var out = ActionList()

    /// - Parameters: `seed` and `incarnation` seed this incarnation's random stream (link draws);
    ///   `fedResume`, `fedPending`: the federated fine-tuning checkpoint and pending files a
    ///   previous incarnation left (the run's aggregator's, or an RSU group's).
    public init(id: String, map: MapSpec, liveness config: LivenessConfig, seed: UInt64, incarnation: UInt32,
                vehicles: Set<String>? = nil, fedtune: FedTuneConfig? = nil, fedResume: [UInt8]? = nil, fedPending: [UInt8]? = nil,
                analytics: AnalyticsConfig? = nil, compute makeBackend: (ComputeSpec) -> any ComputeBackend = Self.modelled) throws {
        if let fedtune, fedtune.aggregator == id {
            aggregator = FedAggregator(config: fedtune, id: id, resume: fedResume, pending: fedPending)
        }
        if let analytics, analytics.aggregator == id { self.analytics = AnalyticsAggregator(config: analytics) }
        analyticsNoise = SeededGenerator(seed: seed, label: "analytics/\(id)")
        self.vehicles = vehicles
        guard let role = map.role(of: id) else { throw InputError(file: "map", field: "id", "'\(id)' is not a node of the map") }
        self.id = id
        self.role = role
        self.map = map
        upstream = map.nextHop(of: id)
        rng = SeededGenerator(seed: seed, label: "\(id)#\(incarnation)")
        liveness = LivenessTracker(config: config)
        var spec: ComputeSpec?
        switch role {
        case .rsu:
            let rsu = map.rsu(id)!
            position = rsu.position
            spec = rsu.compute
            cell = CellLink(position: rsu.position, radius: rsu.radius, parameters: map.cellular(of: rsu))
            upstreamLink = rsu.edge.map { _ in WiredLink(parameters: map.backhaul(of: rsu)) }
            clientLinkParameters = nil
        case .edge:
            let edge = map.edge(id)!
            position = edge.position
            spec = edge.compute
            upstreamLink = WiredLink(parameters: map.links.wan)
            clientLinkParameters = map.links.backhaul
        case .cloud:
            position = map.macro?.position ?? Position(x: 0, y: 0)
            spec = map.cloud.compute
            if let m = map.macro { macro = CellLink(position: m.position, radius: m.radius, parameters: map.links.macro) }
            clientLinkParameters = map.links.wan
        case .vehicle:
            throw InputError(file: "map", field: "id", "'\(id)' is a vehicle, not a server")
        }
        compute = spec.map(makeBackend)
        if let fedtune, fedtune.scheme == .hierarchical, role == .rsu, fedtune.aggregator != id {
            group = GroupAggregator(config: fedtune, id: id, index: (map.rsus.firstIndex { $0.id == id } ?? 0) + 1, incarnation: incarnation,
                                     resume: fedResume, pending: fedPending)
        }
    }

    /// The node's compute as the map says (`ComputeSpec.makeBackend`).
    public static func modelled(_ spec: ComputeSpec) -> any ComputeBackend { spec.makeBackend() }

    /// The beacon topic of the next hop, which this node subscribes to (nil: none).
    public var upstreamBeaconTopic: String? {
        upstream.flatMap { hop in map.role(of: hop).flatMap { Topic.beacon(of: $0, id: hop) } }
    }

    public mutating func handle(_ event: Event, now: Double) -> [NodeAction] {
        guard !stopped else { return [] }
        switch event {
        case .start:
            startedAt = now
            out.arm(Timers.beacon, at: now)
            out.arm(Timers.tick, at: now + 0.02)
            out.arm(Timers.flush, at: now + 0.1)
            if aggregator != nil { out.append(.trainer(.hello(id: Self.helloID))) }
            if group != nil { aggregate(.timer(GroupAggregator.tickTimer), now: now) }
            if let analytics { hold(.analyticsDue, until: max(now, analytics.dueAt)) }
        case .timer(let timer):
            fired(timer, now: now)
        case .frames(let socket, let frames, let peer):
            received(frames, on: socket, from: peer, now: now)
        case .imposed(let mode, let degradation):
            let wasDown = imposed?.mode == .backendDown
            imposed = mode.map { ($0, degradation) }
            if wasDown != (mode == .backendDown) {
                compute?.setServerDown(mode == .backendDown, now: now)
                completeJobs(now: now)
            }
        case .modelCallEnded(let result):
            if let due = compute?.finished(result, now: now) {
                if due > now { hold(.compute, until: due) } else { completeJobs(now: now) }
            }
        case .trainer(let frames):
            trainerReplied(frames, now: now)
        case .stop:
            if analytics?.recorded == false { recordEstimate(now: now) }
            aggregate(.stop, now: now)
            stopped = true
            out.append(.flushRecords)
            out.append(.stop)
        }
        reportCompute()
        if var backend = compute {
            for command in backend.takeCommands() { out.append(.compute(command)) }
            compute = backend
        }
        return out.take()
    }

    private mutating func fired(_ timer: UInt64, now: Double) {
        let interval = liveness.config.beaconInterval
        switch timer {
        case Timers.beacon:
            beacon(now: now)
            out.arm(Timers.beacon, at: now + interval)
        case Timers.tick:
            checkUpstream(now: now)
            giveUpPastReplyBy(now: now)
            out.arm(Timers.tick, at: now + interval / 2)
        case Timers.flush:
            out.append(.flushRecords)
            out.arm(Timers.flush, at: now + 0.1)
        default:
            if timer >= FedAggregator.timerBase { return aggregate(.timer(timer), now: now) }
            guard let item = held.removeValue(forKey: timer) else { return }
            perform(item, now: now)
        }
    }

    mutating func hold(_ item: Held, until time: Double) {
        nextTimer += 1
        held[nextTimer] = item
        out.arm(nextTimer, at: time)
    }

    /// Carries out `item` when `outcome` delivers it: now, or held until its instant. A lost
    /// message is counted under `dropped` (if given; link outcomes are already metered).
    mutating func deliver(_ item: Held, _ outcome: LinkOutcome, now: Double, dropped: String? = nil) {
        switch outcome {
        case .deliver(let at) where at > now: hold(item, until: at)
        case .deliver: perform(item, now: now)
        case .lost, .outOfRange: if let dropped { out.count(dropped) }
        }
    }

    private mutating func perform(_ item: Held, now: Double) {
        switch item {
        case .arrived(let item, let link, let kind, let sentAt, let modelledAt):
            out.append(.observe(link, kind, sentAt: sentAt, modelledAt: modelledAt, actualAt: now))
            perform(item, now: now)
        case .handle(let request, let client):
            serve(request, from: client, now: now)
        case .upstreamReply(let reply):
            guard let entry = relays.replied(reply) else { return out.count("replies_unmatched") }
            sendReply(reply, to: entry.client, now: now)
        case .cancel(let cancel):
            withdraw(cancel, now: now)
        case .compute:
            completeJobs(now: now)
        case .fedUp(let message, let client):
            fedArrived(message, from: client, now: now)
        case .fedDown(let message):
            fedFromUpstream(message, now: now)
        case .analyticsUp(let report, let client):
            analyticsArrived(report, from: client, now: now)
        case .analyticsAck(let ack):
            guard let client = wayBack[ack.vehicleID] else { return out.count("analytics_ack_unroutable") }
            sendBack(ack, virtualBytes: 0, to: client, now: now)
        case .analyticsDue:
            recordEstimate(now: now)
        }
    }

    private mutating func received(_ frames: [[UInt8]], on socket: Socket, from peer: String?, now: Double) {
        if imposed?.mode == .partition { return out.count("partition_dropped_in") }
        switch socket {
        case .clients:
            guard frames.count == 2 else { return out.count("frames_bad_shape") }
            guard let envelope = FrameDecoding.envelope(frames[1], into: &out) else { return }
            guard envelope.sentAt >= startedAt else { return out.count("requests_for_previous_incarnation") }
            // Authenticated: a client speaks under its own key's name only.
            if let peer, envelope.sender != peer { return out.count("requests_sender_mismatch") }
            switch envelope.kind {
            case .request:
                guard let request = FrameDecoding.payload(InferenceRequest.self, envelope, into: &out) else { return }
                if let refusal = Self.identityRefusal(request, sender: envelope.sender, authenticated: peer != nil, vehicles: vehicles) {
                    return out.count(refusal)
                }
                receive(request, envelope: envelope, routingID: frames[0], frameBytes: frames[1].count, now: now)
            case .cancel:
                guard let cancel = FrameDecoding.payload(InferenceCancel.self, envelope, into: &out) else { return }
                // Only the requester (or a vehicle of the run relaying for it) withdraws an attempt.
                if peer != nil, map.role(of: envelope.sender) == nil,
                   Self.mayAct(for: Self.vehicle(ofRequest: cancel.requestID), sender: envelope.sender, vehicles: vehicles) == false {
                    return out.count("cancels_for_another_sender")
                }
                receive(cancel, envelope: envelope, frameBytes: frames[1].count, now: now)
            case .fedUp:
                guard let message = FrameDecoding.payload(FedUp.self, envelope, into: &out) else { return }
                receiveTowardsAggregator(for: message.vehicleID, route: message.route, envelope: envelope, routingID: frames[0],
                                         frameBytes: frames[1].count, refusal: "fed_for_another_sender", now: now) { .fedUp(message, $0) }
            case .analyticsUp:
                guard let report = FrameDecoding.payload(AnalyticsReport.self, envelope, into: &out) else { return }
                receiveTowardsAggregator(for: report.vehicleID, route: report.route, envelope: envelope, routingID: frames[0],
                                         frameBytes: frames[1].count, refusal: "analytics_for_another_sender", now: now) { .analyticsUp(report, $0) }
            default:
                out.count("unexpected_kind_\(envelope.kind.rawValue)")
            }
        case .beacons:
            guard frames.count == 2 else { return out.count("frames_bad_shape") }
            guard let envelope = FrameDecoding.envelope(frames[1], into: &out), envelope.sender == upstream else { return }
            if let change = liveness.heard(envelope.sender, incarnation: envelope.incarnation, at: now) {
                out.record(.detection(DetectionRecord(observer: id, peer: change.peer, state: change.to.rawValue, at: change.at)))
            }
        case .upstream:
            guard frames.count == 1 else { return out.count("frames_bad_shape") }
            guard let envelope = FrameDecoding.envelope(frames[0], into: &out) else { return }
            // From the next hop, back towards a client: a reply, a fine-tuning chunk or acknowledgement, an analytics receipt.
            let item: Held? = switch envelope.kind {
            case .fedDown: FrameDecoding.payload(FedDown.self, envelope, into: &out).map { .fedDown($0) }
            case .analyticsAck: FrameDecoding.payload(AnalyticsAck.self, envelope, into: &out).map { .analyticsAck($0) }
            default: FrameDecoding.payload(InferenceReply.self, envelope, into: &out).map { .upstreamReply($0) }
            }
            guard let item else { return }
            if let link = role.uplink { out.observeArrival(envelope, link: link, now: now) }
            deliver(item, degrade(.deliver(at: now)), now: now, dropped: "degrade_dropped_in")
        }
    }

    /// Why a request must not be served for `sender` (a counter name), or nil. A request id is
    /// its vehicle's (`<vehicle>/<n>`); an authenticated client asks for itself, or, if it is a
    /// vehicle of the run, relays for another vehicle of the run (V2V). Relays between servers
    /// (route not empty) come from authenticated servers and are trusted.
    static func identityRefusal(_ request: InferenceRequest, sender: String, authenticated: Bool, vehicles: Set<String>?) -> String? {
        guard request.requestID.hasPrefix(request.vehicleID + "/") else { return "requests_id_mismatch" }
        guard authenticated, request.route.isEmpty else { return nil }
        return mayAct(for: request.vehicleID, sender: sender, vehicles: vehicles) ? nil : "requests_for_another_sender"
    }

    /// Whether an authenticated client `sender` may ask (or cancel) for `vehicle`: itself, or a
    /// vehicle of the run relaying for another over V2V.
    static func mayAct(for vehicle: String, sender: String, vehicles: Set<String>?) -> Bool {
        vehicle == sender || (vehicles.map { $0.contains(sender) && $0.contains(vehicle) } ?? false)
    }

    /// The vehicle of request id `<vehicle>/<n>`.
    static func vehicle(ofRequest id: String) -> String {
        id.lastIndex(of: "/").map { String(id[..<$0]) } ?? id
    }

    // MARK: - Serving

    private mutating func serve(_ request: InferenceRequest, from client: Client, now: Double) {
        let upstreamAlive = upstream.map { liveness.isAlive($0) } ?? false
        let work = ComputeWork(request)
        let decision = ServingDecision.decide(compute: &compute, nextHopAvailable: upstreamAlive, work: work,
                                              replyBy: request.deadline, now: now)
        let route = request.route + [id]
        switch decision {
        case .serve(let wakeAt, let duplicate):
            if duplicate { out.count("requests_deduplicated") }
            serving[AttemptKey(request.requestID, Int(request.attempt))] = Serving(client: client, route: route,
                                                                                  resultBytes: request.resultBytes,
                                                                                  replyBy: request.deadline)
            if let wakeAt, wakeAt > now { hold(.compute, until: wakeAt) } else { completeJobs(now: now) }
        case .forward:
            forward(request, route: route, client: client, now: now)
        case .rejected(let why), .failed(let why):
            let status: InferenceReply.Status = if case .rejected = decision { .rejected } else { .failed }
            sendReply(InferenceReply(requestID: request.requestID, attempt: request.attempt, status: status, servedBy: id,
                                     route: route, detail: why), to: client, now: now)
        }
    }

    /// Answers every attempt whose job the compute finished.
    mutating func completeJobs(now: Double) {
        guard let done = compute?.completions(now: now) else { return }
        for job in done {
            if let output = job.output, job.outputIsNew { out.record(.output(OutputRecord(output, of: job, servedBy: id))) }
            for attempt in job.attempts {
                let key = AttemptKey(job.requestID, attempt)
                guard let entry = serving.removeValue(forKey: key) else { continue }
                let reply = InferenceReply(requestID: job.requestID, attempt: UInt16(clamping: attempt),
                                           status: job.failure == nil ? .completed : .failed, servedBy: id, route: entry.route,
                                           queueWait: job.queueWait, computeTime: job.computeTime,
                                           resultBytes: job.resultBytes(declared: entry.resultBytes), detail: job.failure ?? "",
                                           answer: job.answer)
                sendReply(reply, to: entry.client, now: now)
            }
        }
    }

    /// Drops a withdrawn attempt: sent on if it was relayed; not answered if it is computing here
    /// (the compute gives its time back when no other attempt waits for the same job).
    private mutating func withdraw(_ cancel: InferenceCancel, now: Double) {
        if relays.withdrawn(requestID: cancel.requestID, attempt: Int(cancel.attempt)) != nil {
            out.count("cancels_forwarded")
            return transmitUpstream(cancel, virtualBytes: 0, now: now)
        }
        let key = AttemptKey(cancel.requestID, Int(cancel.attempt))
        guard serving.removeValue(forKey: key) != nil else {
            // Answered already, or never seen here (a forged or misdirected cancel).
            return out.count(answered[key] != nil ? "cancels_too_late" : "cancels_unknown")
        }
        guard compute?.cancel(requestID: key.requestID, attempt: key.attempt, now: now) == true else {
            return out.count("cancels_too_late")
        }
        out.count("cancels_applied")
    }

    /// Drops the attempts computing here whose reply-by has passed (the requester gave up on
    /// them): their compute is given back and no answer is sent. Also forgets old answers.
    private mutating func giveUpPastReplyBy(now: Double) {
        for (key, entry) in serving where entry.replyBy < now {
            serving.removeValue(forKey: key)
            _ = compute?.cancel(requestID: key.requestID, attempt: key.attempt, now: now)
            out.count("attempts_given_up_past_reply_by")
        }
        if now - lastForget >= 1 {
            lastForget = now
            answered = answered.filter { now - $0.value <= Self.answeredMemory }
        }
    }

    private mutating func forward(_ request: InferenceRequest, route: [String], client: Client, now: Double) {
        guard let upstream, upstreamLink != nil else { return }
        var next = request
        next.route = route
        relays.relayed(request, from: client, to: upstream)
        // A lost forward is not answered: the client's attempt times out and fails over.
        transmitUpstream(next, virtualBytes: Int(request.payloadBytes), now: now)
    }

    /// The next hop died: everything relayed to it fails back to the clients at once, so they can
    /// fail over without waiting for a time-out.
    private mutating func checkUpstream(now: Double) {
        for change in liveness.check(now: now) {
            out.record(.detection(DetectionRecord(observer: id, peer: change.peer, state: change.to.rawValue, at: now)))
            guard change.to == .dead else { continue }
            for entry in relays.hopLost(change.peer) {
                sendReply(RelayTable.refusal(entry, by: id, route: entry.request.route + [id], detail: "\(change.peer) unreachable"),
                          to: entry.client, now: now)
            }
        }
    }

    private mutating func beacon(now: Double) {
        guard let topic = Topic.beacon(of: role, id: id) else { return }
        let beacon = Beacon(role: role,
                            activeVehicles: UInt16(clamping: (cell ?? macro)?.activeVehicles(now: now) ?? 0),
                            queued: UInt16(clamping: compute?.waiting(now: now) ?? 0),
                            busySlots: UInt16(clamping: compute?.busy(now: now) ?? 0),
                            slots: UInt16(clamping: compute?.slots ?? 0))
        publish(Outbound(beacon, on: .bus(topic: topic), position: position))
    }

    /// Keeps the `compute_ms` counter equal to the compute's own accounting.
    private mutating func reportCompute() {
        guard let ms = compute?.accounting.computeMs, ms != reportedComputeMs else { return }
        reportedComputeMs = ms
        out.append(.setCounter("compute_ms", ms))
    }
}
