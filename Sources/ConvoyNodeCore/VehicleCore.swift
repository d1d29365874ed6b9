import ConvoyCore
import ConvoyFederated
import ConvoyLinks
import ConvoyMobility
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// What a vehicle decides: follows its trajectory, hears RSU beacons in range, beacons to its
/// neighbours over V2V, opens the work of its workload and fails it over (`RequestLedger`), and
/// reports every request and attempt. It may compute on board, serve or relay its neighbours'
/// requests, and shares shareable results over V2V (VehicleCore+V2V.swift). Pure: event and time
/// in, actions out (`NodeAction`).
public struct VehicleCore: Sendable {
    public enum Socket: Sendable {
        /// The broadcast bus: RSU and cloud beacons, V2V (including `direct/<id>/` messages).
        case broadcast
        /// The access ROUTER: replies from RSUs and the cloud, framed `[node id, envelope]`.
        case access
    }

    public enum Event: Sendable {
        case start
        case timer(UInt64)
        case frames(Socket, [[UInt8]])
        /// A call to the on-board real model server ended (the shell measured it).
        case modelCallEnded(ModelCallResult)
        /// The trainer process answered (federated fine-tuning).
        case trainer([[UInt8]])
        /// The run ends (SIGTERM): stop opening work, let the open requests finish for a while; a
        /// second `drain` stops at once.
        case drain
    }

    public enum Timers {
        /// Housekeeping every 100 ms (or beacon interval if shorter): position, handovers, subscriptions, records.
        public static let tick: UInt64 = 1
        public static let v2v: UInt64 = 3
        /// An exact wake-up for the next liveness transition, deadline or request arrival.
        public static let wake: UInt64 = 4
        static let firstOneShot: UInt64 = 1000
    }

    /// Something due at a one-shot timer.
    enum Due {
        /// A V2V message held back until its modelled delivery.
        case v2v(V2VMessage, Envelope, modelledAt: Double)
        /// An answer of the vehicle's own on-board compute that is known at once (refusals).
        case onboardAnswer(requestID: String, attempt: Int, ReplyOutcome)
        /// The on-board compute asked to be woken (a job due).
        case compute
        /// The federated fine-tuning participant asked to be woken.
        case fed
        /// Frames from a server sent ahead of the instant its link delivers them.
        case access([[UInt8]])
    }

    /// Who an on-board job's attempt answers to.
    enum OnboardClient {
        case own
        /// The on-board stage of one of the vehicle's split requests.
        case lowerStage
        /// A stage of a neighbour's model split across vehicles.
        case pipelineStage(InferenceRequest)
        case neighbour(requester: String, resultBytes: UInt32)
    }

    struct Neighbour {
        var position: Position
        var heardAt: Double
        var freeSlots: Int
        var uplinkRate: Double
    }

    /// Settings a vehicle takes from its run.
    public struct Setup: Sendable {
        public var id: String
        public var scenario: Scenario
        public var seed: UInt64
        /// Emulated seconds the run lasts.
        public var duration: Double
        public var trajectory: Trajectory
        /// This vehicle's arrivals from the scenario's arrivals file (if any).
        public var arrivals: [ArrivalFile.Arrival]
        /// The run's vehicles: V2V requests from anyone else are refused (nil: no check).
        public var vehicles: Set<String>?
        /// Emulated seconds by which the vehicle hands its V2V beacons to the bus ahead of their
        /// instant (0: at it). A beacon's instant, position and heading come from the trace, so it
        /// can leave early, stamped with its instant; receivers hold it until the V2V link delivers
        /// it, and the bus's own latency (up to the lead) no longer shows as link error. Vehicles
        /// hear each other's beacons at the same lead, and refuse ones stamped further ahead.
        public var beaconLead: Double

        public init(id: String, scenario: Scenario, seed: UInt64, duration: Double, trajectory: Trajectory,
                    arrivals: [ArrivalFile.Arrival] = [], vehicles: Set<String>? = nil, beaconLead: Double = 0) {
            self.vehicles = vehicles
            self.beaconLead = max(0, beaconLead)
            self.id = id
            self.scenario = scenario
            self.seed = seed
            self.duration = duration
            self.trajectory = trajectory
            self.arrivals = arrivals
        }
    }

