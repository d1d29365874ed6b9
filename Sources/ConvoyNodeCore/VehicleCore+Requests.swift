import ConvoyCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// The vehicle's own requests: opened from the workload, driven by the ledger, sent over the access
/// link, V2V or to the on-board compute, and recorded.
extension VehicleCore {
    mutating func openRequest(_ task: TaskSpec, now: Double, paths: PathContext) {
        requestSequence += 1
        let here = position(at: now)
        let spec = RequestSpec(requestID: "\(id)/\(requestSequence)", task: task, sharingKey: tasks.sharingKey(task: task.name, at: here),
                               prompt: drawPrompt(task))
        let record = RequestRecord(opening: spec, vehicleID: id, at: now)
        openRecords[spec.requestID] = record
        out.record(.request(record))
        // A fresh result a neighbour shared answers it at once.
        if let key = spec.sharingKey, let shared = freshSharedResult(key, now: now) {
            return finished(.init(requestID: spec.requestID, status: .completed, at: now, createdAt: now, attempts: 0, reason: nil,
                                  reply: Self.cacheHit(shared)))
        }
        cacheServiceTimes(for: spec)
        if let choice = task.split { return openSplit(spec, choice: choice, now: now, paths: paths) }
        if !task.subtasks.isEmpty { return openDecomposed(spec, task: task, now: now, paths: paths) }
        openInLedger(spec, now: now, paths: paths)
    }

    /// Hands `spec` to the ledger, which sends its first attempt on the best path.
    mutating func openInLedger(_ spec: RequestSpec, now: Double, paths: PathContext) {
        apply(ledger.open(spec, now: now, candidates: candidates(paths, now: now)(spec), width: policy.width), now: now)
    }

    /// A prompt of `task`'s list, drawn by the task's own stream ("" when it has none).
    mutating func drawPrompt(_ task: TaskSpec) -> String {
        guard let prompts = task.prompts, !prompts.isEmpty else { return "" }
        var stream = promptStreams[task.name] ?? SeededGenerator(seed: seed, label: "prompts/\(id)/\(task.name)")
        let prompt = prompts[Int(stream.next() % UInt64(prompts.count))]
        promptStreams[task.name] = stream
        return prompt
    }

    mutating func apply(_ actions: [RequestLedger.Action], now: Double) {
        for action in actions {
            switch action {
            case .send(let spec, let attempt, let route, let replyBy):
                let price = scenario.prices[route.path]
                openRecords[costBearer(of: spec.requestID)]?.cost? += price
                send(spec, attempt: attempt, route: route, replyBy: replyBy, now: now)
            case .cancel(let requestID, let attempt, let route):
                cancel(requestID: requestID, attempt: attempt, route: route, now: now)
            case .attemptEnded(let requestID, let attempt, let route, let sentAt, let endedAt, let outcome, let detail):
                let recorded = recordedAttempt(requestID, attempt)
                let through = attemptRoutes.removeValue(forKey: AttemptKey(requestID, attempt))
                out.record(.attempt(AttemptRecord(requestID: recorded.requestID, attempt: recorded.attempt, path: route.path.rawValue,
                                                  target: route.target, sentAt: sentAt, endedAt: endedAt, outcome: outcome.rawValue,
                                                  detail: Self.joined(Self.joined(recorded.detail, through), detail))))
            case .finished(let done):
                if subtaskOf[done.requestID] != nil { subtaskFinished(done, now: now) } else { finished(done) }
            }
        }
    }

    /// Two details as one ("a: b"), either may be missing.
    static func joined(_ a: String?, _ b: String?) -> String? {
        switch (a, b) {
        case (let a?, let b?): "\(a): \(b)"
        default: a ?? b
        }
    }

    private mutating func finished(_ done: RequestLedger.Finished) {
        guard let open = openRecords.removeValue(forKey: done.requestID) else { return }
        let record = Self.closed(open, by: done)
        if done.reply != nil, record.cacheHit == false, let task = record.task.flatMap(tasks.task(named:)), task.shareable {
            share(record, task: task, answer: done.reply?.answer ?? "", now: done.at)
        }
        out.record(.request(record))
    }

    /// The record of a request as it ends: status, times, what served it and where the time went
    /// (queue, compute, the rest is network).
    public static func closed(_ open: RequestRecord, by done: RequestLedger.Finished) -> RequestRecord {
        var record = open
        record.status = done.status
        record.finishedAt = done.at
        record.attempts = done.attempts
        record.reason = done.reason
        // From the request's creation (a split request reaches the ledger after its on-board stage).
        let latency = done.at - open.createdAt
        record.latencyMs = latency * 1000
        record.deadlineMet = done.status == .completed && done.at <= record.deadlineAt
        record.cacheHit = done.reply?.path == cachePath
        if let reply = done.reply {
            record.servedBy = reply.servedBy
            record.path = reply.path
            record.queueWaitMs = reply.queueWait * 1000
            record.computeMs = reply.computeTime * 1000
            record.networkMs = max(0, latency - reply.queueWait - reply.computeTime) * 1000
        }
        return record
    }

