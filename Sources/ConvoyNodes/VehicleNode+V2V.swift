import ConvoyCore
import ConvoyLinks
import ConvoyReasoning
import ConvoyWire

/// A message a vehicle hears over V2V.
enum V2VMessage {
    case beacon(V2VBeacon)
    case request(InferenceRequest)
    case reply(InferenceReply)
    case cancel(InferenceCancel)
    case shared(SharedResult)
}

/// V2V: beacons that advertise what the vehicle can do for its neighbours, requests served on
/// board or relayed to an RSU for a neighbour, and shared results.
///
/// Everything a vehicle sends over V2V goes on the broadcast bus — beacons and shared results on
/// its grid cell's topic, requests, replies and cancels on the addressee's `direct/<id>/` topic —
/// and the receiver applies the V2V link (range, rate, packet errors) before acting on it.
extension VehicleNode {
    /// The path recorded for a request answered by a neighbour's shared result.
    static let cachePath = "v2v-cache"

    /// Seconds a neighbour computing on board keeps for its reply to cross V2V before the reply-by.
    static let v2vReturnSlack = 0.1

    static func cacheHit(_ shared: SharedResult) -> ReplyOutcome {
        ReplyOutcome(kind: .completed, servedBy: shared.servedBy, path: cachePath)
    }

    func neighbourReachable(_ id: String, from here: Position, now: Double) -> Bool {
        guard let n = neighbours[id] else { return false }
        return now - n.heardAt < Self.neighbourTimeout && n.position.distance(to: here) <= map.links.v2v.rangeM
    }

    func v2vBeacon(now: Double) {
        let here = position(at: now)
        let sample = trajectory.samples.last { $0.time <= now }
        let freeSlots = onboard.map { $0.waiting(now: now) == 0 ? $0.slots - $0.busy(now: now) : 0 } ?? 0
        let beacon = V2VBeacon(speed: sample?.speed ?? 0, heading: sample?.angle ?? 0, freeSlots: UInt8(clamping: freeSlots),
                               uplinkRate: bestRSU(now: now)?.rate ?? 0)
        shell.publish(topics.v2v(at: here), beacon, position: here, on: Sockets.bus)
        neighbours = neighbours.filter { now - $0.value.heardAt < Self.neighbourTimeout }
        shell.setCounter("v2v_neighbours", neighbours.count)
        sharedResults = sharedResults.filter { now - $0.value.computedAt <= workload.freshness }
    }

    func sendDirect<P: WirePayload>(_ payload: P, to vehicle: String, now: Double) {
        shell.publish(Topic.direct(vehicle), payload, position: position(at: now), on: Sockets.bus)
    }

    /// Decodes a V2V message and holds it until the V2V link delivers it (or drops it).
    func v2vReceived(_ envelope: Envelope, now: Double) {
        guard envelope.sender != shell.id, let from = envelope.position else { return }
        let message: V2VMessage
        var virtualBytes = 0
        switch envelope.kind {
        case .v2vBeacon:
            guard let beacon = shell.decodePayload(V2VBeacon.self, envelope) else { return }
            message = .beacon(beacon)
        case .request:
            guard let request = shell.decodePayload(InferenceRequest.self, envelope) else { return }
            message = .request(request)
            virtualBytes = Int(request.payloadBytes)
        case .reply:
            guard let reply = shell.decodePayload(InferenceReply.self, envelope) else { return }
            message = .reply(reply)
            virtualBytes = Int(reply.resultBytes)
        case .cancel:
            guard let cancel = shell.decodePayload(InferenceCancel.self, envelope) else { return }
            message = .cancel(cancel)
        case .sharedResult:
            guard let shared = shell.decodePayload(SharedResult.self, envelope) else { return }
            message = .shared(shared)
            virtualBytes = Int(shared.resultBytes)
        default:
            return shell.count("unexpected_kind_\(envelope.kind.rawValue)")
        }
        let outcome = V2VLink.receive(from: from, to: position(at: now), bytes: envelope.payload.count + 64 + virtualBytes,
                                      sentAt: envelope.sentAt, parameters: map.links.v2v, rng: &shell.rng)
        shell.meter("v2v", envelope.kind, outcome)
        if case .deliver(let at) = outcome {
            due[shell.scheduleOneShot(at: at)] = .v2v(message, envelope, modelledAt: at)
        }
    }

    func v2vDelivered(_ message: V2VMessage, from sender: String, position: Position, now: Double) {
        switch message {
        case .beacon(let beacon):
            neighbours[sender] = Neighbour(position: position, heardAt: now, freeSlots: Int(beacon.freeSlots), uplinkRate: beacon.uplinkRate)
        case .request(let request):
            serveNeighbour(request, from: sender, now: now)
        case .reply(let reply):
            received(reply, over: "v2v", now: now)
        case .cancel(let cancel):
            neighbourCancelled(cancel, now: now)
        case .shared(let shared):
            sharedResultHeard(shared, now: now)
        }
    }

