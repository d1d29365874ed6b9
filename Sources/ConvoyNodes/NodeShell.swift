import ConvoyCore
import ConvoyLinks
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyRuntime
import ConvoyTransport
import ConvoyWire
import Foundation

/// Carries out a node core's actions: the one place a node touches its sockets, its clock and the
/// recorder. Owns the envelope sequence, the record batch, counters and link meters. Owned by one
/// node actor; not thread-safe by itself.
final class NodeShell {
    /// Which socket (index in the event loop's list) each channel uses; nil: the node has none.
    struct Sockets {
        var bus: Int
        var recorder: Int
        var broadcast: Int?
        var access: Int?
        var clients: Int?
        var upstream: Int?
        /// A DEALER to the run's trainer process (federated fine-tuning).
        var trainer: Int?
    }

    let config: RunConfig
    let id: String
    let incarnation: UInt32
    let clock: EmulationClock
    let loop: EventLoop
    let sockets: Sockets
    /// The node's ZAP handler (a server node under CurveZMQ), for the refusal counters.
    let zap: ZAPHandler?
    private var sequence: UInt64 = 0
    private var batch = RecordBatch()
    private var counters: [String: Int] = [:]
    private var countersDirty = false
    /// A link and a message kind (no string built per message).
    private struct LinkKey: Hashable {
        var link: LinkName
        var kind: MessageKind
    }
    private var linkStats: [LinkKey: LinkStatRecord] = [:]
    private var dirtyLinks: Set<LinkKey> = []
    private var samplesSeen: [LinkKey: Int] = [:]
    private(set) var stopped = false
    /// Writes state files (`persist`) in order, off the I/O thread.
    private let writer = DispatchQueue(label: "convoy-state-writer")
    /// Carries out the compute backend's commands (a server node with a real model server).
    var onCompute: ((ComputeCommand) -> Void)?

    init(config: RunConfig, id: String, incarnation: UInt32, loop: EventLoop, zap: ZAPHandler?, sockets: Sockets) {
        self.zap = zap
        self.config = config
        self.id = id
        self.incarnation = incarnation
        self.clock = config.clock
        self.loop = loop
        self.sockets = sockets
    }

    var now: Double { clock.now() }

    /// The timer that starts a node at the run's epoch (never one of a core's timers).
    static let startTimer = UInt64.max

    /// Calls `start` now if the run's clock has started, else arms `startTimer` for its epoch: the
    /// processes of the initial fleet are spawned before it, and their nodes begin together at t = 0.
    func startAtEpoch(_ start: () -> Void) {
        if now >= 0 { epochReached(start) } else { loop.schedule(timer: Self.startTimer, atWall: clock.epoch) }
    }

    /// The run's clock has started: the node's I/O thread goes real-time (`RunConfig.realtime`;
    /// libzmq's has been since the context started) and the node starts. Call it on the I/O thread.
    func epochReached(_ start: () -> Void) {
        if config.realtime == true && !RealtimeScheduling.setCallingThread(true) { count("realtime_refused") }
        start()
    }

    /// Back to normal scheduling before the node stops or drains: hundreds of nodes stopping at
    /// once must share the cores fairly with the servers still answering. Call it on the I/O thread.
    func leaveRealtime() {
        if config.realtime == true { RealtimeScheduling.leave() }
    }

    /// Carries out `actions` in order.
    func perform(_ actions: [NodeAction]) {
        for action in actions {
            switch action {
            case .send(let message): send(message)
            case .arm(let timer, let at): loop.schedule(timer: timer, atWall: clock.wall(atEmulated: at))
            case .record(let record): add(record)
            case .count(let name, let n): count(name, n)
            case .setCounter(let name, let value): set(name, value)
            case .meter(let link, let kind, let outcome, let bytes): meter(link, kind, outcome, bytes: bytes)
            case .observe(let link, let kind, let sentAt, let modelledAt, let actualAt):
                observe(link, kind, sentAt: sentAt, modelledAt: modelledAt, actualAt: actualAt)
            case .subscribe(let topic): if let s = sockets.broadcast { loop.subscribe(s, prefix: Array(topic.utf8)) }
            case .unsubscribe(let topic): if let s = sockets.broadcast { loop.unsubscribe(s, prefix: Array(topic.utf8)) }
            case .compute(let command):
                if let onCompute { onCompute(command) } else { count("compute_commands_without_backend") }
            case .trainer(let request):
                if let s = sockets.trainer { loop.send(request.frames, on: s) } else { count("trainer_requests_without_socket") }
            case .persist(let name, let bytes): persist(name, bytes)
            case .flushRecords: flushRecords()
            case .stop:
                leaveRealtime()
                countersDirty = true  // the last counts, whatever changed since
                flushRecords()
                stopped = true
                Task { [loop] in await loop.stop() }
            }
        }
    }

    private func send(_ message: Outbound) {
        let envelope = Envelope(kind: message.kind, sender: id, incarnation: incarnation, sequence: nextSequence(),
                                sentAt: message.sentAt ?? now, position: message.position, deliverAt: message.deliverAt, payload: message.body).encoded()
        let frames: [[UInt8]]
        let socket: Int?
        switch message.channel {
        case .bus(let topic): (socket, frames) = (sockets.bus, [Array(topic.utf8), envelope])
        case .access(let node): (socket, frames) = (sockets.access, [Array(node.utf8), envelope])
        case .client(let routingID): (socket, frames) = (sockets.clients, [routingID, envelope])
        case .upstream: (socket, frames) = (sockets.upstream, [envelope])
        }
        guard let socket else { return count("sends_without_socket") }
        let wall = message.at.map { clock.wall(atEmulated: $0) }
        loop.send(frames, on: socket, atWall: wall.flatMap { $0 > EmulationClock.wallNow() ? $0 : nil })
    }

