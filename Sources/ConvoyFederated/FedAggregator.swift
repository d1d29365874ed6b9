import ConvoyWire
import Foundation

/// The aggregator of federated fine-tuning, placeable at an RSU, an edge server or the cloud: it
/// hands the global adapter (or the client's cluster's, or its RSU group's) to the vehicles that
/// pull it, reassembles their chunked updates and aggregates them with the scheme's rule. Pure:
/// event and time in, actions out; the server node carries them out (sends go back along the
/// vehicle's path, evaluations go to the trainer).
///
/// Synchronous schemes run rounds: round r hands out version r − 1 to the first
/// `participantsPerRound` clients that pull (all, with 0) and closes when all of them are in or at
/// `roundDeadline`; closing it makes version r. Asynchronous schemes hand out the current version
/// at once and mix each update as it arrives (FedAsync) or every K updates (FedBuff).
///
/// Hierarchical runs on two tiers: at each RSU a `.group` aggregator runs the rounds of the
/// vehicles it serves (`GroupAggregator` carries its model up and back), and the run's aggregator
/// (`.top`) averages the groups' models every κ2 rounds as its clients' updates, weighted by the
/// samples behind them. Its versions count global aggregations; its records number rounds in
/// group rounds (global version g is round g × κ2), so that every scheme shares one axis.
public struct FedAggregator: Sendable {
    /// Where this aggregator sits in the scheme.
    public enum Tier: Sendable, Equatable {
        /// The run's aggregator (hierarchical: the global level, whose clients are the RSU groups).
        case top
        /// Hierarchical: an RSU's group level; `index` numbers the group in records.
        case group(index: Int)
    }

    public enum Event: Sendable {
        /// The trainer's initial adapter (every client starts from it).
        case initial(Adapter)
        /// A pull or a chunk from a vehicle; `via`: the first hop it came through (its RSU).
        case up(FedUp, via: String)
        case timer(UInt64)
        /// The trainer evaluated request `id`: loss per domain, or why it could not.
        case evaluated(id: UInt64, losses: [String: Double]?, failure: String?)
        /// Group tier: the global model of version `version`, to run the next κ2 rounds from.
        case global(Adapter, version: Int)
        /// Group tier: the global level has finished.
        case finish
        /// The run ends: the updates accepted into the open round (or FedBuff's buffer) are
        /// recorded as `unapplied`.
        case stop
    }

    public enum Action: Sendable, Equatable {
        case send(FedDown)
        case arm(UInt64, at: Double)
        case evaluate(id: UInt64, adapter: Adapter, domains: [String])
        case round(FedRoundRecord)
        case update(FedUpdateRecord)
        case eval(FedEvalRecord)
        case count(String, by: Int = 1)
        case setCounter(String, Int)
        /// A new version exists: what a restarted aggregator would resume from.
        case checkpoint(FedCheckpoint)
        /// The updates accepted in the open round and not yet recorded (recorded at its close):
        /// the next incarnation records them as lost if this one dies first.
        case pending([FedUpdateRecord])
        /// Group tier: κ2 rounds are done; the group's model and the samples behind it go up.
        case handUp(Adapter, samples: Int, loss: Double?)
        /// Towards the global level (a group's pull or chunk, from `GroupAggregator`).
        case sendUp(FedUp)
    }

    /// Timer ids are at or above this, so that a node can tell them from its own; the first
    /// `reservedTimers` of them are left to the types around an aggregator.
    public static let timerBase: UInt64 = 1 << 40
    public static let reservedTimers: UInt64 = 16

    struct Upload {
        var transfer: UInt32
        var version: Int
        var first: FedUp
        var reassembly: Reassembly
        var via: [String]
        var endedAt: Double?
        /// What became of it, once decided (an aggregated update still pending its round's close counts).
        var outcome: FedUpdateRecord.Outcome?
    }

    struct Received {
        var update: ClientUpdate
        var record: FedUpdateRecord
    }