    // MARK: - Serving neighbours

    /// A neighbour's request: computed on board if that answers in time (with `v2vReturnSlack` to
    /// spare), else relayed to this
    /// vehicle's best RSU, else refused at once so the neighbour fails over.
    private func serveNeighbour(_ request: InferenceRequest, from requester: String, now: Double) {
        let attempt = Int(request.attempt)
        if let finish = onboard?.estimatedFinish(model: request.model, inputTokens: Int(request.inputTokens),
                                                 outputTokens: Int(request.outputTokens), now: now),
           finish + Self.v2vReturnSlack <= request.deadline,
           case .admitted(let job)? = onboard?.admit(requestID: request.requestID, model: request.model,
                                                     inputTokens: Int(request.inputTokens), outputTokens: Int(request.outputTokens),
                                                     now: now) {
            shell.count("compute_ms", by: Int((job.computeTime * 1000).rounded()))
            shell.count("v2v_served")
            let reply = InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .completed, servedBy: shell.id,
                                       route: [shell.id], queueWait: job.queueWait, computeTime: job.computeTime,
                                       resultBytes: request.resultBytes)
            let timer = shell.scheduleOneShot(at: job.finishAt)
            due[timer] = .neighbour(reply, requester: requester)
            onboardTimers[Self.key(request.requestID, attempt)] = timer
        } else if let rsu = bestRSU(now: now)?.id, reachable.contains(rsu) {
            shell.count("v2v_relayed")
            relayed[Self.key(request.requestID, attempt)] = (request, requester, rsu)
            shell.send([Array(rsu.utf8), shell.envelope(request, position: position(at: now))], on: Sockets.access)
        } else {
            refuse(request, to: requester, why: "neighbour-cannot-serve", now: now)
        }
    }

    /// Answers a neighbour's attempt with `failed` at once, so it fails over without a time-out.
    private func refuse(_ request: InferenceRequest, to requester: String, why: String, now: Double) {
        sendDirect(InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .failed, servedBy: shell.id,
                                  route: [shell.id], detail: why), to: requester, now: now)
    }

    /// A reply from an RSU to a request relayed for a neighbour goes back to it over V2V. Returns
    /// false if the reply is not for a relayed request.
    func relayReplied(_ reply: InferenceReply, now: Double) -> Bool {
        guard let relay = relayed.removeValue(forKey: Self.key(reply.requestID, Int(reply.attempt))) else { return false }
        var back = reply
        back.route = [shell.id] + reply.route
        sendDirect(back, to: relay.requester, now: now)
        return true
    }

    /// The RSU relayed requests went to died: refuse them, so the neighbours fail over at once.
    func relayTargetLost(_ rsu: String, now: Double) {
        for (key, relay) in relayed where relay.rsu == rsu {
            relayed[key] = nil
            refuse(relay.request, to: relay.requester, why: "\(rsu) unreachable", now: now)
        }
    }

    private func neighbourCancelled(_ cancel: InferenceCancel, now: Double) {
        let key = Self.key(cancel.requestID, Int(cancel.attempt))
        if let relay = relayed.removeValue(forKey: key) {
            shell.send([Array(relay.rsu.utf8), shell.envelope(cancel, position: position(at: now))], on: Sockets.access)
        } else {
            stopOnboard(requestID: cancel.requestID, attempt: Int(cancel.attempt), now: now)
        }
    }

    // MARK: - Result sharing

    /// Broadcasts the result of a completed shareable request to the vehicles around, under the key
    /// of where it was asked.
    func share(_ record: RequestRecord, task: TaskSpec, now: Double) {
        let here = position(at: now)
        let key = workload.sharingKey(task: task.name, at: position(at: record.createdAt))
        let shared = SharedResult(requestID: record.requestID, key: key, computedAt: now,
                                  servedBy: record.servedBy ?? shell.id, resultBytes: UInt32(task.resultBytes))
        shell.publish(topics.v2v(at: here), shared, position: here, on: Sockets.bus)
        shell.count("results_shared")
    }

    func freshSharedResult(_ key: String, now: Double) -> SharedResult? {
        guard let shared = sharedResults[key], now - shared.computedAt <= workload.freshness else { return nil }
        return shared
    }

    /// Keeps a neighbour's result and answers the open requests with the same key.
    private func sharedResultHeard(_ shared: SharedResult, now: Double) {
        guard now - shared.computedAt <= workload.freshness else { return shell.count("shared_results_stale") }
        sharedResults[shared.key] = shared
        for id in ledger.openRequestIDs where ledger.spec(of: id)?.sharingKey == shared.key {
            apply(ledger.satisfied(requestID: id, by: Self.cacheHit(shared), now: now))
        }
    }
}