    /// Writes a state file off the I/O thread, in order, atomically (a crash leaves the old or the
    /// new file, never half of one).
    private func persist(_ name: String, _ bytes: [UInt8]) {
        let path = config.statePath(of: id, name: name)
        writer.async {
            let url = URL(fileURLWithPath: path)
            do {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes).write(to: url, options: .atomic)
            } catch {
                FileHandle.standardError.write(Data("cannot write \(path): \(error)\n".utf8))
            }
        }
    }

    private func nextSequence() -> UInt64 {
        sequence += 1
        return sequence
    }

    static let latenessBuckets = [(0.001, "timers_late_over_1ms"), (0.01, "timers_late_over_10ms"), (0.1, "timers_late_over_100ms")]

    /// A timer fired: how late (emulated time) the node got to it, against the run's 1 ms
    /// fidelity bound (`timers_fired`, `timers_late_over_1ms`/`10ms`/`100ms`, `timer_late_max_us`).
    func timerFired(dueWall: Double) {
        let late = max(0, EmulationClock.wallNow() - dueWall) * clock.speed
        // The count alone rides with the next counter change (not a flush of its own every tick).
        counters["timers_fired", default: 0] += 1
        for (threshold, name) in Self.latenessBuckets where late > threshold {
            counters[name, default: 0] += 1
            countersDirty = true
        }
        let us = Int(late * 1e6)
        if us > counters["timer_late_max_us", default: 0] {
            counters["timer_late_max_us"] = us
            countersDirty = true
        }
    }

    private func set(_ name: String, _ value: Int) {
        guard counters[name] != value else { return }
        counters[name] = value
        countersDirty = true
    }

    private func count(_ name: String, _ n: Int = 1) {
        counters[name, default: 0] += n
        countersDirty = true
    }

    private func add(_ record: NodeRecord) {
        switch record {
        case .request(let r): batch.requests.append(r)
        case .attempt(let r): batch.attempts.append(r)
        case .detection(let r): batch.detections.append(r)
        case .handover(let r): batch.handovers.append(r)
        case .output(let r): batch.outputs.append(r)
        case .fedRound(let r): batch.fedRounds.append(r)
        case .fedUpdate(let r): batch.fedUpdates.append(r)
        case .fedEval(let r): batch.fedEvals.append(r)
        case .analyticsCell(let r): batch.analyticsCells.append(r)
        }
    }

    /// Counts a message offered to `link` and what became of it.
    private func meter(_ link: LinkName, _ kind: MessageKind, _ outcome: LinkOutcome, bytes: Int) {
        let key = LinkKey(link: link, kind: kind)
        var stat = linkStats[key] ?? LinkStatRecord(nodeID: id, link: link.rawValue, kind: kind.name)
        stat.sent += 1
        stat.bytes += bytes
        switch outcome {
        case .deliver: stat.delivered += 1
        case .lost: stat.lost += 1
        case .outOfRange: stat.outOfRange += 1
        }
        linkStats[key] = stat
        dirtyLinks.insert(key)
    }

    /// Records (a sample of) deliveries: requests and replies always, V2V beacons always (the
    /// vehicle core observes one in `VehicleCore.measuredBeaconEvery`), other broadcasts one in 20.
    private func observe(_ link: LinkName, _ kind: MessageKind, sentAt: Double, modelledAt: Double, actualAt: Double) {
        let key = LinkKey(link: link, kind: kind)
        let seen = samplesSeen[key, default: 0]
        samplesSeen[key] = seen + 1
        let every = kind == .request || kind == .reply || kind == .v2vBeacon ? 1 : 20
        guard seen % every == 0 else { return }
        batch.linkSamples.append(LinkSampleRecord(nodeID: id, link: link.rawValue, kind: kind.name, sentAt: sentAt,
                                                  modelledAt: modelledAt, actualAt: actualAt))
    }

    /// Sends the pending records (and changed counters) to the recorder.
    func flushRecords() {
        if let zap {
            // Clients refused by this node's ZAP handler, and handshakes that failed (no key at all).
            set("auth_keys_refused", zap.refused)
            set("auth_handshakes_failed", loop.stats.handshakeFailures)
        }
        if countersDirty {
            counters["transport_send_dropped"] = loop.stats.sendDropped
            batch.counters = counters.sorted { $0.key < $1.key }.map { CounterRecord(nodeID: id, name: $0.key, value: $0.value) }
            countersDirty = false
        }
        if !dirtyLinks.isEmpty {
            batch.linkStats = dirtyLinks.compactMap { linkStats[$0] }.sorted { ($0.link, $0.kind) < ($1.link, $1.kind) }
            dirtyLinks.removeAll()
        }
        guard !batch.isEmpty, let json = try? JSONEncoder().encode(batch) else { return }
        let frame = Envelope(kind: .record, sender: id, incarnation: incarnation, sequence: nextSequence(), sentAt: now,
                             payload: Array(json)).encoded()
        loop.send([frame], on: sockets.recorder)
        batch = RecordBatch()
    }
}