    /// A model whose held-out loss is being measured, and the clients that use it.
    struct Evaluation {
        var round: Int
        var cluster: Int
        var at: Double
        var clients: [String]
    }

    public let config: FedTuneConfig
    public let id: String
    public let tier: Tier
    public private(set) var version = 0
    public private(set) var finished = false
    var started = false
    /// Models: per cluster (0 for a single model).
    var models: [Int: Adapter] = [:]
    var history: [Int: Adapter] = [:]
    var clusterOf: [String: Int] = [:]
    /// The first hop each client's last message came through.
    var lastVia: [String: String] = [:]
    var buffer: UpdateBuffer
    var chunked: [String: [[UInt8]]] = [:]
    /// Synchronous round state.
    var roundOpen = false
    var roundStartedAt = 0.0
    var selected: [String: Double] = [:]
    var waiting: Set<String> = []
    var received: [String: Received] = [:]
    var uploads: [String: Upload] = [:]
    var evaluations: [UInt64: Evaluation] = [:]
    var evalResults: [Int: [Int: [String: Double]]] = [:]
    var evalPending: [Int: Int] = [:]
    var nextID = timerBase + reservedTimers
    /// FedBuff: the records of the updates in the buffer (recorded when it is applied).
    var buffered: [FedUpdateRecord] = []
    /// Group tier: the samples and training losses of the updates aggregated since the last global model.
    var cycleSamples = 0
    var cycleLosses: [Double] = []
    var deadlineTimer: UInt64?
    /// The previous incarnation's checkpoint, applied once the trainer's initial adapter is in
    /// (a group: once the global model is; `.some(nil)`: there was one, and it could not be read).
    var resume: FedCheckpoint??
    /// The updates the previous incarnation had accepted in its open round, to be recorded as lost.
    var lostWithPrevious: [FedUpdateRecord]
    var out: [Action] = []

    /// `resume`: the checkpoint file a previous incarnation of this aggregator wrote (it carries on
    /// from that version; ignored, and counted, if it cannot be read or does not fit this run's
    /// scheme and adapter). `pending`: its pending file (the updates it had accepted in its open
    /// round, recorded as lost on the first event).
    public init(config: FedTuneConfig, id: String, tier: Tier = .top, resume: [UInt8]? = nil, pending: [UInt8]? = nil) {
        self.config = config
        self.id = id
        self.tier = tier
        self.resume = resume.map(FedCheckpoint.decode)
        lostWithPrevious = pending.flatMap(FedCheckpoint.decodePending) ?? []
        buffer = UpdateBuffer(size: max(1, config.bufferSize), serverRate: config.serverRate)
        if config.scheme == .clustered, config.clusterBy == .labels {
            let labels = config.clients.keys.reduce(into: [String: String]()) { $0[$1] = config.label(of: $1) }
            clusterOf = Clustering.byLabel(labels).mapValues { $0 % max(1, config.clusters) }
        }
    }

    public var parameterCount: Int { models[0]?.count ?? 0 }

    /// The global level of hierarchical: its clients are RSU groups.
    var aggregatesGroups: Bool { tier == .top && config.scheme == .hierarchical }
    var kappa2: Int { max(1, config.kappa2) }
    /// The version at which the run's training is done (the group tier is told).
    var lastVersion: Int { aggregatesGroups ? (config.rounds + kappa2 - 1) / kappa2 : config.rounds }
    /// Version → the round number records carry (group rounds for hierarchical).
    func roundLabel(_ v: Int) -> Int { aggregatesGroups ? v * kappa2 : v }
    /// A synchronous round with every client asked closes once the clients that joined it are in
    /// (groups and their vehicles are not known in advance); otherwise once all clients are.
    var closesWhenJoinersAreIn: Bool { config.participantsPerRound == 0 && (tier != .top || aggregatesGroups) }
    /// Group tier: waiting for the next global model with vehicles waiting for it.
    public var wantsModel: Bool { !finished && !roundOpen && !waiting.isEmpty }