    private mutating func send(_ spec: RequestSpec, attempt: Int, route: Route, replyBy: Double, now: Double) {
        let recorded = recordedAttempt(spec.requestID, attempt)
        var request = InferenceRequest(spec, attempt: attempt, vehicleID: id, replyBy: replyBy)
        var detail = recorded.detail
        if spec.pipeline > 0 && route.path == .v2v {
            let chain: String
            (request, chain) = pipelined(request, stages: spec.pipeline, first: route.target, now: now)
            attemptRoutes[AttemptKey(spec.requestID, attempt)] = chain
            detail = Self.joined(detail, chain)
        }
        out.record(.attempt(AttemptRecord(requestID: recorded.requestID, attempt: recorded.attempt, path: route.path.rawValue,
                                          target: route.target, sentAt: now, outcome: AttemptOutcome.pending.rawValue, detail: detail)))
        switch route.path {
        case .onboard:
            computeOwn(request, now: now)
        case .v2v:
            sendDirect(request, to: route.target, now: now)
        case .rsu, .macro:
            guard reachable.contains(route.target) else { return out.count("routes_without_socket") }
            out.send(Outbound(request, on: .access(node: route.target), position: position(at: now)))
        }
    }

    /// Withdraws an attempt still in flight: tells its server, or stops the on-board job.
    private mutating func cancel(requestID: String, attempt: Int, route: Route, now: Double) {
        let cancel = InferenceCancel(requestID: requestID, attempt: UInt16(clamping: attempt))
        switch route.path {
        case .onboard:
            stopOnboard(requestID: requestID, attempt: attempt, now: now)
        case .v2v:
            sendDirect(cancel, to: route.target, now: now)
        case .rsu, .macro:
            guard reachable.contains(route.target) else { return }
            out.send(Outbound(cancel, on: .access(node: route.target), position: position(at: now)))
        }
    }

    // MARK: - On-board compute

    /// Runs one of the vehicle's own attempts on board; the answer comes back as a compute event.
    private mutating func computeOwn(_ request: InferenceRequest, now: Double) {
        let attempt = Int(request.attempt)
        func refuse(_ kind: ReplyOutcome.Kind, _ why: String) -> Due {
            .onboardAnswer(requestID: request.requestID, attempt: attempt, ReplyOutcome(kind: kind, servedBy: id, path: "onboard", detail: why))
        }
        guard onboard != nil else { return schedule(refuse(.failed, "no on-board compute"), at: now) }
        var work = ComputeWork(request)
        work.stage = nil  // on board, a split request runs every layer (k = all)
        switch onboard!.admit(work, now: now) {
        case .admitted(let wakeAt), .joined(let wakeAt):
            onboardClients[AttemptKey(request.requestID, attempt)] = .own
            if let wakeAt { schedule(.compute, at: wakeAt) }
        case .rejected:
            schedule(refuse(.rejected, "full"), at: now)
        case .unsupported(let why):
            schedule(refuse(.failed, why), at: now)
        }
    }

    /// Stops an on-board attempt whose answer is no longer wanted (the compute gives its time back
    /// when no other attempt waits for the job).
    mutating func stopOnboard(requestID: String, attempt: Int, now: Double) {
        guard onboardClients.removeValue(forKey: AttemptKey(requestID, attempt)) != nil else { return }
        _ = onboard?.cancel(requestID: requestID, attempt: attempt, now: now)
    }

    /// Answers every attempt whose on-board job is done: the vehicle's own through the ledger, a
    /// neighbour's over V2V.
    mutating func completeOnboardJobs(now: Double) {
        guard let done = onboard?.completions(now: now) else { return }
        for job in done {
            if let output = job.output, job.outputIsNew { out.record(.output(OutputRecord(output, of: job, servedBy: id))) }
            for attempt in job.attempts {
                switch onboardClients.removeValue(forKey: AttemptKey(job.requestID, attempt)) {
                case .lowerStage?:
                    lowerStageDone(job.requestID, job: job, now: now)
                case .pipelineStage(let request)?:
                    pipelineStageDone(request, job: job, now: now)
                case .own?:
                    let outcome = ReplyOutcome(kind: job.failure == nil ? .completed : .failed, servedBy: id, path: "onboard",
                                               queueWait: job.queueWait, computeTime: job.computeTime, detail: job.failure ?? "",
                                               answer: job.answer)
                    apply(ledger.replied(requestID: job.requestID, attempt: attempt, outcome: outcome, now: now,
                                         candidates: candidates(now: now)), now: now)
                case .neighbour(let requester, let resultBytes)?:
                    let reply = InferenceReply(requestID: job.requestID, attempt: UInt16(clamping: attempt),
                                               status: job.failure == nil ? .completed : .failed, servedBy: id, route: [id],
                                               queueWait: job.queueWait, computeTime: job.computeTime,
                                               resultBytes: job.resultBytes(declared: resultBytes),
                                               detail: job.failure ?? "", answer: job.answer)
                    sendDirect(reply, to: requester, now: now)
                case nil:
                    break
                }
            }
        }
    }

