import ConvoyCore
import ConvoyLinks
import ConvoyMobility
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Foundation
import Testing

/// A map for scripted runs: two RSUs 400 m apart on the x axis (radius 250 m, overlapping between
/// x = 150 and 250), one edge server behind both, a cloud and a macro cell covering everything.
/// rsu-a has a small on-board GPU; rsu-b has none.
let testMap: MapSpec = {
    let yaml = """
    name: scripted
    cloud: { id: cloud, compute: { device: a100-80gb, slots: 4, queue: 16 } }
    macro: { id: macro, x: 200, y: 0, radius: 2000 }
    edges:
      - { id: edge-1, x: 200, y: 100, rsus: [rsu-a, rsu-b], compute: { device: rtx-4090, slots: 2, queue: 4 } }
    rsus:
      - { id: rsu-a, x: 0, y: 0, radius: 250, compute: { device: jetson-agx-orin, slots: 1, queue: 2 } }
      - { id: rsu-b, x: 400, y: 0, radius: 250 }
    """
    return try! MapSpec.parse(yaml, file: "scripted.yaml")
}()

/// One task a second per vehicle (periodic), 5 s deadline.
func testScenario(policy: String = "best-rate", onboard: ComputeSpec? = nil, shareable: Bool = false,
                  interval: Double = 1, deadline: Double = 5) -> Scenario {
    let task = TaskSpec(name: "caption", model: "llama-3-8b", inputTokens: 256, outputTokens: 32, deadline: deadline, payloadBytes: 20_000,
                        resultBytes: 2_000, shareable: shareable)
    return Scenario(name: "scripted", map: testMap, duration: 60, workload: WorkloadSpec(arrival: .periodic, meanInterval: interval,
                                                                                         tasks: [task]),
                    onboard: onboard, policy: policy)
}

/// A trajectory from `from` to `to` (x axis, y = 0) over [0, duration] s, a sample a second.
func straightLine(_ id: String, from: Double, to: Double, duration: Double = 60) -> Trajectory {
    let samples = stride(from: 0.0, through: duration, by: 1).map { t in
        TraceSample(time: t, position: Position(x: from + (to - from) * t / duration, y: 0), speed: abs(to - from) / duration)
    }
    return Trajectory(vehicleID: id, samples: samples)
}

/// Frames as a node receives them: an envelope from `sender`, with the topic (broadcast) or the
/// sender's routing id (ROUTER) in front.
func frames<P: WirePayload>(_ payload: P, from sender: String, at time: Double, position: Position? = nil, incarnation: UInt32 = 1,
                            prefix: String, deliverAt: Double? = nil) -> [[UInt8]] {
    [Array(prefix.utf8), Envelope(kind: P.kind, sender: sender, incarnation: incarnation, sequence: 1, sentAt: time,
                                  position: position, deliverAt: deliverAt, payload: payload.encoded()).encoded()]
}

/// Runs a core against scripted events: keeps its armed timers and fires them in time order, and
/// keeps every action it returned.
struct Script<Event> {
    var handle: (Event, Double) -> [NodeAction]
    var timerEvent: (UInt64) -> Event
    private(set) var now = 0.0
    private var timers: [(at: Double, order: Int, id: UInt64)] = []
    private var order = 0
    /// Every action so far, with the time it was returned at.
    private(set) var log: [(at: Double, action: NodeAction)] = []

    init(handle: @escaping (Event, Double) -> [NodeAction], timer: @escaping (UInt64) -> Event) {
        self.handle = handle
        self.timerEvent = timer
    }

    /// Delivers `event` at `time` (after firing the timers due before it).
    @discardableResult
    mutating func send(_ event: Event, at time: Double) -> [NodeAction] {
        advance(to: time)
        return perform(event, at: time)
    }

    /// Fires every timer due up to `time`, in order.
    mutating func advance(to time: Double) {
        while let next = timers.min(by: { ($0.at, $0.order) < ($1.at, $1.order) }), next.at <= time {
            timers.removeAll { $0.order == next.order }
            perform(timerEvent(next.id), at: max(now, next.at))
        }
        now = max(now, time)
    }