    public mutating func handle(_ event: Event, now: Double) -> [Action] {
        if !lostWithPrevious.isEmpty {
            for var r in lostWithPrevious {
                r.outcome = .lost
                r.recordedBy = id
                out.append(.update(r))
            }
            out.append(.count("fed_updates_lost_with_aggregator", by: lostWithPrevious.count))
            out.append(.pending([]))
            lostWithPrevious = []
        }
        switch event {
        case .initial(let adapter):
            guard models.isEmpty else { break }
            for c in 0..<max(1, config.scheme == .clustered ? config.clusters : 1) { models[c] = adapter }
            history[0] = adapter
            if let resume { resumeFrom(resume, parameters: adapter.count) }
            resume = nil
            out.append(.arm(nextTimer(), at: max(now, config.startAt)))
        case .up(let message, let via):
            // A group speaks for itself (the first hop of its messages is its own RSU).
            guard config.clients[message.vehicleID] != nil || (aggregatesGroups && message.vehicleID == via) else {
                out.append(.count("fed_unknown_client"))
                break
            }
            switch message.kind {
            case .pull: pulled(message, via: via, now: now)
            case .chunk: chunk(message, via: via, now: now)
            }
        case .timer(let timer):
            if !started, !models.isEmpty {
                started = true
                if config.scheme.isAsynchronous {
                    for v in waiting.sorted() { sendModel(to: v, now: now) }
                    waiting = []
                } else {
                    openRound(now: now)
                }
            } else if timer == deadlineTimer, roundOpen {
                closeRound(now: now)
            }
        case .evaluated(let id, let losses, let failure):
            evaluated(id, losses: losses, failure: failure)
        case .global(let adapter, let global):
            guard case .group = tier, !finished else { break }
            models[0] = adapter
            version = global * kappa2
            history = [version: adapter]
            cycleSamples = 0
            cycleLosses = []
            started = true
            if resumeGroup(from: resume, parameters: adapter.count), version % kappa2 == 0 {
                handUp()  // the previous incarnation's cycle was done; its upload did not land
            } else if !roundOpen {
                openRound(now: now)
            }
        case .finish:
            guard case .group = tier, !finished else { break }
            finish()
        case .stop:
            let accepted = (roundOpen ? received.values.map(\.record) : []) + buffered
            for var r in accepted.sorted(by: { $0.vehicleID < $1.vehicleID }) {
                r.outcome = .unapplied
                out.append(.update(r))
            }
            if !accepted.isEmpty { out.append(.pending([])) }
            received = [:]
            buffered = []
        }
        defer { out = [] }
        return out
    }

    /// Carries on from a previous incarnation's checkpoint, if it fits this run.
    private mutating func resumeFrom(_ checkpoint: FedCheckpoint?, parameters: Int) {
        guard let checkpoint, checkpoint.scheme == config.scheme.rawValue, checkpoint.parameters == parameters,
              let models = checkpoint.adapters() else { return out.append(.count("fed_checkpoint_unusable")) }
        self.models.merge(models) { $1 }
        clusterOf.merge(checkpoint.clusterOf) { $1 }
        version = checkpoint.version
        history = [version: self.models[0]!]
        finished = version >= lastVersion
        out.append(.setCounter("fed_resumed_from_version", version))
    }

    /// A group given the global model: a previous incarnation's checkpoint that went on from it
    /// (its version lies in this cycle of κ2 rounds) replaces it. True if it did.
    private mutating func resumeGroup(from checkpoint: FedCheckpoint??, parameters: Int) -> Bool {
        guard let checkpoint else { return false }
        resume = nil
        guard let checkpoint, checkpoint.scheme == config.scheme.rawValue, checkpoint.parameters == parameters,
              let model = checkpoint.adapters()?[0] else { out.append(.count("fed_checkpoint_unusable")); return false }
        guard checkpoint.version > version, checkpoint.version <= version + kappa2 else {
            out.append(.count("fed_checkpoint_outdated"))
            return false
        }
        models[0] = model
        version = checkpoint.version
        history = [version: model]
        cycleSamples = checkpoint.cycleSamples ?? 0
        cycleLosses = checkpoint.cycleLosses ?? []
        out.append(.setCounter("fed_resumed_from_version", version))
        return true
    }