    // MARK: - Replies and beacons from servers

    mutating func accessReceived(_ frames: [[UInt8]], now: Double) {
        guard frames.count == 2, let node = String(validating: frames[0], as: UTF8.self), reachable.contains(node),
              let envelope = FrameDecoding.envelope(frames[1], into: &out) else { return out.count("frames_bad_shape") }
        // Sent ahead of the instant its link delivers it (`ServerCore.sendAhead`): held until then.
        if let due = envelope.deliverAt, due > now {
            guard due <= now + beaconLead + Self.leadTolerance else { return out.count("access_stamped_ahead_refused") }
            return schedule(.access(frames), at: due)
        }
        // A reply over an RSU's cell only reaches a vehicle still in that cell.
        let rsu = map.rsu(node)
        if let rsu, !inRange(of: rsu, at: now) { return out.count("replies_out_of_range") }
        if envelope.kind == .analyticsAck {
            guard let ack = FrameDecoding.payload(AnalyticsAck.self, envelope, into: &out) else { return }
            out.observeArrival(envelope, link: rsu != nil ? .cellularDown : .macroDown, now: now)
            return analyticsAcknowledged(ack)
        }
        if envelope.kind == .fedDown {
            guard let message = FrameDecoding.payload(FedDown.self, envelope, into: &out) else { return }
            out.observeArrival(envelope, link: rsu != nil ? .cellularDown : .macroDown, now: now)
            return fedHandle(.down(message), now: now)
        }
        guard let reply = FrameDecoding.payload(InferenceReply.self, envelope, into: &out) else { return out.count("frames_bad_shape") }
        out.observeArrival(envelope, link: rsu != nil ? .cellularDown : .macroDown, now: now)
        if relayReplied(reply, now: now) { return }
        received(reply, over: rsu != nil ? AccessPath.rsu.rawValue : AccessPath.macro.rawValue, now: now)
    }

    /// A reply to one of the vehicle's own attempts, over `access` ("rsu", "macro" or "v2v").
    mutating func received(_ reply: InferenceReply, over access: String, now: Double) {
        let kind: ReplyOutcome.Kind = switch reply.status {
        case .completed: .completed
        case .rejected: .rejected
        case .failed: .failed
        }
        // Hops after the first: servers by their role, vehicles (a pipeline's stages) as v2v.
        let path = [access] + reply.route.dropFirst().map { hop in map.role(of: hop)?.rawValue ?? AccessPath.v2v.rawValue }
        let outcome = ReplyOutcome(kind: kind, servedBy: reply.servedBy, path: path.joined(separator: ">"),
                                   queueWait: reply.queueWait, computeTime: reply.computeTime, detail: reply.detail, answer: reply.answer)
        let before = ledger.discardedReplies
        apply(ledger.replied(requestID: reply.requestID, attempt: Int(reply.attempt), outcome: outcome, now: now,
                             candidates: candidates(now: now)), now: now)
        if ledger.discardedReplies > before { out.count("replies_discarded_late") }
    }

    mutating func serverBeacon(_ envelope: Envelope, now: Double) {
        if envelope.sender == map.cloud.id, let macro = map.macro {
            // The cloud beacons the macro cell's load, heard within the macro cell.
            guard position(at: now).distance(to: macro.position) <= macro.radius else { return }
            macroLoad = FrameDecoding.payload(Beacon.self, envelope, into: &out)
            return
        }
        guard let rsu = map.rsu(envelope.sender), let beacon = FrameDecoding.payload(Beacon.self, envelope, into: &out) else { return }
        // RSU beacons are broadcast over the cell: heard only within its radius.
        let heard = inRange(of: rsu, at: now)
        out.meter(.rsuBeacon, .beacon, heard ? .deliver(at: now) : .outOfRange, bytes: envelope.payload.count)
        guard heard else { return }
        rsuLoad[rsu.id] = beacon
        if let change = liveness.heard(rsu.id, incarnation: envelope.incarnation, at: now), change.from != .alive {
            out.record(.detection(DetectionRecord(observer: id, peer: rsu.id, state: change.to.rawValue, at: now)))
        }
    }
}
