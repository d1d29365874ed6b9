/// Compute capacity of a node: a fixed number of slots and a bounded queue, with admission
/// control and de-duplication by request id. Pure: the caller passes the time and carries out
/// the answer (arms a timer for `finishAt`, replies "rejected" at once).
///
/// Each slot runs one request at a time at the device's full speed. A request is admitted if a
/// slot is free or fewer than `queueCapacity` requests are waiting; it then starts when the
/// earliest slot frees. Since service times are known at admission, the schedule is exact.
public struct ComputeServer: Sendable {
    public let device: DeviceProfile
    public let slots: Int
    public let queueCapacity: Int
    /// A calibrated profile (`convoy calibrate`) used instead of the roofline model for its model.
    public let measured: MeasuredProfile?

    public struct Job: Sendable, Equatable {
        public var requestID: String
        public var admittedAt: Double
        public var startAt: Double
        public var finishAt: Double
        /// The slot it runs on.
        public var slot = 0
        public var queueWait: Double { startAt - admittedAt }
        public var computeTime: Double { finishAt - startAt }
    }

    public enum Admission: Sendable, Equatable {
        /// Admitted: the answer is ready at `job.finishAt`.
        case admitted(Job)
        /// Already admitted earlier under the same id (a re-send): the same job, not computed twice.
        case duplicate(Job)
        /// The queue is full.
        case rejected
        /// This server cannot run the model (unknown, or does not fit in memory).
        case unsupported(String)
    }

    private var slotFreeAt: [Double]
    private var jobs: [String: Job] = [:]

    public init(device: DeviceProfile, slots: Int, queueCapacity: Int, measured: MeasuredProfile? = nil) {
        precondition(slots > 0 && queueCapacity >= 0)
        self.measured = measured
        self.device = device
        self.slots = slots
        self.queueCapacity = queueCapacity
        slotFreeAt = Array(repeating: -.infinity, count: slots)
    }

    /// Admits one job: the whole model, or one `stage` of a split request (timed by the roofline
    /// model layer by layer, even where a calibrated profile times whole requests).
    public mutating func admit(requestID: String, model: String, inputTokens: Int, outputTokens: Int, stage: SplitStage? = nil,
                               now: Double) -> Admission {
        forget(before: now - 60)
        if let job = jobs[requestID] { return .duplicate(job) }
        guard let profile = ModelProfile.catalog[model] else { return .unsupported("unknown model \(model)") }
        guard fits(profile, stage) else {
            return .unsupported("\(model)\(stage == nil ? "" : " (its stage)") does not fit on \(device.name)")
        }
        if waiting(now: now) >= queueCapacity && busy(now: now) >= slots { return .rejected }
        let slot = slotFreeAt.indices.min { slotFreeAt[$0] < slotFreeAt[$1] }!
        let start = max(now, slotFreeAt[slot])
        let finish = start + time(profile, stage, inputTokens: inputTokens, outputTokens: outputTokens)
        slotFreeAt[slot] = finish
        let job = Job(requestID: requestID, admittedAt: now, startAt: start, finishAt: finish, slot: slot)
        jobs[requestID] = job
        return .admitted(job)
    }

    /// When a new request (or split `stage`) would finish if admitted now; nil if it would be
    /// rejected or cannot run here.
    public func estimatedFinish(model: String, inputTokens: Int, outputTokens: Int, stage: SplitStage? = nil, now: Double) -> Double? {
        guard let profile = ModelProfile.catalog[model], fits(profile, stage), hasRoom(now: now) else { return nil }
        return max(now, slotFreeAt.min()!) + time(profile, stage, inputTokens: inputTokens, outputTokens: outputTokens)
    }

    private func fits(_ model: ModelProfile, _ stage: SplitStage?) -> Bool {
        stage?.fits(model: model, device: device) ?? ComputeModel.fits(model: model, device: device)
    }

    /// A job's compute seconds: its split stage layer by layer, else the whole model (calibrated or roofline).
    private func time(_ model: ModelProfile, _ stage: SplitStage?, inputTokens: Int, outputTokens: Int) -> Double {
        stage?.time(model: model, device: device, inputTokens: inputTokens, outputTokens: outputTokens)
            ?? ComputeModel.inferenceTime(model: model, device: device, measured: measured, inputTokens: inputTokens,
                                          outputTokens: outputTokens)
    }

    /// Withdraws the job admitted under `requestID`: its answer is no longer wanted. If nothing was
    /// scheduled after it on its slot, the slot is free again from now (or from when the job would
    /// have started) and the job is forgotten; returns the compute seconds saved. A job with others
    /// queued behind it on its slot keeps its place (the schedule of the others is fixed at
    /// admission) and saves nothing.
    @discardableResult
    public mutating func cancel(requestID: String, now: Double) -> Double {
        guard let job = jobs[requestID], job.finishAt > now, slotFreeAt[job.slot] == job.finishAt else { return 0 }
        let freedFrom = max(now, job.startAt)
        slotFreeAt[job.slot] = freedFrom
        jobs[requestID] = nil
        return job.finishAt - freedFrom
    }

    /// The job already admitted under `requestID`, if any.
    public func job(_ requestID: String) -> Job? { jobs[requestID] }

    /// Slots computing at `now`.
    public func busy(now: Double) -> Int {
        jobs.values.filter { $0.startAt <= now && $0.finishAt > now }.count
    }

    /// Admitted requests not started at `now`.
    public func waiting(now: Double) -> Int {
        jobs.values.filter { $0.startAt > now }.count
    }

    /// Whether a request would be admitted now (for forwarding decisions).
    public func hasRoom(now: Double) -> Bool {
        busy(now: now) < slots || waiting(now: now) < queueCapacity
    }

    /// Drops finished jobs older than `cutoff` (de-duplication memory is bounded).
    private mutating func forget(before cutoff: Double) {
        if jobs.count > 256 { jobs = jobs.filter { $0.value.finishAt >= cutoff } }
    }
}
