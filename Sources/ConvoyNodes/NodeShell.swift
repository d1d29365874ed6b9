import CProcess
import ConvoyCore
import ConvoyLinks
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// Topics on the broadcast bus (PUB/SUB prefixes).
///
/// A vehicle only receives the broadcasts it could hear: each RSU beacons on its own topic, and a
/// vehicle subscribes to the RSUs whose coverage it is in (with a margin, so the subscription is
/// in place before it enters); V2V beacons go on the topic of the sender's grid cell, and a
/// vehicle subscribes to the 3 × 3 cells around it. The cell is as large as the V2V range, so
/// every sender in range is in one of those nine cells.
public struct Topic: Sendable {
    public static let edgeBeacon = "beacon/edge"
    public static let cloudBeacon = "beacon/cloud"
    /// How far outside an RSU's radius a vehicle already listens to it, metres.
    public static let subscriptionMargin = 50.0

    /// Side of a V2V grid cell, metres.
    public let cellSize: Double

    public init(map: MapSpec) {
        cellSize = max(map.links.v2v.rangeM, 1).rounded(.up)
    }

    public static func rsuBeacon(_ rsu: String) -> String { "beacon/rsu/\(rsu)/" }

    /// Requests, replies and cancels to one vehicle over V2V.
    public static func direct(_ vehicle: String) -> String { "direct/\(vehicle)/" }

    public func cell(of p: Position) -> (x: Int, y: Int) {
        (Int((p.x / cellSize).rounded(.down)), Int((p.y / cellSize).rounded(.down)))
    }

    public func v2v(at p: Position) -> String { Self.v2v(cell(of: p)) }

    /// The V2V topics of the 3 × 3 cells around `p`.
    public func v2vAround(_ p: Position) -> Set<String> {
        let c = cell(of: p)
        var topics: Set<String> = []
        for dx in -1...1 {
            for dy in -1...1 { topics.insert(Self.v2v((c.x + dx, c.y + dy))) }
        }
        return topics
    }

    /// The beacon topics of the RSUs a vehicle at `p` should listen to.
    public static func rsuBeacons(near p: Position, in map: MapSpec) -> Set<String> {
        Set(map.rsus.filter { p.distance(to: $0.position) <= $0.radius + subscriptionMargin }.map { rsuBeacon($0.id) })
    }

    private static func v2v(_ c: (x: Int, y: Int)) -> String { "v2v/\(c.x)/\(c.y)/" }
}

/// The parts every node process shares: identity, clock, envelopes, record batching and
/// counters. Owned by one node actor; not thread-safe by itself.
final class NodeShell {
    let config: RunConfig
    let id: String
    let role: NodeRole
    let incarnation: UInt32
    let clock: EmulationClock
    let loop: EventLoop
    let recorderSocket: Int
    var rng: SeededGenerator
    private var sequence: UInt64 = 0
    private var batch = RecordBatch()
    private(set) var counters: [String: Int] = [:]
    private var countersDirty = false

    /// Timer ids below this are the node's periodic timers; one-shot timers count up from it.
    static let firstOneShotTimer: UInt64 = 1000
    private var nextTimer = NodeShell.firstOneShotTimer

    init(config: RunConfig, id: String, role: NodeRole, incarnation: UInt32, loop: EventLoop, recorderSocket: Int) {
        self.config = config
        self.id = id
        self.role = role
        self.incarnation = incarnation
        self.clock = config.clock
        self.loop = loop
        self.recorderSocket = recorderSocket
        rng = SeededGenerator(seed: config.seed, label: "\(id)#\(incarnation)")
    }

    var now: Double { clock.now() }

    func envelope<P: WirePayload>(_ payload: P, position: Position? = nil) -> [UInt8] {
        envelope(P.kind, payload.encoded(), position: position)
    }

    func envelope(_ kind: MessageKind, _ payload: [UInt8], position: Position?, deliverAt: Double? = nil) -> [UInt8] {
        sequence += 1
        return Envelope(kind: kind, sender: id, incarnation: incarnation, sequence: sequence, sentAt: now,
                        position: position, deliverAt: deliverAt, payload: payload).encoded()
    }