    /// The state a restarted aggregator resumes from.
    private func checkpoint() -> FedCheckpoint {
        var c = FedCheckpoint(scheme: config.scheme.rawValue, version: version, parameters: parameterCount,
                              models: models.mapValues { Data($0.bytes) }, clusterOf: clusterOf)
        if case .group = tier {
            c.cycleSamples = cycleSamples
            c.cycleLosses = cycleLosses
        }
        return c
    }

    mutating func nextTimer() -> UInt64 {
        nextID += 1
        return nextID
    }

    // MARK: - Handing out the model

    private mutating func pulled(_ pull: FedUp, via: String, now: Double) {
        let v = pull.vehicleID
        lastVia[v] = via
        if pull.transfer > 0 { return acknowledge(v, transfer: pull.transfer, of: pull.version) }
        if finished { return out.append(.send(FedDown(kind: .ack, vehicleID: v, version: UInt32(version), status: .finished))) }
        guard started else { waiting.insert(v); return }
        if config.scheme.isAsynchronous { return sendModel(to: v, now: now) }
        if roundOpen, selected[v] != nil, received[v] == nil { return sendModel(to: v, now: now) }  // a lost download
        if roundOpen, received[v] == nil, config.participantsPerRound == 0 || selected.count < config.participantsPerRound {
            selected[v] = now
            return sendModel(to: v, now: now)
        }
        waiting.insert(v)
    }

    /// The model client `v` trains from (its cluster's, or the one model) and the number of the
    /// cluster or group in records.
    func model(for v: String) -> (cluster: Int, adapter: Adapter) {
        if case .group(let index) = tier { return (index, models[0]!) }
        guard config.scheme == .clustered else { return (0, models[0]!) }
        let c = clusterOf[v] ?? 0
        return (c, models[c] ?? models[0]!)
    }

    private mutating func sendModel(to v: String, now: Double) {
        let (cluster, adapter) = model(for: v)
        let key = "\(version)/\(cluster)"
        if chunked[key] == nil {
            chunked = chunked.filter { $0.key.hasPrefix("\(version)/") }
            chunked[key] = Chunking.chunks(of: adapter.bytes, size: config.chunkBytes)
        }
        let parts = chunked[key]!
        // A group's "training" is κ2 rounds of its vehicles; a vehicle's is its local steps (κ1 local rounds of them).
        let steps = aggregatesGroups ? kappa2 : config.localSteps * (config.scheme == .hierarchical ? config.kappa1 : 1)
        for (i, part) in parts.enumerated() {
            out.append(.send(FedDown(kind: .chunk, vehicleID: v, version: UInt32(version), cluster: UInt16(clamping: cluster),
                                     steps: UInt16(clamping: steps), transfer: UInt32(version), index: UInt16(i),
                                     count: UInt16(parts.count), totalBytes: UInt32(adapter.byteCount), data: part)))
        }
    }

    // MARK: - Receiving updates

