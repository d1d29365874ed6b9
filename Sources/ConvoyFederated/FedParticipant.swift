import ConvoyWire

/// A vehicle's side of federated fine-tuning: pull the model through the RSU it can use, train
/// on its private shard (the trainer does the passes; the emulated time is the vehicle device's),
/// upload the update in chunks, and resume what the aggregator did not get — through whichever
/// RSU serves the vehicle then. Pure: event and time in, actions out.
///
/// Timing: the update may leave at `trainedAt + trainSeconds` (emulated) at the earliest; if the
/// real training ends later, it leaves when it ends and the difference is a fidelity miss
/// (`fed_training_late`, and `late` in the action), like a late link delivery.
public struct FedParticipant: Sendable {
    public enum Event: Sendable {
        /// Periodic, and at each requested wake-up: `via` is the RSU the vehicle can use now (nil: none).
        case tick(via: String?)
        case down(FedDown)
        /// The trainer finished job `id`: the trained adapter, or why not.
        case trained(id: UInt64, adapter: Adapter?, samples: Int, loss: Double, realSeconds: Double, failure: String?)
    }

    public enum Action: Sendable, Equatable {
        /// Send to the aggregator through RSU `via`.
        case send(FedUp, via: String)
        case train(id: UInt64, adapter: Adapter, steps: Int)
        case wake(at: Double)
        case count(String, Int)
    }

    enum State {
        case idle(lastPull: Double)
        case downloading(version: UInt32, steps: Int, reassembly: Reassembly, lastChunk: Double)
        case training(id: UInt64, version: UInt32, startedAt: Double, result: Trained?)
        case uploading(Upload)
        case finished
    }

    struct Trained {
        var adapter: Adapter
        var samples: Int
        var loss: Double
        var realSeconds: Double
        var readyAt: Double
    }

    struct Upload {
        var transfer: UInt32
        var version: UInt32
        var chunks: [[UInt8]]
        var totalBytes: Int
        var trained: Trained
        var startedAt: Double
        var lastSent: Double
    }

    public let vehicle: String
    public let pullInterval: Double
    public let transferTimeout: Double
    public let chunkBytes: Int
    /// Emulated seconds one local round of training takes on the vehicle's device.
    public let trainSeconds: Double
    /// Emulated seconds past the device's training time after which an unanswered job is given up.
    public let trainingTimeout: Double
    /// Whether a job finished after its emulated due time is a fidelity miss (an RSU group's
    /// "training" is rounds in emulated time: it has no due time).
    public var measuresLateness = true
    var state = State.idle(lastPull: -.infinity)
    /// The last upload's number (an RSU group's restarted incarnation starts past its previous ones').
    var transfers: UInt32 = 0
    var nextJob: UInt64 = 0
    /// The RSU of the last tick.
    var lastVia: String?
    var out: [Action] = []

    public init(vehicle: String, trainSeconds: Double, transferTimeout: Double = 5, pullInterval: Double = 2,
                chunkBytes: Int = Chunking.defaultChunkBytes, trainingTimeout: Double = 120) {
        self.trainingTimeout = trainingTimeout
        self.vehicle = vehicle
        self.trainSeconds = trainSeconds
        self.transferTimeout = transferTimeout
        self.pullInterval = pullInterval
        self.chunkBytes = chunkBytes
    }

    public var isFinished: Bool { if case .finished = state { true } else { false } }
    /// Between transfers: neither downloading, training nor uploading.
    public var isIdle: Bool { if case .idle = state { true } else { false } }

    public mutating func handle(_ event: Event, now: Double) -> [Action] {
        switch event {
        case .tick(let via):
            lastVia = via
            tick(via: via, now: now)
        case .down(let message): received(message, now: now)
        case .trained(let id, let adapter, let samples, let loss, let real, let failure):
            guard case .training(let job, let version, let startedAt, nil) = state, job == id else { break }
            guard let adapter, failure == nil else {
                out.append(.count("fed_training_failed", 1))
                state = .idle(lastPull: -.infinity)
                break
            }
            let due = startedAt + trainSeconds
            state = .training(id: id, version: version, startedAt: startedAt,
                              result: Trained(adapter: adapter, samples: samples, loss: loss, realSeconds: real, readyAt: now))
            if measuresLateness, now > due { out.append(.count("fed_training_late", 1)); out.append(.count("fed_training_late_ms", Int((now - due) * 1000))) }
            out.append(.wake(at: max(now, due)))
        }
        defer { out = [] }
        return out
    }