    /// Puts `payload` through an emulated link and sends it on `socket` at the delivery instant
    /// (with `extraFrames` before the envelope, e.g. a ROUTER's routing id). `virtualBytes` is the
    /// size the message stands for beyond its frame (a request's input, a reply's result).
    /// The outcome is metered; lost and out-of-range messages are not sent.
    func transmit<P: WirePayload>(_ payload: P, virtualBytes: Int, position: Position?, link: String, on socket: Int,
                                  before extraFrames: [[UInt8]] = [], through model: (Int) -> LinkOutcome) {
        let body = payload.encoded()
        let bytes = Envelope.overhead(sender: id, position: position != nil, deliverAt: true) + body.count + virtualBytes
        let outcome = degrade(model(bytes))
        meter(link, P.kind, outcome)
        guard case .deliver(let at) = outcome else { return }
        send(extraFrames + [envelope(P.kind, body, position: position, deliverAt: at)], on: socket, at: at)
    }

    // MARK: - Link metering

    private var linkStats: [String: LinkStatRecord] = [:]
    private var dirtyLinks: Set<String> = []
    private var samplesSeen: [String: Int] = [:]

    /// Counts a message offered to `link` and what became of it.
    func meter(_ link: String, _ kind: MessageKind, _ outcome: LinkOutcome) {
        let key = "\(link)|\(kind.name)"
        var stat = linkStats[key] ?? LinkStatRecord(nodeID: id, link: link, kind: kind.name)
        stat.sent += 1
        switch outcome {
        case .deliver: stat.delivered += 1
        case .lost: stat.lost += 1
        case .outOfRange: stat.outOfRange += 1
        }
        linkStats[key] = stat
        dirtyLinks.insert(key)
    }

    /// Records (a sample of) deliveries: requests and replies always, broadcasts one in 20.
    func observeDelivery(_ link: String, _ kind: MessageKind, sentAt: Double, modelledAt: Double, actualAt: Double) {
        let key = "\(link)|\(kind.name)"
        let seen = samplesSeen[key, default: 0]
        samplesSeen[key] = seen + 1
        let every = kind == .request || kind == .reply ? 1 : 20
        guard seen % every == 0 else { return }
        batch.linkSamples.append(LinkSampleRecord(nodeID: id, link: link, kind: kind.name, sentAt: sentAt,
                                                  modelledAt: modelledAt, actualAt: actualAt))
    }

    /// A message that arrived with its modelled delivery time: records how late it really was.
    func observeArrival(_ envelope: Envelope, link: String) {
        guard let modelled = envelope.deliverAt else { return }
        observeDelivery(link, envelope.kind, sentAt: envelope.sentAt, modelledAt: modelled, actualAt: now)
    }

    /// Decodes a frame; malformed frames are counted by reason and dropped (nil).
    func decode(_ frame: [UInt8]) -> Envelope? {
        do {
            return try Envelope(decoding: frame)
        } catch {
            count(error.counterName)
            return nil
        }
    }

    func decodePayload<P: WirePayload>(_ type: P.Type, _ envelope: Envelope) -> P? {
        guard envelope.kind == P.kind else { return nil }
        do {
            return try P.decode(envelope.payload)
        } catch {
            count(error.counterName)
            return nil
        }
    }

    func count(_ name: String, by n: Int = 1) {
        counters[name, default: 0] += n
        countersDirty = true
    }

    func setCounter(_ name: String, _ value: Int) {
        guard counters[name] != value else { return }
        counters[name] = value
        countersDirty = true
    }

    func record(_ request: RequestRecord) { batch.requests.append(request) }
    func record(_ attempt: AttemptRecord) { batch.attempts.append(attempt) }
    func record(_ detection: DetectionRecord) { batch.detections.append(detection) }
    func record(_ handover: HandoverRecord) { batch.handovers.append(handover) }

    /// A timer id for a one-shot timer at emulated time `at`.
    func scheduleOneShot(at time: Double) -> UInt64 {
        nextTimer += 1
        loop.schedule(timer: nextTimer, atWall: clock.wall(atEmulated: time))
        return nextTimer
    }