    private mutating func chunk(_ c: FedUp, via: String, now: Double) {
        let v = c.vehicleID
        lastVia[v] = via
        // An upload is (client, transfer, version): a number seen before for another version is a new upload.
        if uploads[v]?.transfer != c.transfer || uploads[v]?.version != Int(c.version) {
            // Unless a round's close already recorded it lost.
            if let old = uploads[v], old.endedAt == nil, old.outcome == nil { recordLost(v, old) }
            uploads[v] = Upload(transfer: c.transfer, version: Int(c.version), first: c,
                                reassembly: Reassembly(count: Int(c.count), totalBytes: Int(c.totalBytes)), via: [], endedAt: nil)
        }
        guard uploads[v]!.endedAt == nil, uploads[v]!.outcome == nil else { return out.append(.count("fed_chunks_after_outcome")) }
        switch uploads[v]!.reassembly.add(index: Int(c.index), count: Int(c.count), totalBytes: Int(c.totalBytes), data: c.data) {
        case .duplicate: return out.append(.count("fed_chunks_duplicate"))
        case .inconsistent: return out.append(.count("fed_chunks_inconsistent"))
        case .accepted: break
        }
        if uploads[v]!.via.last != via { uploads[v]!.via.append(via) }
        guard let bytes = uploads[v]!.reassembly.bytes else { return }
        uploads[v]!.endedAt = now
        let upload = uploads[v]!
        if parameterCount == 0 {
            // No model here yet (a restarted group that has not had the global model): nothing to aggregate into.
            out.append(.count("fed_updates_before_model"))
            uploads[v]!.outcome = .late
            record(v, upload, outcome: .late, round: version + 1, staleness: 0)
        } else if let adapter = Adapter(bytes: bytes, expected: parameterCount), adapter.isFinite {
            let update = ClientUpdate(vehicle: v, adapter: adapter, samples: Int(upload.first.samples), baseVersion: upload.version)
            uploads[v]!.outcome = config.scheme.isAsynchronous ? mix(update, upload, now: now) : collect(update, upload, now: now)
        } else {
            out.append(.count("fed_updates_malformed"))
            uploads[v]!.outcome = .lost
            record(v, upload, outcome: .lost, round: version, staleness: 0)
        }
        acknowledge(v, transfer: c.transfer, of: c.version)
    }

    private mutating func acknowledge(_ v: String, transfer: UInt32, of uploadVersion: UInt32) {
        var ack = FedDown(kind: .ack, vehicleID: v, version: UInt32(version), transfer: transfer)
        if let u = uploads[v], u.transfer == transfer, u.version == Int(uploadVersion) {
            // A complete upload has its outcome at once; without one, chunks are still missing.
            if let outcome = u.outcome {
                ack.status = finished ? .finished : outcome == .aggregated ? .accepted : .discarded
            } else {
                ack.missing = u.reassembly.missing.map { UInt16($0) }
            }
        } else if finished {
            ack.status = .finished
        }
        // An unknown upload: `incomplete` with no list means every chunk.
        out.append(.send(ack))
    }

    private func record(for v: String, _ u: Upload, outcome: FedUpdateRecord.Outcome, round: Int, staleness: Int, cluster: Int = 0) -> FedUpdateRecord {
        FedUpdateRecord(vehicleID: v, baseVersion: u.version, round: roundLabel(round), cluster: cluster, transfer: Int(u.transfer),
                        bytes: u.reassembly.totalBytes, chunksReceived: u.reassembly.receivedChunks, chunks: u.reassembly.count,
                        samples: Int(u.first.samples), trainLoss: u.first.loss.isFinite ? u.first.loss : nil, trainSeconds: u.first.trainSeconds,
                        realTrainSeconds: u.first.realTrainSeconds, uploadStartedAt: u.first.uploadStartedAt, uploadEndedAt: u.endedAt,
                        via: u.via.joined(separator: "+"), outcome: outcome, staleness: staleness, recordedBy: id)
    }

    private mutating func record(_ v: String, _ u: Upload, outcome: FedUpdateRecord.Outcome, round: Int, staleness: Int, cluster: Int = 0) {
        out.append(.update(record(for: v, u, outcome: outcome, round: round, staleness: staleness, cluster: cluster)))
    }

    private mutating func recordLost(_ v: String, _ u: Upload) {
        record(v, u, outcome: .lost, round: config.scheme.isAsynchronous ? version : u.version + 1, staleness: 0)
    }

    // MARK: - Synchronous rounds