    public let id: String
    let scenario: Scenario
    let map: MapSpec
    let trajectory: Trajectory
    /// The servers the access socket reaches (RSUs, and the cloud over the macro cell).
    public let reachable: Set<String>
    /// The run's vehicles (nil: not known): the only senders whose V2V requests are served.
    let vehicles: Set<String>?
    let topics: Topic
    /// `Setup.beaconLead`.
    let beaconLead: Double
    /// The instant of the next V2V beacon.
    var nextBeaconAt = 0.0
    let policy: any PathPolicy
    var rng: SeededGenerator
    let seed: UInt64
    /// Each task's prompt draws (`prompts/<vehicle>/<task>`), independent of every other draw.
    var promptStreams: [String: SeededGenerator] = [:]
    var workload: any VehicleWorkload
    let tasks: WorkloadSpec
    /// Seconds after its last sample at which the vehicle stops issuing work.
    let lastSampleTime: Double
    var liveness: LivenessTracker
    public internal(set) var ledger = RequestLedger()
    var rsuLoad: [String: Beacon] = [:]
    /// The macro cell's load, from the cloud's beacons (heard within the macro cell).
    var macroLoad: Beacon?
    var openRecords: [String: RequestRecord] = [:]
    var requestSequence = 0
    var subscribed: Set<String> = []
    /// Whether the vehicle has subscribed to its own direct topic (and the cloud's beacons).
    var subscribedToDirect = false
    var due: [UInt64: Due] = [:]
    var nextTimer = Timers.firstOneShot
    var armedWake = Double.infinity
    /// Where the vehicle was when its subscriptions were last computed.
    var subscribedAt: Position?
    /// When the tick next hands the batched records to the recorder.
    var nextFlush = -Double.infinity
    /// On-board compute (scenario `onboard:`), for the vehicle's own requests and its neighbours'.
    public internal(set) var onboard: (any ComputeBackend)?
    var onboardClients: [AttemptKey: OnboardClient] = [:]
    /// Split requests whose on-board stage is computing (not yet in the ledger).
    var lowerStages: [String: LowerStage] = [:]
    /// Requests decomposed into experts' subtasks, and each open subtask's parent and expert.
    var decompositions: [String: Decomposition] = [:]
    var subtaskOf: [String: (parent: String, expert: ExpertSpec)] = [:]
    /// What an attempt in flight went through, kept for its final record (a pipeline's chain).
    var attemptRoutes: [AttemptKey: String] = [:]
    /// Neighbours' requests relayed to an RSU.
    var relays = RelayTable<String>()
    var neighbours: [String: Neighbour] = [:]
    /// The neighbours heard (their latest beacon is in `neighbours`), by id.
    public var neighbourIDs: [String] { neighbours.keys.sorted() }
    /// Neighbours' beacons the V2V link delivers later, in order of their instants: applied at the
    /// start of the first event at or after it (see `v2vReceived`).
    var heldBeacons: [HeldBeacon] = []
    /// V2V beacons received so far (one in `measuredBeaconEvery` gets a timer of its own).
    var beaconsReceived = 0
    /// Shared results heard from neighbours, by key.
    var sharedResults: [String: SharedResult] = [:]
    /// Expected compute behind each RSU and the cloud, per task (`MapSpec.serviceTimes`).
    var serviceTimes: [String: [String: Double]] = [:]
    var servingCell = ServingCell()
    var reportedComputeMs = 0
    /// Set when the run ends: no new requests; open ones may still complete until this time.
    var drainUntil: Double?
    /// This vehicle's answer to the scenario's federated analytics query, until acknowledged.
    var analyticsState: AnalyticsParticipation?
    /// This vehicle's part in federated fine-tuning (scenario `fedtune:` lists it).
    public internal(set) var fed: FedParticipant?
    public private(set) var finished = false
    var out = ActionList()