    func schedulePeriodic(_ id: UInt64, at time: Double) {
        loop.schedule(timer: id, atWall: clock.wall(atEmulated: time))
    }

    // MARK: - Imposed faults (partition, degrade)

    /// The partition or degradation the launcher currently imposes on this node.
    private(set) var imposed: ImposedFault?

    /// Re-reads the imposed fault (on SIGUSR1, and at start: a restarted node keeps it).
    func reloadImposedFault() {
        imposed = ImposedFault.read(path: config.imposedFaultPath(of: id))
    }

    /// A partitioned node sends and receives nothing (its records still reach the launcher).
    var partitioned: Bool { imposed?.mode == .partition }

    /// The outcome of a link, made worse by an imposed degradation: lost with its extra loss
    /// probability, else delivered its extra latency later.
    func degrade(_ outcome: LinkOutcome) -> LinkOutcome {
        guard let d = imposed?.degradation, imposed?.mode == .degrade, case .deliver(let at) = outcome else { return outcome }
        if rng.unit() < d.loss { return .lost }
        return .deliver(at: at + d.latency)
    }

    /// Whether an arriving message gets through an imposed partition (counted when it does not).
    func admitsInbound() -> Bool {
        if partitioned { count("partition_dropped_in") }
        return !partitioned
    }

    /// Sends `frames` on `socket` at emulated time `at` (now if in the past).
    func send(_ frames: [[UInt8]], on socket: Int, at time: Double? = nil) {
        if partitioned && socket != recorderSocket { return count("partition_dropped_out") }
        let wall = time.map { clock.wall(atEmulated: $0) }
        loop.send(frames, on: socket, atWall: wall.flatMap { $0 > EmulationClock.wallNow() ? $0 : nil })
    }

    /// Broadcasts `payload` on `topic`. A degraded node's broadcasts suffer its extra loss (not its
    /// extra latency); a partitioned node's are not sent.
    func publish<P: WirePayload>(_ topic: String, _ payload: P, position: Position?, on socket: Int) {
        if case .lost = degrade(.deliver(at: 0)) { return count("degrade_dropped_broadcast") }
        send([Array(topic.utf8), envelope(payload, position: position)], on: socket)
    }

    /// Sends the pending records (and changed counters) to the recorder.
    func flushRecords() {
        if countersDirty {
            let stats = loop.stats
            counters["transport_send_dropped"] = stats.sendDropped
            batch.counters = counters.sorted { $0.key < $1.key }.map { CounterRecord(nodeID: id, name: $0.key, value: $0.value) }
            countersDirty = false
        }
        if !dirtyLinks.isEmpty {
            batch.linkStats = dirtyLinks.sorted().compactMap { linkStats[$0] }
            dirtyLinks.removeAll()
        }
        guard !batch.isEmpty else { return }
        guard let json = try? JSONEncoder().encode(batch) else { return }
        sequence += 1
        let frame = Envelope(kind: .record, sender: id, incarnation: incarnation, sequence: sequence, sentAt: now,
                             payload: Array(json)).encoded()
        loop.send([frame], on: recorderSocket)
        batch = RecordBatch()
    }
}

/// Makes the process die with its launcher (no orphans even if the launcher is SIGKILLed) and
/// turns SIGTERM/SIGINT into a call of `handler` on the main queue.
public enum ProcessSignals {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    public static func dieWithParent(expectedParent: Int32) {
        _ = convoy_set_parent_death_signal(SIGKILL)
        if getppid() != expectedParent { exit(1) }  // the parent died before prctl
    }

    /// Calls `handler` once per SIGTERM/SIGINT, on the main dispatch queue.
    public static func onTermination(_ handler: @escaping @Sendable (Int32) -> Void) {
        on([SIGTERM, SIGINT], handler)
    }

    /// Calls `handler` once per delivery of any of `signals`, on the main dispatch queue.
    public static func on(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { handler(sig) }
            source.resume()
            sources.append(source)
        }
    }
}