    private mutating func openRound(now: Double) {
        roundOpen = true
        roundStartedAt = now
        selected = [:]
        received = [:]
        let deadline = nextTimer()
        deadlineTimer = deadline
        // The global level of hierarchical waits for κ2 group rounds and the groups' uploads.
        out.append(.arm(deadline, at: now + config.roundDeadline * (aggregatesGroups ? Double(kappa2 + 1) : 1)))
        for v in waiting.sorted() where config.participantsPerRound == 0 || selected.count < config.participantsPerRound {
            waiting.remove(v)
            selected[v] = now
            sendModel(to: v, now: now)
        }
    }

    private mutating func collect(_ update: ClientUpdate, _ upload: Upload, now: Double) -> FedUpdateRecord.Outcome {
        let round = version + 1
        if case .group = tier, roundOpen, update.baseVersion == version, selected[update.vehicle] == nil {
            // A vehicle that moved here from another RSU's group in the same round brings its update along.
            selected[update.vehicle] = now
            waiting.remove(update.vehicle)
            out.append(.count("fed_group_updates_from_other_groups"))
        }
        guard roundOpen, update.baseVersion == version, selected[update.vehicle] != nil else {
            record(update.vehicle, upload, outcome: .late, round: round, staleness: version - update.baseVersion)
            return .late
        }
        let cluster = model(for: update.vehicle).cluster
        received[update.vehicle] = Received(update: update,
                                            record: record(for: update.vehicle, upload, outcome: .aggregated, round: round, staleness: 0, cluster: cluster))
        out.append(.pending(received.values.map(\.record).sorted { $0.vehicleID < $1.vehicleID }))
        let enough = closesWhenJoinersAreIn || selected.count >= (config.participantsPerRound == 0 ? config.clients.count : config.participantsPerRound)
        if received.count == selected.count, selected.count > 0, enough {
            closeRound(now: now)
        }
        return .aggregated
    }

    private mutating func closeRound(now: Double) {
        roundOpen = false
        deadlineTimer = nil
        let round = version + 1
        let base = models
        for (v, u) in uploads.sorted(by: { $0.key < $1.key }) where selected[v] != nil && u.endedAt == nil && u.version == version {
            recordLost(v, u)
            uploads[v]!.outcome = .lost
        }
        for v in selected.keys.sorted() where received[v] == nil && uploads[v]?.version != version {
            out.append(.update(FedUpdateRecord(vehicleID: v, baseVersion: version, round: roundLabel(round), cluster: model(for: v).cluster, transfer: 0,
                                               bytes: 0, chunksReceived: 0, chunks: 0, samples: 0, trainLoss: nil, trainSeconds: nil,
                                               realTrainSeconds: nil, uploadStartedAt: nil, uploadEndedAt: nil, via: lastVia[v] ?? "",
                                               outcome: .lost, staleness: 0, recordedBy: id)))
        }
        let updates = received.values.sorted { $0.update.vehicle < $1.update.vehicle }
        for u in updates { out.append(.update(u.record)) }
        if !updates.isEmpty { out.append(.pending([])) }
        switch (tier, config.scheme) {
        case (.group(let index), _):
            if let m = Aggregation.fedAvg(clients: updates.map(\.update)) { models[0] = m }
            cycleSamples += updates.reduce(0) { $0 + $1.update.samples }
            cycleLosses += updates.compactMap(\.record.trainLoss)
            roundRecord(round: round, cluster: index, level: "group", members: updates, now: now)
        case (_, .clustered):
            if config.clusterBy == .updates { assignClusters(updates.map(\.update), base: base) }
            for c in models.keys.sorted() {
                let members = updates.filter { clusterOf[$0.update.vehicle] ?? 0 == c }
                if let m = Aggregation.fedAvg(clients: members.map(\.update)) { models[c] = m }
                roundRecord(round: round, cluster: c, level: "cluster", members: members, now: now)
            }
        default:
            if let m = Aggregation.fedAvg(clients: updates.map(\.update)) { models[0] = m }
            roundRecord(round: round, cluster: 0, level: "global", members: updates, now: now)
        }
        version = round
        history = [version: models[0]!]
        out.append(.checkpoint(checkpoint()))
        if case .group = tier {
            // The last of κ2 rounds goes up (the global model is evaluated instead).
            guard round % kappa2 == 0 else { evaluate(round: round, now: now); return openRound(now: now) }
            return handUp()
        }
        evaluate(round: round, now: now)
        if version >= lastVersion { finish() } else { openRound(now: now) }
    }