    public init(_ setup: Setup, workload: (any VehicleWorkload)? = nil) {
        id = setup.id
        scenario = setup.scenario
        map = setup.scenario.map
        trajectory = setup.trajectory
        var targets = Set(map.rsus.map(\.id))
        if map.macro != nil { targets.insert(map.cloud.id) }
        reachable = targets
        vehicles = setup.vehicles
        topics = Topic(v2vRange: map.links.v2v.rangeM)
        beaconLead = setup.beaconLead
        policy = PathPolicies.named(scenario.policy) ?? BestRatePolicy()
        tasks = scenario.workload
        rng = SeededGenerator(seed: setup.seed, label: "\(id)#1")
        seed = setup.seed
        liveness = LivenessTracker(config: scenario.liveness)
        onboard = scenario.onboard.map { $0.makeBackend() }
        lastSampleTime = min(trajectory.end, setup.duration)
        if let ft = scenario.fedtune, ft.clients[id] != nil {
            fed = FedParticipant(vehicle: id, trainSeconds: ft.trainSeconds, transferTimeout: ft.transferTimeout, chunkBytes: ft.chunkBytes)
        }
        if let send = scenario.analytics?.sendTime(firstSample: trajectory.start, lastSample: lastSampleTime) {
            analyticsState = AnalyticsParticipation(nextTry: send)
        }
        // The first request goes out once RSU beacons had a chance to arrive.
        let firstRequest = trajectory.start + 3 * scenario.liveness.beaconInterval
        self.workload = workload ?? InferenceArrivals(spec: scenario.workload, vehicle: id, seed: setup.seed, firstRequest: firstRequest,
                                                      window: trajectory.start..<max(trajectory.start, lastSampleTime),
                                                      listed: setup.arrivals)
    }

    /// Where the vehicle is at `time`: interpolated, holding the nearest sample outside the trace.
    public func position(at time: Double) -> Position {
        if let p = trajectory.position(at: time) { return p }
        if time <= trajectory.start { return trajectory.samples.first!.position }
        if time >= trajectory.end { return trajectory.samples.last!.position }
        return trajectory.samples.last { $0.time <= time }!.position  // inside a gap
    }

    public mutating func handle(_ event: Event, now: Double) -> [NodeAction] {
        guard !finished else { return [] }
        applyHeldBeacons(upTo: now)
        switch event {
        case .start:
            if let arrivals = workload as? InferenceArrivals, arrivals.skipped > 0 { out.count("arrivals_outside_trace", by: arrivals.skipped) }
            out.arm(Timers.tick, at: now)
            nextBeaconAt = now + rng.unit()
            armBeacon(now: now)
            subscribe(at: now)
        case .timer(let timer):
            fired(timer, now: now)
        case .frames(.broadcast, let frames):
            broadcastReceived(frames, now: now)
        case .frames(.access, let frames):
            accessReceived(frames, now: now)
        case .modelCallEnded(let result):
            if let due = onboard?.finished(result, now: now) {
                if due > now { schedule(.compute, at: due) } else { completeOnboardJobs(now: now) }
            }
        case .trainer(let frames):
            trainerReplied(frames, now: now)
        case .drain:
            if drainUntil == nil { drainUntil = now + tasks.drainTime } else { finish(.runEnded, now: now) }  // a second signal: stop now
        }
        if !finished { armWake() }
        reportCompute()
        if var backend = onboard {
            for command in backend.takeCommands() { out.append(.compute(command)) }
            onboard = backend
        }
        return out.take()
    }

    /// Arms a one-shot wake-up at the earliest instant something is due (a peer turning suspect or
    /// dead, an attempt's reply-by or a deadline, the next request), so the vehicle needs no fast
    /// polling tick and still acts on time.
    private mutating func armWake() {
        let next = nextWake
        guard next.isFinite, next < armedWake - 1e-4 else { return }
        armedWake = next
        // Liveness thresholds are strict (silent longer than…): wake just after them.
        out.arm(Timers.wake, at: next + 1e-4)
    }

    /// The earliest instant something is due.
    private var nextWake: Double {
        let next = min(liveness.nextTransition ?? .infinity, ledger.nextDeadline ?? .infinity, nextLowerStageDeadline, analyticsWake)
        // Arrivals after the last sample never open: waking for them would spin.
        return drainUntil == nil && workload.nextAt < lastSampleTime ? min(next, workload.nextAt) : next
    }

    /// The earliest deadline of a request whose on-board stage is still computing.
    private var nextLowerStageDeadline: Double {
        lowerStages.keys.compactMap { openRecords[$0]?.deadlineAt }.min() ?? .infinity
    }

