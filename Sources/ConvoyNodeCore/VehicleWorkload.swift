import ConvoyCore
import ConvoyReasoning
import ConvoyScenario

/// What a vehicle does on its own initiative: the work it opens over time. Each item is an
/// exchange the request ledger drives — bytes up, compute, bytes down, with failover. Today's
/// inference arrivals are one workload (`InferenceArrivals`); another (a fine-tuning round's
/// upload) is one more conforming type.
public protocol VehicleWorkload: Sendable {
    /// When the next item is due (infinity: none).
    var nextAt: Double { get }
    /// The item due now; advances the schedule. Call only when `nextAt` has come.
    mutating func next() -> TaskSpec
}

/// The scenario's inference arrivals for one vehicle: Poisson or periodic from the vehicle's first
/// request on, or listed in the arrivals file. Arrival times and task draws come from their own
/// random stream (`arrivals/<id>`), so runs of one seed offer the same requests whatever the policy
/// or the timing of other events.
public struct InferenceArrivals: VehicleWorkload {
    public let spec: WorkloadSpec
    public private(set) var nextAt: Double
    /// Listed arrivals outside the vehicle's time in the trace (skipped).
    public let skipped: Int
    private var rng: SeededGenerator
    private var listed: ArraySlice<ArrivalFile.Arrival>

    /// - Parameters:
    ///   - firstRequest: the earliest instant of the first request.
    ///   - window: the vehicle's time in the run (listed arrivals outside it are skipped).
    public init(spec: WorkloadSpec, vehicle: String, seed: UInt64, firstRequest: Double, window: Range<Double>,
                listed arrivals: [ArrivalFile.Arrival]) {
        self.spec = spec
        rng = SeededGenerator(seed: seed, label: "arrivals/\(vehicle)")
        if spec.arrival == .file {
            let inWindow = arrivals.filter { window.contains($0.time) }
            skipped = arrivals.count - inWindow.count
            listed = inWindow[...]
            nextAt = inWindow.first.map { max($0.time, firstRequest) } ?? .infinity
        } else {
            skipped = 0
            listed = []
            nextAt = firstRequest
        }
    }

    public mutating func next() -> TaskSpec {
        if spec.arrival == .file {
            let arrival = listed.removeFirst()
            nextAt = listed.first?.time ?? .infinity
            return arrival.task.flatMap(spec.task(named:)) ?? spec.pickTask(using: &rng)
        }
        // On schedule: a late tick does not shift the arrivals after it.
        let task = spec.pickTask(using: &rng)
        nextAt += spec.nextInterval(using: &rng)
        return task
    }
}