    /// Group tier: κ2 rounds are done; the group's model goes up.
    private mutating func handUp() {
        let loss = cycleLosses.isEmpty ? nil : cycleLosses.reduce(0, +) / Double(cycleLosses.count)
        out.append(.handUp(models[0]!, samples: cycleSamples, loss: loss))
    }

    /// Training is over: the waiting clients are told so (and any that ask later).
    private mutating func finish() {
        finished = true
        roundOpen = false
        for v in waiting.sorted() { out.append(.send(FedDown(kind: .ack, vehicleID: v, version: UInt32(version), status: .finished))) }
        waiting = []
    }

    private mutating func roundRecord(round: Int, cluster: Int, level: String, members: [Received], now: Double) {
        let losses = members.map(\.update).compactMap { received[$0.vehicle]?.record.trainLoss }
        let participants = level == "cluster" ? selected.keys.filter { model(for: $0).cluster == cluster }.count : selected.count
        out.append(.round(FedRoundRecord(scheme: config.scheme.rawValue, round: roundLabel(round), cluster: cluster, level: level,
                                         startedAt: roundStartedAt, endedAt: now, participants: participants, aggregated: members.count,
                                         dropped: max(0, participants - members.count), aggregatedAt: id,
                                         trainLoss: losses.isEmpty ? nil : losses.reduce(0, +) / Double(losses.count))))
    }

    /// CFL by update similarity: after the first round that has updates, spherical k-means on the
    /// directions (update − the model it started from) fixes the clusters; a client first seen
    /// later joins the cluster whose mean direction is closest to its first update's.
    private mutating func assignClusters(_ updates: [ClientUpdate], base: [Int: Adapter]) {
        let directions = updates.reduce(into: [String: Adapter]()) { d, u in
            d[u.vehicle] = u.adapter.minus(base[clusterOf[u.vehicle] ?? 0] ?? base[0]!)
        }
        if clusterOf.isEmpty {
            clusterOf = Clustering.kMeans(directions, k: config.clusters)
            for c in 0..<config.clusters where models[c] == nil { models[c] = models[0] }
            return
        }
        let centres = Dictionary(grouping: directions.filter { clusterOf[$0.key] != nil }, by: { clusterOf[$0.key]! })
            .compactMapValues { Aggregation.fedAvg($0.map { ($0.value, 1.0) }) }
        for (v, d) in directions where clusterOf[v] == nil {
            clusterOf[v] = centres.max { (d.cosine($0.value), -$0.key) < (d.cosine($1.value), -$1.key) }?.key ?? 0
        }
    }

    // MARK: - Asynchronous

