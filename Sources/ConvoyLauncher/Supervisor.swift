import ConvoyCore
import ConvoyRuntime
import ConvoyRecording
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// The launcher's event loop: one actor consuming the launcher's sockets (records, control) and a
/// periodic tick; it spawns, reaps, injects faults, writes the database and shows the status.
actor Supervisor {
    private enum Sockets { static let records = 0, control = 1 }
    private enum Timers { static let tick: UInt64 = 1 }

    private enum Phase: Equatable {
        case running
        /// SIGTERM sent to vehicles; at the wall deadline a second SIGTERM (stop without waiting
        /// for open requests, `hurried`), and SIGKILL at the next.
        case stoppingVehicles(deadline: Double, hurried: Bool)
        case stoppingInfrastructure(deadline: Double)
        /// Everyone is gone; late records still arriving until the deadline.
        case draining(deadline: Double)
        case done
    }

    private struct ActiveFault {
        var rowID: Int64
        var mode: FaultMode
        var recoverAt: Double?
    }

    private let config: RunConfig
    private let clock: EmulationClock
    private let database: RunDatabase
    private let loop: EventLoop
    private let output: StatusOutput
    private var processes: ProcessTable
    /// `tools/trainer`, run beside the fleet for federated fine-tuning.
    private let trainer: String?
    private var pendingVehicles: [VehiclePlan]
    private var scheduledFaults: [FaultSpec]
    private var activeFaults: [String: ActiveFault] = [:]
    private var batches: [RecordBatch] = []
    /// Counters and link meters of restarted nodes, added up over their incarnations.
    private var incarnationTotals = IncarnationTotals()
    private var lastFlush = 0.0
    private var lastStatus = 0.0
    private var phase = Phase.running
    private var result = LaunchResult.completed
    private var vehiclesToClose: [(id: String, at: Double, reason: String)] = []
    private var malformedRecords = 0
    private var malformedControl = 0
    private var spawnedVehicles = 0
    /// Why the database stopped taking writes, once it did (a full disk); the run then stops.
    private var recordingError: String?
    /// Rows that could not be written.
    private var lostRecords = 0
    /// Node processes (vehicles included) that died on their own while the run was running.
    private var diedOnTheirOwn: [String] = []
    /// Wall time of the previous tick: a long gap means the launcher itself (and the bus it hosts)
    /// was stopped or starved.
    private var lastTickWall: Double?
    /// Space kept free on the run's file system, released when the disk fills so that the run can
    /// still be closed consistently.
    private let reserve: DiskReserve
    /// CurveZMQ: the run's keys, and who counts refusals (nil with --no-curve).
    private let security: Security?
    /// Rows of record batches about another node than their authenticated sender, dropped.
    private var forgedRecords = 0

    struct Security: Sendable {
        var keyring: Keyring
        var forwarder: Forwarder
        var zap: ZAPHandler
    }

    init(config: RunConfig, executable: String, trainer: String? = nil, vehicles: [VehiclePlan], database: RunDatabase, reserve: DiskReserve,
         loop: EventLoop, output: StatusOutput, security: Security?) {
        self.security = security
        self.config = config
        self.clock = config.clock
        self.database = database
        self.loop = loop
        self.output = output
        processes = ProcessTable(executable: executable)
        self.trainer = trainer
        pendingVehicles = vehicles.sorted { $0.start < $1.start }
        scheduledFaults = config.scenario.faults
        self.reserve = reserve
    }

    /// The longest the vehicles may take to stop, in wall seconds, however slow emulated time runs.
    static let maxStopWall = 10.0
    /// A gap between ticks longer than this (wall seconds) is recorded as a launcher outage.
    static let stallThreshold = 1.0

    private var now: Double { clock.now() }

    func interrupt(signal: Int32) {
        guard phase == .running else {
            // A second signal: no more grace for open requests.
            if case .stoppingVehicles(_, false) = phase {
                output.line("stopping now")
                phase = .stoppingVehicles(deadline: 0, hurried: false)
            }
            return
        }
        output.line("interrupted: letting open requests finish, then stopping the fleet (again to stop at once)…")
        result = .interrupted(signal)
        beginStop()
    }

    func run() async -> LaunchResult {
        do {
            try startInfrastructure()
        } catch {
            output.line("error: \(error)")
            result = .failed("\(error)")
            beginStop()
        }
        loop.schedule(timer: Timers.tick, atWall: EmulationClock.wallNow())
        for await event in loop.events {
            switch event {
            case .timer: tick()
            case .message(let socket, let frames, let peer):
                if socket == Sockets.records { receiveRecords(frames, from: peer) } else { control(frames) }
            }
            if phase == .done { break }
        }
        await loop.stop()
        return result
    }

    // MARK: - Spawning

    private func startInfrastructure() throws {
        let map = config.map
        if let trainer {
            let log = URL(fileURLWithPath: config.runDirectory).appendingPathComponent("logs/trainer.log").path
            _ = try processes.spawnHelper(name: "trainer", executable: trainer,
                                          arguments: TrainerProcess.arguments(runDirectory: config.runDirectory, endpoint: config.trainerEndpoint),
                                          logPath: log)
            output.line("trainer: started (federated fine-tuning; log \(log))")
        }
        try spawn(id: map.cloud.id, role: .cloud, incarnation: 1, position: map.macro?.position)
        for edge in map.edges { try spawn(id: edge.id, role: .edge, incarnation: 1, position: edge.position) }
        for rsu in map.rsus { try spawn(id: rsu.id, role: .rsu, incarnation: 1, position: rsu.position) }
    }

    private func spawn(id: String, role: NodeRole, incarnation: Int, position: Position?, vehicle: VehiclePlan? = nil) throws {
        var arguments = ["node", "--role", role.rawValue, "--id", id, "--run", config.runDirectory, "--incarnation", String(incarnation)]
        if let vehicle { arguments += ["--trajectory", vehicle.trajectoryPath] }
        let logName = vehicle?.logName ?? RunDirectory.safeName(id, index: 0)
        let logPath = URL(fileURLWithPath: config.runDirectory).appendingPathComponent("logs/\(logName).log").path
        // A fresh client key per incarnation; the previous one is refused from now on.
        try security?.keyring.issue(for: id, role: role, config: config)
        let pid = try processes.spawn(id: id, role: role, incarnation: incarnation, arguments: arguments, logPath: logPath)
        record { try database.recordNodeStarted(NodeRow(nodeID: id, role: role, incarnation: incarnation, pid: Int(pid),
                                                        startedAt: max(0, now), x: position?.x, y: position?.y)) }
    }

    /// Emulated seconds ahead of its first sample at which a vehicle process is spawned.
    static func spawnLead(speed: Double) -> Double { 0.3 * speed }

    private func spawnDueVehicles(now: Double) {
        // Processes take a moment to start: spawn slightly ahead of the first sample (the initial
        // fleet at once, before the clock starts: see `Launcher.startAllowance`).
        while let next = pendingVehicles.first, next.start - Self.spawnLead(speed: config.speed) <= max(now, 0) {
            pendingVehicles.removeFirst()
            do {
                try spawn(id: next.id, role: .vehicle, incarnation: 1, position: next.firstPosition, vehicle: next)
                spawnedVehicles += 1
            } catch {
                output.line("warning: \(error)")
            }
        }
    }

    // MARK: - Tick

    private func tick() {
        let now = self.now
        let wall = EmulationClock.wallNow()
        noteStall(wall: wall, now: now)
        reap(now: now)
        switch phase {
        case .running:
            spawnDueVehicles(now: now)
            applyScheduledFaults(now: now)
            if now >= config.duration { beginStop() }
        case .stoppingVehicles(let deadline, let hurried):
            if !processes.alive(.vehicle).isEmpty && wall >= deadline && !hurried {
                // Out of grace: vehicles stop without waiting for their open requests and send their last records.
                for node in processes.alive(.vehicle) { processes.signal(node.id, SIGTERM) }
                phase = .stoppingVehicles(deadline: wall + 2, hurried: true)
            } else if processes.alive(.vehicle).isEmpty || wall >= deadline {
                for node in processes.alive(.vehicle) { processes.signal(node.id, SIGKILL) }
                for node in processes.alive() {
                    processes.signal(node.id, SIGCONT)
                    processes.signal(node.id, SIGTERM)
                }
                processes.signalHelpers(SIGTERM)
                phase = .stoppingInfrastructure(deadline: wall + 2)
            }
        case .stoppingInfrastructure(let deadline):
            if processes.alive().isEmpty || wall >= deadline {
                for node in processes.alive() { processes.signal(node.id, SIGKILL) }
                processes.signalHelpers(SIGKILL)
                phase = .draining(deadline: wall + 0.5)
            }
        case .draining(let deadline):
            if wall >= deadline {
                reap(now: now)
                finishRecording(now: now)
                phase = .done
                return
            }
        case .done:
            return
        }
        closeLostVehicles(now: now, force: false)
        if wall - lastFlush >= 0.1 { flush() }
        if wall - lastStatus >= (output.isTerminal ? 1 : 10) { showStatus(now: now) }
        loop.schedule(timer: Timers.tick, atWall: wall + 0.05)
    }

    /// Stops the run: vehicles first (they drain their open requests for up to the workload's
    /// drain time, capped at `maxStopWall` wall seconds; none with `hurry`), then the infrastructure.
    private func beginStop(hurry: Bool = false) {
        guard phase == .running else { return }
        pendingVehicles.removeAll()
        for node in processes.alive() where node.state == .hung { processes.signal(node.id, SIGCONT) }
        for node in processes.alive(.vehicle) { processes.signal(node.id, SIGTERM) }
        // Vehicles drain their open requests (VehicleCore's drain), then exit.
        let grace = hurry ? 0 : min(clock.wallDuration(ofEmulated: config.scenario.workload.drainTime) * 1.5 + 3, Self.maxStopWall)
        phase = .stoppingVehicles(deadline: EmulationClock.wallNow() + grace, hurried: false)
    }

    private func reap(now: Double) {
        let ended = processes.reap()
        for (name, how) in processes.helpersEnded {
            record { try database.setMetadata("\(name)_ended", "\(how) at t = \(String(format: "%.1f", now)) s") }
            if phase == .running {
                // Its pending training and evaluations are lost; the run goes on but is not clean.
                output.line("error: the \(name) \(how) on its own at t = \(String(format: "%.1f", now)) s (see logs/\(name).log)")
                if result == .completed { result = .failed("the \(name) \(how) on its own") }
            }
        }
        processes.helpersEnded = []
        for (node, how) in ended {
            record { try database.recordNodeEnded(nodeID: node.id, incarnation: node.incarnation, endedAt: max(0, now), exitStatus: how) }
            if phase == .running && how != "exited 0" && node.state != .crashed {
                // Not an injected fault: the run goes on (its records are kept) but must not report a clean success.
                diedOnTheirOwn.append(node.id)
                output.line("error: \(node.id) \(how) on its own (see \(node.logPath))")
                if result == .completed { result = .failed("\(node.id) \(how) on its own") }
            }
            if node.role == .vehicle {
                // Its last records may still be in flight: close what it left open a little later.
                let reason = how == "exited 0" ? "vehicle-exited"
                    : phase == .running ? "vehicle-lost (\(how))" : "run-ended (vehicle stopped at shutdown)"
                vehiclesToClose.append((node.id, now + 0.5 * config.speed, reason))
            }
        }
    }

    private func closeLostVehicles(now: Double, force: Bool) {
        guard !vehiclesToClose.isEmpty else { return }
        flush()
        vehiclesToClose.removeAll { entry in
            guard force || now >= entry.at else { return false }
            record { try database.closeOpenRequests(vehicleID: entry.id, at: entry.at, reason: entry.reason) }
            return true
        }
    }

    private func finishRecording(now: Double) {
        flush()
        closeLostVehicles(now: now, force: true)
        let reason = recordingError == nil ? "run-ended" : "recording-stopped (the run database could not be written)"
        let closed = record { try database.closeOpenRequests(at: max(0, min(now, config.duration + 10)), reason: reason) } ?? 0
        for fault in activeFaults.values where fault.rowID >= 0 { record { try database.recordFaultEnded(id: fault.rowID, endedAt: now) } }
        record {
            try database.setMetadata("ended_wall", ISO8601DateFormatter().string(from: Date()))
            try database.setMetadata("result", "\(result)")
            try database.setMetadata("records_malformed", String(malformedRecords))
            try database.setMetadata("control_malformed", String(malformedControl))
            if let security {
                // Refusals at the launcher's sockets: handshakes without a key or with a key that is not the run's,
                // bus messages whose sender was not their publisher, and forged record rows.
                let forwarder = security.forwarder.stats
                try database.setMetadata("auth_keys_refused", String(security.zap.refused + security.forwarder.refusedKeys))
                try database.setMetadata("auth_handshakes_failed", String(loop.stats.handshakeFailures + forwarder.handshakeFailures))
                try database.setMetadata("bus_sender_mismatch", String(forwarder.refused))
                try database.setMetadata("bus_forwarded", String(forwarder.forwarded))
                try database.setMetadata("bus_bytes_forwarded", String(forwarder.forwardedBytes))
                try database.setMetadata("records_forged", String(forgedRecords))
            }
            try database.setMetadata("records_lost", String(lostRecords))
            if !diedOnTheirOwn.isEmpty { try database.setMetadata("died_on_their_own", diedOnTheirOwn.joined(separator: ", ")) }
        }
        if output.isTerminal { output.write("\r\u{1B}[K") }
        if let summary = try? database.summary() {
            output.line(Self.summaryLine(summary, closed: closed))
        }
        if let fidelity = try? database.fidelity() {
            record {
                try database.setMetadata("link_error_p99_ms", fidelity.p99Ms.map { String(format: "%.3f", $0) } ?? "-")
                try database.setMetadata("fidelity", fidelity.lost ? "lost" : "held")
            }
            output.line("fidelity: " + fidelity.summary)
            if fidelity.lost {
                output.line("warning: FIDELITY LOST (p99 above \(Fidelity.boundMs) ms): the emulation could not hold the link "
                            + "model's instants" + (fidelity.suggestedSpeed(current: config.speed).map { "; rerun with --speed \($0) or lower" } ?? ""))
            }
        }
        do {
            try database.close()
        } catch {
            recordingFailed(error, losing: 0)
        }
        reserve.release()
        if let recordingError {
            output.line("error: the run database stopped taking writes (\(recordingError)); \(lostRecords) records were lost. "
                        + "What \(config.runDirectory)/run.sqlite holds is consistent up to then.")
        } else {
            output.line("recorded in \(config.runDirectory)/run.sqlite")
        }
    }

    /// Runs a database write; a failure (a full disk, an I/O error) stops the run (`recordingFailed`).
    @discardableResult
    private func record<T>(_ write: () throws -> T) -> T? {
        do {
            return try write()
        } catch {
            recordingFailed(error, losing: 1)
            return nil
        }
    }

    /// The database refused a write: the recording can no longer be trusted to be complete, so the
    /// run stops at once and fails. The disk reserve is released so that the run can still be
    /// closed (open requests closed, the result recorded) consistently.
    private func recordingFailed(_ error: any Error, losing rows: Int) {
        lostRecords += rows
        guard recordingError == nil else { return }
        let reason = RecordingError.reason(of: error)
        recordingError = reason
        reserve.release()
        output.line("error: cannot write to \(config.runDirectory)/run.sqlite: \(reason); stopping the run")
        result = .failed("the run database could not be written (\(reason)); \(lostRecords)+ records lost")
        beginStop(hurry: true)
    }

    static func summaryLine(_ s: RunSummary, closed: Int) -> String {
        var text = "requests: \(s.completed) completed, \(s.failed) failed, \(s.expired) expired"
        if let p50 = s.p50Ms, let p95 = s.p95Ms { text += "; latency p50 \(Int(p50)) ms, p95 \(Int(p95)) ms" }
        text += "; \(s.vehiclesWithRequests) vehicles made requests"
        if closed > 0 { text += "; \(closed) closed at the end of the run" }
        return text
    }

    // MARK: - Records

    private func receiveRecords(_ frames: [[UInt8]], from peer: String?) {
        guard frames.count == 1, let envelope = try? Envelope(decoding: frames[0]), envelope.kind == .record,
              let batch = try? JSONDecoder().decode(RecordBatch.self, from: Data(envelope.payload)) else {
            malformedRecords += 1
            return
        }
        guard security != nil else { return batches.append(incarnationTotals.totals(of: batch, incarnation: envelope.incarnation)) }
        // Authenticated: a node records its own rows only.
        guard let peer, envelope.sender == peer else {
            forgedRecords += batch.rowCount
            return
        }
        let owned = batch.owned(by: peer)
        forgedRecords += batch.rowCount - owned.rowCount
        batches.append(incarnationTotals.totals(of: owned, incarnation: envelope.incarnation))
    }

    private func flush() {
        lastFlush = EmulationClock.wallNow()
        guard !batches.isEmpty else { return }
        for batch in batches {
            for sample in batch.linkSamples { recentLinkErrors.append(abs(sample.actualAt - sample.modelledAt) * 1000) }
        }
        if recentLinkErrors.count > Self.recentLinkSamples { recentLinkErrors.removeFirst(recentLinkErrors.count - Self.recentLinkSamples) }
        if recordingError != nil {
            // The database already refused a write: the space the reserve gave back is for closing
            // the run (open requests, the result), not for the records still coming in.
            lostRecords += batches.reduce(0) { $0 + $1.rowCount }
        } else {
            do {
                try database.apply(batches)
            } catch {
                recordingFailed(error, losing: batches.reduce(0) { $0 + $1.rowCount })
            }
        }
        batches.removeAll(keepingCapacity: true)
    }

    /// Records a gap between ticks longer than `stallThreshold` as an outage of the launcher (it
    /// was stopped, e.g. SIGSTOP, or starved of CPU): the bus lives in the launcher, so every
    /// node saw its peers fall silent at once, and the detections in that window are the
    /// launcher's outage, not failures of the nodes (`convoy report` attributes them).
    private func noteStall(wall: Double, now: Double) {
        defer { lastTickWall = wall }
        guard let last = lastTickWall, wall - last > Self.stallThreshold else { return }
        let from = max(0, clock.emulated(atWall: last)), gap = wall - last
        output.line(String(format: "warning: the launcher did not run for %.1f s (stopped or starved); the bus it hosts was down "
                           + "and detections in that window are recorded as its outage", gap))
        record {
            let id = try database.recordFaultStarted(FaultRow(nodeID: "launcher", mode: FaultRow.launcherOutage, startedAt: from,
                                                              source: "observed", detail: String(format: "%.1f s wall", gap)))
            try database.recordFaultEnded(id: id, endedAt: max(from, now))
        }
    }

    /// The link errors (ms) of the latest sampled deliveries, for the status line.
    private var recentLinkErrors: [Double] = []
    static let recentLinkSamples = 2000

    private func showStatus(now: Double) {
        lastStatus = EmulationClock.wallNow()
        guard phase == .running else { return }
        let rsus = config.map.rsus
        let up = rsus.filter { processes[$0.id]?.state == .running }.count
        var text = String(format: "[%6.1f/%.0f s] vehicles %d alive (%d started) | RSUs %d/%d up", max(0, now), config.duration,
                          processes.alive(.vehicle).count, spawnedVehicles, up, rsus.count)
        if let s = try? database.summary() {
            text += " | requests \(s.completed) done, \(s.failed) failed, \(s.expired) expired, \(s.open) open"
            if let p50 = s.p50Ms, let p95 = s.p95Ms { text += String(format: " | p50 %.0f ms p95 %.0f ms", p50, p95) }
        }
        if let p99 = Statistics.percentile(99, ofSorted: recentLinkErrors.sorted()) {
            text += String(format: " | link p99 %.1f ms", p99) + (p99 > Fidelity.boundMs ? " (FIDELITY LOST)" : "")
        }
        output.status(text)
    }

    // MARK: - Faults

    /// A scheduled fault fired later than this (emulated seconds) is reported late.
    private var lateness: Double { max(0.25, 0.2 * config.speed) }

    private func applyScheduledFaults(now: Double) {
        while let next = scheduledFaults.first, next.at <= now {
            scheduledFaults.removeFirst()
            let late = now - next.at
            if now >= config.duration {
                // The launcher only got here after the run's end: say so rather than fire it after the fact.
                output.line(String(format: "warning: the fault at t=%.1f s (%@ %@) was not fired: the launcher reached it only at "
                                   + "t=%.1f s, after the run's end", next.at, next.mode.rawValue, next.node, now))
                record { try database.setMetadata("faults_not_fired", "\(next.mode.rawValue) \(next.node) at \(next.at) s") }
                continue
            }
            let outcome = inject(node: next.node, mode: next.mode, duration: next.duration, degradation: next.degradation,
                                 source: "scenario", late: late > lateness ? late : nil)
            output.line("t=\(String(format: "%.1f", now)) s: \(outcome.message)")
        }
        for (node, fault) in activeFaults {
            if let at = fault.recoverAt, now >= at {
                let outcome = recover(node: node)
                output.line("t=\(String(format: "%.1f", now)) s: \(outcome.message)")
            }
        }
    }

    private func inject(node id: String, mode: FaultMode, duration: Double?, degradation: Degradation? = nil,
                        source: String, late: Double? = nil) -> ControlReply {
        switch config.map.role(of: id) {
        case .rsu?, .edge?: break
        case .cloud?, .vehicle?, nil: return ControlReply(ok: false, message: "\(NodeID.excerpt(id)) is not an RSU or edge server of this run")
        }
        if let duration, !(duration > 0 && duration.isFinite) {
            return ControlReply(ok: false, message: "the fault's duration must be a positive number of seconds, got \(duration)")
        }
        if let degradation, !((0...1).contains(degradation.loss) && degradation.latency >= 0 && degradation.latency.isFinite) {
            return ControlReply(ok: false, message: "a degradation needs a loss in [0, 1] and a finite latency ≥ 0")
        }
        if mode == .backendDown, config.map.compute(of: id)?.backend == nil {
            return ControlReply(ok: false, message: "\(id) has no real model server (no `backend:` in its compute) to take down")
        }
        if let active = activeFaults[id] {
            return ControlReply(ok: false, message: "\(id) already has an active \(active.mode.rawValue); recover it first (`convoy recover`)")
        }
        guard var node = processes[id], node.state == .running else {
            return ControlReply(ok: false, message: "\(id) is not running (already failed?)")
        }
        guard phase == .running else { return ControlReply(ok: false, message: "the run is stopping") }
        let now = max(0, self.now)
        var detail = duration.map { "for \($0) s" }
        switch mode {
        case .crash:
            node.state = .crashed
            processes[id] = node
            kill(node.pid, SIGKILL)
        case .hang:
            node.state = .hung
            processes[id] = node
            kill(node.pid, SIGSTOP)
        case .partition, .degrade, .backendDown:
            // Out of band (a file and a signal), so that it reaches a partitioned node too.
            let fault = ImposedFault(mode: mode, degradation: mode == .degrade ? (degradation ?? .standard) : nil)
            do {
                try fault.write(path: config.imposedFaultPath(of: id))
            } catch {
                return ControlReply(ok: false, message: "cannot impose \(mode.rawValue) on \(id): \(error)")
            }
            kill(node.pid, SIGUSR1)
            if let d = fault.degradation {
                detail = "loss \(d.loss), latency \(Int((d.latency * 1000).rounded())) ms" + (detail.map { ", \($0)" } ?? "")
            }
        }
        if let late {
            detail = String(format: "fired %.1f s late", late) + (detail.map { "; \($0)" } ?? "")
        }
        let rowID = record { try database.recordFaultStarted(FaultRow(nodeID: id, mode: mode.rawValue, startedAt: now, source: source,
                                                                      detail: detail)) } ?? -1
        activeFaults[id] = ActiveFault(rowID: rowID, mode: mode, recoverAt: duration.map { now + $0 })
        let until = duration.map { "for \($0) s" } ?? "until `convoy recover`"
        let lateNote = late.map { String(format: ", %.1f s late (the launcher was busy)", $0) } ?? ""
        return ControlReply(ok: true, message: "\(mode.rawValue) \(id) (\(source)) \(until)\(lateNote)")
    }

    private func recover(node id: String) -> ControlReply {
        guard let fault = activeFaults.removeValue(forKey: id), let node = processes[id] else {
            return ControlReply(ok: false, message: "\(NodeID.excerpt(id)) has no active fault")
        }
        let now = max(0, self.now)
        if fault.rowID >= 0 { record { try database.recordFaultEnded(id: fault.rowID, endedAt: now) } }
        switch fault.mode {
        case .hang:
            var resumed = node
            resumed.state = .running
            processes[id] = resumed
            kill(node.pid, SIGCONT)
            return ControlReply(ok: true, message: "resumed \(id)")
        case .partition, .degrade, .backendDown:
            try? FileManager.default.removeItem(atPath: config.imposedFaultPath(of: id))
            kill(node.pid, SIGUSR1)
            return ControlReply(ok: true, message: "ended the \(fault.mode.rawValue) of \(id)")
        case .crash:
            do {
                try spawn(id: id, role: node.role, incarnation: node.incarnation + 1,
                          position: config.map.rsu(id)?.position ?? config.map.edge(id)?.position)
                return ControlReply(ok: true, message: "restarted \(id) (incarnation \(node.incarnation + 1))")
            } catch {
                return ControlReply(ok: false, message: "cannot restart \(id): \(error)")
            }
        }
    }

    private func control(_ frames: [[UInt8]]) {
        // Anything but [routing id, control envelope with a valid command] is counted and dropped, unanswered.
        guard frames.count == 2, let envelope = try? Envelope(decoding: frames[1]), envelope.kind == .control,
              let command = try? JSONDecoder().decode(ControlCommand.self, from: Data(envelope.payload)) else {
            malformedControl += 1
            return
        }
        let reply: ControlReply
        do {
            switch command.action {
            case .fail:
                let mode = command.mode ?? .crash
                let degradation = mode == .degrade
                    ? Degradation(loss: command.loss ?? Degradation.standard.loss, latency: command.latency ?? Degradation.standard.latency)
                    : nil
                reply = inject(node: command.node, mode: mode, duration: command.duration, degradation: degradation, source: "live")
            case .recover:
                reply = recover(node: command.node)
            }
            output.line("t=\(String(format: "%.1f", max(0, now))) s: \(reply.message)")
        }
        let payload = (try? JSONEncoder().encode(reply)) ?? Data()
        let frame = Envelope(kind: .controlReply, sender: "launcher", incarnation: 0, sequence: 0, sentAt: now,
                             payload: Array(payload)).encoded()
        loop.send([frames[0], frame], on: Sockets.control)
    }
}