    /// Ends every open request with `reason`, flushes the records and stops.
    mutating func finish(_ reason: EndReason, now: Double) {
        guard !finished else { return }
        apply(ledger.closeAll(reason: reason.rawValue, now: now), now: now)
        for requestID in lowerStages.keys.sorted() { closeUnsent(requestID, status: .failed, reason: reason.rawValue, now: now) }
        finished = true
        out.append(.flushRecords)
        out.append(.stop)
    }

    /// Seconds between two record batches sent to the recorder (a batch is one JSON message, and a
    /// vehicle's records are few: a tick's worth would cost the recorder and the vehicle more than
    /// the records themselves). Everything is flushed when the vehicle stops.
    static let flushInterval = 1.0
    /// Metres a vehicle moves before its subscriptions are recomputed (well within `Topic.v2vMargin`
    /// and `Topic.subscriptionMargin`).
    static let resubscribeDistance = 5.0

    private mutating func fired(_ timer: UInt64, now: Double) {
        switch timer {
        case Timers.tick:
            tick(now: now)
            guard !finished else { return }
            if now >= nextFlush {
                out.append(.flushRecords)
                nextFlush = now + Self.flushInterval
            }
            out.arm(Timers.tick, at: now + min(0.1, scenario.liveness.beaconInterval))
        case Timers.wake:
            armedWake = .infinity
            // What the wake was armed for may have moved later since (an RSU beacon heard again
            // pushes its liveness transition back): then the wake is only re-armed.
            if nextWake <= now { tick(now: now) }
        case Timers.v2v:
            // The run began draining, or the trace ended, since the beacon was armed ahead of its instant.
            if now < nextBeaconAt && !sendsAhead(nextBeaconAt) { return out.arm(Timers.v2v, at: nextBeaconAt) }
            let instant = max(nextBeaconAt, now)
            v2vBeacon(at: instant, now: now)
            nextBeaconAt = instant + 1
            armBeacon(now: now)
        default:
            switch due.removeValue(forKey: timer) {
            case .v2v(let message, let envelope, let modelledAt)?:
                v2vArrived(message, envelope, modelledAt: modelledAt, now: now)
            case .onboardAnswer(let requestID, let attempt, let outcome)?:
                onboardClients[AttemptKey(requestID, attempt)] = nil
                apply(ledger.replied(requestID: requestID, attempt: attempt, outcome: outcome, now: now, candidates: candidates(now: now)),
                      now: now)
            case .compute?:
                completeOnboardJobs(now: now)
            case .fed?:
                fedHandle(.tick(via: servingRSU(now: now)), now: now)
            case .access(let frames)?:
                accessReceived(frames, now: now)
            case nil:
                break
            }
        }
    }

    mutating func schedule(_ item: Due, at time: Double) {
        nextTimer += 1
        due[nextTimer] = item
        out.arm(nextTimer, at: time)
    }

    private mutating func tick(now: Double) {
        updateSubscriptions(now: now)
        var paths = pathContext(now: now)
        recordHandover(now: now)
        // RSUs that fell silent: dead if we are still in their range, otherwise just out of reach.
        let changes = liveness.check(now: now)
        for change in changes {
            guard let rsu = map.rsu(change.peer) else { continue }
            if inRange(of: rsu, at: now) {
                out.record(.detection(DetectionRecord(observer: id, peer: change.peer, state: change.to.rawValue, at: now)))
            } else {
                liveness.forget(change.peer)
            }
        }
        if !changes.isEmpty {
            paths = pathContext(now: now)
            for change in changes where change.to == .dead && liveness.state(of: change.peer) != nil {
                apply(ledger.targetLost(change.peer, outcome: .targetDead, now: now, candidates: candidates(paths, now: now)), now: now)
                relayHopLost(change.peer, now: now)
            }
        }
        // Attempts to RSUs we drove out of, and to neighbours gone silent or out of V2V range.
        let here = position(at: now)
        for target in ledger.targetsInFlight.sorted() where target != id {
            let gone = if let rsu = map.rsu(target) { !inRange(of: rsu, at: now) } else {
                map.role(of: target) == nil && !neighbourReachable(target, from: here, now: now)
            }
            if gone { apply(ledger.targetLost(target, outcome: .outOfRange, now: now, candidates: candidates(paths, now: now)), now: now) }
        }
        while now >= workload.nextAt && now < lastSampleTime && drainUntil == nil {
            openRequest(workload.next(), now: now, paths: paths)
        }
        apply(ledger.tick(now: now, candidates: candidates(paths, now: now)), now: now)
        for (requestID, _) in lowerStages where (openRecords[requestID]?.deadlineAt ?? now) <= now {
            closeUnsent(requestID, status: .expired, reason: AttemptOutcome.deadline.rawValue, now: now)
        }
        if fed != nil { fedHandle(.tick(via: servingRSU(now: now)), now: now) }
        if analyticsState != nil { analyticsTick(now: now) }
        if let reason = Self.endReason(now: now, drainUntil: drainUntil, openRequests: ledger.openCount + lowerStages.count,
                                       lastSample: lastSampleTime,
                                       longestDeadline: tasks.longestDeadline) {
            finish(reason, now: now)
        }
    }