    private mutating func mix(_ update: ClientUpdate, _ upload: Upload, now: Double) -> FedUpdateRecord.Outcome {
        let staleness = version - update.baseVersion
        guard !finished, staleness <= config.maxStaleness, let base = history[update.baseVersion] else {
            record(update.vehicle, upload, outcome: .stale, round: version, staleness: staleness)
            return .stale
        }
        let global = models[0]!
        var next: Adapter?
        if config.scheme == .fedasync {
            next = Aggregation.fedAsync(global: global, update: update.adapter, alpha: config.stalenessAlpha,
                                        exponent: config.stalenessExponent, staleness: staleness)
        } else {
            let w = Aggregation.stalenessWeight(alpha: 1, exponent: config.stalenessExponent, staleness: staleness)
            next = buffer.add(delta: update.adapter.minus(base), weight: w, to: global)
        }
        let accepted = record(for: update.vehicle, upload, outcome: .aggregated, round: version + 1, staleness: staleness)
        guard let next else {
            // In FedBuff's buffer: recorded once the buffer is applied.
            buffered.append(accepted)
            out.append(.pending(buffered))
            return .aggregated
        }
        for r in buffered + [accepted] { out.append(.update(r)) }
        if !buffered.isEmpty { out.append(.pending([])) }
        buffered = []
        let applied = config.scheme == .fedbuff ? buffer.size : 1
        version += 1
        models[0] = next
        history[version] = next
        history = history.filter { $0.key >= version - config.maxStaleness }
        out.append(.checkpoint(checkpoint()))
        out.append(.round(FedRoundRecord(scheme: config.scheme.rawValue, round: version, cluster: 0, level: "global",
                                         startedAt: upload.first.uploadStartedAt, endedAt: now, participants: applied, aggregated: applied,
                                         dropped: 0, aggregatedAt: id, trainLoss: upload.first.loss)))
        if version % max(1, config.evaluateEvery) == 0 || version >= config.rounds { evaluate(round: version, now: now) }
        if version >= config.rounds { finished = true }
        return .aggregated
    }

    // MARK: - Evaluation

    /// Asks the trainer for the held-out loss of every model in use after `round`.
    private mutating func evaluate(round v: Int, now: Double) {
        let round = roundLabel(v)
        var targets: [(Int, Adapter, [String])] = []
        let clients = config.clients.keys.sorted()
        switch (tier, config.scheme) {
        case (.group(let index), _):
            targets.append((index, models[0]!, selected.keys.sorted()))
        case (_, .clustered):
            for c in models.keys.sorted() { targets.append((c, models[c]!, clients.filter { (clusterOf[$0] ?? 0) == c })) }
        default:
            targets.append((0, models[0]!, clients))
        }
        targets.removeAll { $0.2.isEmpty }
        evalPending[round] = targets.count
        for (cluster, adapter, members) in targets {
            let id = nextTimer()
            evaluations[id] = Evaluation(round: round, cluster: cluster, at: now, clients: members)
            out.append(.evaluate(id: id, adapter: adapter, domains: config.domains))
        }
    }

    private mutating func evaluated(_ id: UInt64, losses: [String: Double]?, failure: String?) {
        guard let e = evaluations.removeValue(forKey: id) else { return }
        evalPending[e.round, default: 1] -= 1
        if let losses {
            for d in losses.keys.sorted() {
                out.append(.eval(FedEvalRecord(round: e.round, cluster: e.cluster, domain: d, loss: losses[d]!, perplexity: exp(losses[d]!),
                                               at: e.at, recordedBy: self.id)))
            }
            var perClient: [String: Double] = [:]
            for v in e.clients {
                let mix = config.clients[v] ?? [:]
                let total = mix.values.reduce(0, +)
                perClient[v] = mix.reduce(0.0) { $0 + $1.value / max(total, 1e-12) * (losses[$1.key] ?? .nan) }
            }
            evalResults[e.round, default: [:]][e.cluster] = perClient
        } else {
            out.append(.count("fed_evaluations_failed"))
        }
        guard evalPending[e.round] == 0 else { return }
        evalPending[e.round] = nil
        // The mean over every client: the run's aggregator's, once all its models are evaluated.
        guard tier == .top else { evalResults[e.round] = nil; return }
        let values = (evalResults.removeValue(forKey: e.round) ?? [:]).values.flatMap(\.values).filter(\.isFinite)
        guard !values.isEmpty else { return }
        let mean = values.reduce(0, +) / Double(values.count)
        out.append(.eval(FedEvalRecord(round: e.round, cluster: -1, domain: "*", loss: mean, perplexity: exp(mean), at: e.at, recordedBy: self.id)))
    }
}