    @discardableResult
    private mutating func perform(_ event: Event, at time: Double) -> [NodeAction] {
        now = time
        let actions = handle(event, time)
        for action in actions {
            log.append((time, action))
            if case .arm(let id, let at) = action {
                order += 1
                timers.append((at, order, id))
            }
        }
        return actions
    }

    var sends: [(at: Double, message: Outbound)] {
        log.compactMap { if case .send(let m) = $0.action { ($0.at, m) } else { nil } }
    }

    var records: [NodeRecord] { log.compactMap { if case .record(let r) = $0.action { r } else { nil } } }

    var attempts: [AttemptRecord] { records.compactMap { if case .attempt(let a) = $0 { a } else { nil } } }

    var requests: [RequestRecord] { records.compactMap { if case .request(let r) = $0 { r } else { nil } } }

    /// Counter totals (counts summed, set counters at their last value).
    var counters: [String: Int] {
        var totals: [String: Int] = [:]
        for (_, action) in log {
            if case .count(let name, let n) = action { totals[name, default: 0] += n }
            if case .setCounter(let name, let v) = action { totals[name] = v }
        }
        return totals
    }
}

extension Outbound {
    /// The payload, decoded as `P` (nil if it is another kind).
    func decoded<P: WirePayload>(_ type: P.Type) -> P? {
        kind == P.kind ? try? P.decode(body) : nil
    }
}

/// A vehicle core driven by a script, and a beacon feed for the RSUs it should hear.
struct VehicleScript {
    var script: Script<VehicleCore.Event>

    init(_ setup: VehicleCore.Setup) {
        let box = CoreBox(VehicleCore(setup))
        script = Script(handle: { event, now in box.core.handle(event, now: now) }, timer: { .timer($0) })
        self.box = box
    }

    private let box: CoreBox

    var state: VehicleCore { box.core }

    /// RSU beacons from `rsus` every 100 ms over [from, to) (what the vehicle's subscriptions would
    /// let through: it applies the cell's range itself), with the script's timers in between.
    /// RSU (and cloud) beacons every 0.1 s, and V2V beacons of `neighbours` (id and position, one
    /// free on-board slot) with them.
    /// `load`: the active vehicles each RSU advertises (0 when not given).
    mutating func beacons(from: Double, to: Double, rsus: [String], cloud: Bool = true, neighbours: [(String, Position)] = [],
                          load: [String: UInt16] = [:]) {
        var t = from
        while t < to {
            for rsu in rsus {
                let beacon = Beacon(role: .rsu, activeVehicles: load[rsu] ?? 0)
                script.send(.frames(.broadcast, frames(beacon, from: rsu, at: t, prefix: Topic.rsuBeacon(rsu))), at: t)
            }
            for (neighbour, at) in neighbours {
                let beacon = V2VBeacon(speed: 0, heading: 0, freeSlots: 1, uplinkRate: 0)
                script.send(.frames(.broadcast, frames(beacon, from: neighbour, at: t, position: at, prefix: "v2v/0/0/")), at: t)
            }
            if cloud { script.send(.frames(.broadcast, frames(Beacon(role: .cloud), from: "cloud", at: t, prefix: Topic.cloudBeacon)), at: t) }
            t += 0.1
        }
        script.advance(to: to)
    }

    final class CoreBox {
        var core: VehicleCore
        init(_ core: VehicleCore) { self.core = core }
    }
}

/// A server core driven by a script.
struct ServerScript {
    var script: Script<ServerCore.Event>
    private let box: CoreBox

    init(_ id: String, map: MapSpec = testMap, vehicles: Set<String>? = nil, analytics: AnalyticsConfig? = nil, sendAhead: Double = 0) throws {
        let box = CoreBox(try ServerCore(id: id, map: map, liveness: LivenessConfig(), seed: 1, incarnation: 1, vehicles: vehicles,
                                         analytics: analytics))
        box.core.sendAhead = sendAhead
        script = Script(handle: { event, now in box.core.handle(event, now: now) }, timer: { .timer($0) })
        self.box = box
    }

    var state: ServerCore { box.core }

    final class CoreBox {
        var core: ServerCore
        init(_ core: ServerCore) { self.core = core }
    }
}