    private mutating func tick(via: String?, now: Double) {
        switch state {
        case .finished:
            return
        case .idle(let lastPull):
            guard let via, now - lastPull >= pullInterval else { return }
            state = .idle(lastPull: now)
            out.append(.send(FedUp(kind: .pull, vehicleID: vehicle, version: 0), via: via))
        case .downloading(_, _, _, let lastChunk):
            // The rest of the model did not come: ask again (the aggregator re-sends it).
            if now - lastChunk > transferTimeout { state = .idle(lastPull: -.infinity); tick(via: via, now: now) }
        case .training(_, let version, let startedAt, let result):
            if result == nil, now > startedAt + trainSeconds + trainingTimeout {
                // The trainer never answered (it died): give the round up and ask again.
                out.append(.count("fed_training_timeouts", 1))
                state = .idle(lastPull: -.infinity)
                return
            }
            guard let result, now >= startedAt + trainSeconds else { return }
            transfers += 1
            let bytes = result.adapter.bytes
            let upload = Upload(transfer: transfers, version: version, chunks: Chunking.chunks(of: bytes, size: chunkBytes),
                                totalBytes: bytes.count, trained: result, startedAt: now, lastSent: -.infinity)
            state = .uploading(upload)
            send(upload, chunks: Array(upload.chunks.indices), via: via, now: now)
        case .uploading(let upload):
            // No acknowledgement in time: ask the aggregator what it has (through the RSU of now).
            guard let via, now - upload.lastSent > transferTimeout else { return }
            var u = upload
            u.lastSent = now
            state = .uploading(u)
            out.append(.send(FedUp(kind: .pull, vehicleID: vehicle, version: upload.version, transfer: upload.transfer), via: via))
            out.append(.count("fed_upload_probes", 1))
        }
    }

    private mutating func send(_ upload: Upload, chunks: [Int], via: String?, now: Double) {
        var u = upload
        u.lastSent = now
        state = .uploading(u)
        guard let via else { return out.append(.count("fed_upload_no_rsu", 1)) }
        for i in chunks where i < upload.chunks.count {
            out.append(.send(FedUp(kind: .chunk, vehicleID: vehicle, version: upload.version, transfer: upload.transfer, index: UInt16(i),
                                   count: UInt16(upload.chunks.count), totalBytes: UInt32(upload.totalBytes),
                                   samples: UInt32(clamping: upload.trained.samples), loss: upload.trained.loss,
                                   trainSeconds: trainSeconds, realTrainSeconds: upload.trained.realSeconds,
                                   uploadStartedAt: upload.startedAt, data: upload.chunks[i]), via: via))
        }
        out.append(.count("fed_chunks_sent", chunks.count))
    }

    private mutating func received(_ m: FedDown, now: Double) {
        guard m.vehicleID == vehicle else { return out.append(.count("fed_down_misrouted", 1)) }
        switch (m.kind, state) {
        case (.ack, _) where m.status == .finished:
            state = .finished
        case (.ack, .uploading(let upload)) where m.transfer == upload.transfer:
            switch m.status {
            case .accepted, .discarded, .finished:
                if m.status == .discarded { out.append(.count("fed_updates_discarded", 1)) }
                state = .idle(lastPull: -.infinity)
                out.append(.wake(at: now))
            case .incomplete:
                // Resume: only what is missing (everything when the aggregator knows nothing of it).
                let missing = m.missing.isEmpty ? Array(upload.chunks.indices) : m.missing.map(Int.init)
                out.append(.count("fed_chunks_resent", missing.count))
                send(upload, chunks: missing, via: lastVia, now: now)
            }
        case (.chunk, .idle), (.chunk, .downloading):
            var r: Reassembly
            if case .downloading(let version, _, let existing, _) = state, version == m.version {
                r = existing
            } else {
                r = Reassembly(count: Int(m.count), totalBytes: Int(m.totalBytes))
            }
            if case .inconsistent = r.add(index: Int(m.index), count: Int(m.count), totalBytes: Int(m.totalBytes), data: m.data) {
                return out.append(.count("fed_chunks_inconsistent", 1))
            }
            guard let bytes = r.bytes else {
                state = .downloading(version: m.version, steps: Int(m.steps), reassembly: r, lastChunk: now)
                return
            }
            guard let adapter = Adapter(bytes: bytes) else { return out.append(.count("fed_models_malformed", 1)) }
            nextJob += 1
            state = .training(id: nextJob, version: m.version, startedAt: now, result: nil)
            out.append(.train(id: nextJob, adapter: adapter, steps: Int(m.steps)))
        default:
            out.append(.count("fed_down_unexpected", 1))
        }
    }
}