    /// When a vehicle stops: the run ended and its open requests are done or out of drain time; or
    /// it passed its last sample with nothing open, or so long ago that nothing can still be open.
    public static func endReason(now: Double, drainUntil: Double?, openRequests: Int, lastSample: Double,
                                 longestDeadline: Double) -> EndReason? {
        if let drainUntil, openRequests == 0 || now >= drainUntil { return .runEnded }
        if now >= lastSample && openRequests == 0 { return .vehicleLeft }
        if now >= lastSample + longestDeadline + 1 { return .vehicleLeft }
        return nil
    }

    /// Records attach, detach and handover of the serving cell: its RSU (`servingRSU`), else the macro cell.
    private mutating func recordHandover(now: Double) {
        let here = position(at: now)
        let macroCell = map.macro.flatMap { here.distance(to: $0.position) <= $0.radius ? $0.id : nil }
        guard let change = servingCell.update(to: servingRSU(now: now) ?? macroCell) else { return }
        out.record(.handover(HandoverRecord(vehicleID: id, at: now, event: change.change.rawValue, fromCell: change.from,
                                            toCell: servingCell.cell, x: here.x, y: here.y)))
    }

    /// The subscriptions the vehicle needs when it starts at `start`: its own direct topic, the
    /// cloud's beacons, and the topics around where it will be. The shell asks for them as soon as
    /// the process is up, before the run's clock starts: the bus passes each new topic on to every
    /// publisher, so the subscriptions of a whole fleet made at t = 0 took seconds to take effect
    /// (V2V requests of the first second went to neighbours that never heard them). `.start`
    /// subscribes to what is still missing.
    public mutating func initialSubscriptions(at start: Double) -> [NodeAction] {
        subscribe(at: start)
        return out.take()
    }

    private mutating func subscribe(at now: Double) {
        if !subscribedToDirect {
            subscribedToDirect = true
            out.append(.subscribe(topic: Topic.direct(id)))
            if map.macro != nil { out.append(.subscribe(topic: Topic.cloudBeacon)) }
        }
        updateSubscriptions(now: now)
    }

    /// Subscribes to the beacons of the RSUs around the vehicle and to the V2V topics of the grid
    /// cells within reach of it; unsubscribes from those it moved away from. Recomputed once the
    /// vehicle has moved `resubscribeDistance` (a standing car costs nothing).
    private mutating func updateSubscriptions(now: Double) {
        let here = position(at: now)
        if let last = subscribedAt, here.distance(to: last) < Self.resubscribeDistance { return }
        subscribedAt = here
        let rsus = map.rsus.filter { here.distance(to: $0.position) <= $0.radius + Topic.subscriptionMargin }
        let wanted = topics.v2vAround(here).union(rsus.map { Topic.rsuBeacon($0.id) })
        guard wanted != subscribed else { return }
        for topic in subscribed.subtracting(wanted).sorted() { out.append(.unsubscribe(topic: topic)) }
        for topic in wanted.subtracting(subscribed).sorted() { out.append(.subscribe(topic: topic)) }
        subscribed = wanted
    }

    /// Keeps the `compute_ms` counter equal to the on-board compute's own accounting.
    private mutating func reportCompute() {
        guard let ms = onboard?.accounting.computeMs, ms != reportedComputeMs else { return }
        reportedComputeMs = ms
        out.append(.setCounter("compute_ms", ms))
    }
}
