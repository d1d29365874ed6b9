import ConvoyCore
import ConvoyLinks
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// A message a vehicle hears over V2V.
enum V2VMessage: Sendable {
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
extension VehicleCore {
    /// The path recorded for a request answered by a neighbour's shared result.
    public static let cachePath = "v2v-cache"

    /// Seconds a neighbour computing on board keeps for its reply to cross V2V before the reply-by.
    static let v2vReturnSlack = 0.1

    /// Emulated seconds a message may be stamped ahead of the receiver's clock beyond the lead
    /// (the two clocks are the same wall clock; this covers the rounding of the envelope's stamp).
    static let leadTolerance = 0.001

    static func cacheHit(_ shared: SharedResult) -> ReplyOutcome {
        ReplyOutcome(kind: .completed, servedBy: shared.servedBy, path: cachePath, answer: shared.answer)
    }

    /// Whether the beacon of `instant` leaves `beaconLead` ahead of it: only while the trace still
    /// covers it and the run is not draining (a vehicle may stop at any moment then, and must not
    /// be heard after it stopped).
    func sendsAhead(_ instant: Double) -> Bool {
        beaconLead > 0 && drainUntil == nil && instant < lastSampleTime
    }

    /// Arms the next beacon's timer: `beaconLead` ahead of its instant when it may leave early.
    mutating func armBeacon(now: Double) {
        out.arm(Timers.v2v, at: sendsAhead(nextBeaconAt) ? max(now, nextBeaconAt - beaconLead) : nextBeaconAt)
    }

    /// Broadcasts the beacon of `instant` (now, or up to `beaconLead` later): where the vehicle is
    /// then, from its trace, and what it can offer as the vehicle knows it now.
    mutating func v2vBeacon(at instant: Double, now: Double) {
        let here = position(at: instant)
        let sample = trajectory.samples.last { $0.time <= instant }
        let freeSlots = onboard.map { $0.waiting(now: instant) == 0 ? $0.slots - $0.busy(now: instant) : 0 } ?? 0
        let beacon = V2VBeacon(speed: sample?.speed ?? 0, heading: sample?.angle ?? 0, freeSlots: UInt8(clamping: freeSlots),
                               uplinkRate: bestRSU(now: instant)?.rate ?? 0)
        out.send(Outbound(beacon, on: .bus(topic: topics.v2v(at: here)), position: here, sentAt: instant > now ? instant : nil))
        neighbours = neighbours.filter { now - $0.value.heardAt < Self.neighbourTimeout }
        out.append(.setCounter("v2v_neighbours", neighbours.count))
        sharedResults = sharedResults.filter { now - $0.value.computedAt <= tasks.freshness }
    }

    mutating func sendDirect<P: WirePayload>(_ payload: P, to vehicle: String, now: Double) {
        out.send(Outbound(payload, on: .bus(topic: Topic.direct(vehicle)), position: position(at: now)))
    }

    mutating func broadcastReceived(_ frames: [[UInt8]], now: Double) {
        // The bus delivers [topic, envelope]: any other shape is counted and dropped.
        guard frames.count == 2 else { return out.count("frames_bad_shape") }
        guard let envelope = FrameDecoding.envelope(frames[1], into: &out) else { return }
        if envelope.kind == .beacon { return serverBeacon(envelope, now: now) }
        v2vReceived(envelope, now: now)
    }

    /// Decodes a V2V message and holds it until the V2V link delivers it (or drops it).
    private mutating func v2vReceived(_ envelope: Envelope, now: Double) {
        guard envelope.sender != id, let from = envelope.position else { return }
        // Only beacons leave ahead of their instant, and never by more than the run's lead.
        guard envelope.sentAt <= now + beaconLead + Self.leadTolerance, envelope.kind == .v2vBeacon || envelope.sentAt <= now + Self.leadTolerance
        else { return out.count("v2v_stamped_ahead_refused") }
        let message: V2VMessage
        var virtualBytes = 0
        switch envelope.kind {
        case .v2vBeacon:
            guard let beacon = FrameDecoding.payload(V2VBeacon.self, envelope, into: &out) else { return }
            message = .beacon(beacon)
        case .request:
            guard let request = FrameDecoding.payload(InferenceRequest.self, envelope, into: &out) else { return }
            message = .request(request)
            virtualBytes = Int(request.payloadBytes)
        case .reply:
            guard let reply = FrameDecoding.payload(InferenceReply.self, envelope, into: &out) else { return }
            message = .reply(reply)
            virtualBytes = reply.virtualResultBytes
        case .cancel:
            guard let cancel = FrameDecoding.payload(InferenceCancel.self, envelope, into: &out) else { return }
            message = .cancel(cancel)
        case .sharedResult:
            guard let shared = FrameDecoding.payload(SharedResult.self, envelope, into: &out) else { return }
            message = .shared(shared)
            virtualBytes = shared.virtualResultBytes
        default:
            return out.count("unexpected_kind_\(envelope.kind.rawValue)")
        }
        let bytes = envelope.payload.count + 64 + virtualBytes
        // The link at its instant: where the receiver is when the message is sent (a beacon sent ahead).
        let outcome = V2VLink.receive(from: from, to: position(at: max(now, envelope.sentAt)), bytes: bytes, sentAt: envelope.sentAt,
                                      parameters: map.links.v2v, rng: &rng)
        out.meter(.v2v, envelope.kind, outcome, bytes: bytes)
        guard case .deliver(let at) = outcome else { return }
        if case .beacon(let beacon) = message {
            beaconsReceived += 1
            if beaconsReceived % Self.measuredBeaconEvery != 1 {
                if at <= now { return v2vDelivered(message, from: envelope.sender, position: from, now: now) }
                let held = HeldBeacon(at: at, sender: envelope.sender, position: from, beacon: beacon)
                return heldBeacons.insert(held, at: heldBeacons.firstIndex { $0.at > at } ?? heldBeacons.endIndex)
            }
        }
        // Already due (the bus took longer than the radio would have): handled now, without a timer.
        if at <= now { return v2vArrived(message, envelope, modelledAt: at, now: now) }
        schedule(.v2v(message, envelope, modelledAt: at), at: at)
    }

    /// A neighbour's beacon only updates what the vehicle knows of it, which only its next event
    /// reads: so most beacons get no wake-up of their own. Each is applied, as heard at its
    /// instant, at the start of the first event at or after that instant — every decision sees
    /// exactly the beacons the link delivered by then. One in `measuredBeaconEvery` is delivered
    /// on a timer instead and sampled against its modelled instant (the only beacons sampled), so
    /// the fidelity figures still measure how late a beacon would be acted on.
    static let measuredBeaconEvery = 20

    struct HeldBeacon {
        var at: Double
        var sender: String
        var position: Position
        var beacon: V2VBeacon
    }

    mutating func applyHeldBeacons(upTo now: Double) {
        guard let first = heldBeacons.first, first.at <= now else { return }
        let due = heldBeacons.prefix { $0.at <= now }
        for held in due { v2vDelivered(.beacon(held.beacon), from: held.sender, position: held.position, now: held.at) }
        heldBeacons.removeFirst(due.count)
    }

    /// The V2V link delivers `message` (modelled for `modelledAt`).
    mutating func v2vArrived(_ message: V2VMessage, _ envelope: Envelope, modelledAt: Double, now: Double) {
        out.append(.observe(.v2v, envelope.kind, sentAt: envelope.sentAt, modelledAt: modelledAt, actualAt: now))
        v2vDelivered(message, from: envelope.sender, position: envelope.position!, now: now)
    }

    mutating func v2vDelivered(_ message: V2VMessage, from sender: String, position: Position, now: Double) {
        switch message {
        case .beacon(let beacon):
            neighbours[sender] = Neighbour(position: position, heardAt: now, freeSlots: Int(beacon.freeSlots), uplinkRate: beacon.uplinkRate)
        case .request(let request):
            // Only a vehicle of the run, for itself (the bus checked that the sender holds that vehicle's
            // key) — or a pipeline's previous stage, handing on a request of a vehicle of the run.
            let handedOn = request.sliceEnd > 0 && request.route.last == sender
            if let vehicles, !vehicles.contains(sender) || (!handedOn && request.vehicleID != sender)
                || !vehicles.contains(request.vehicleID) || !request.requestID.hasPrefix(request.vehicleID + "/") {
                return out.count("v2v_requests_refused_unknown_sender")
            }
            if request.sliceEnd > 0 { return servePipelineStage(request, now: now) }
            serveNeighbour(request, from: sender, now: now)
        case .reply(let reply):
            received(reply, over: AccessPath.v2v.rawValue, now: now)
        case .cancel(let cancel):
            neighbourCancelled(cancel, now: now)
        case .shared(let shared):
            sharedResultHeard(shared, now: now)
        }
    }

    // MARK: - Serving neighbours

    /// A neighbour's request, decided like a server decides (`ServingDecision`): computed on board
    /// if that answers in time (with `v2vReturnSlack` to spare), else relayed to this vehicle's
    /// best RSU, else refused at once so the neighbour fails over.
    private mutating func serveNeighbour(_ request: InferenceRequest, from requester: String, now: Double) {
        let rsu = bestRSU(now: now)?.id
        let work = ComputeWork(request)
        let decision = ServingDecision.decide(compute: &onboard, nextHopAvailable: rsu.map(reachable.contains) ?? false, work: work,
                                              replyBy: request.deadline, returnSlack: Self.v2vReturnSlack, lateCompute: false, now: now)
        switch decision {
        case .serve(let wakeAt, _):
            out.count("v2v_served")
            onboardClients[AttemptKey(request.requestID, Int(request.attempt))] = .neighbour(requester: requester,
                                                                                             resultBytes: request.resultBytes)
            if let wakeAt { schedule(.compute, at: wakeAt) }
        case .forward:
            out.count("v2v_relayed")
            relays.relayed(request, from: requester, to: rsu!)
            out.send(Outbound(request, on: .access(node: rsu!), position: position(at: now)))
        case .rejected, .failed:
            sendDirect(InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .failed, servedBy: id,
                                      route: [id], detail: "neighbour-cannot-serve"), to: requester, now: now)
        }
    }

    /// A reply from an RSU to a request relayed for a neighbour goes back to it over V2V. Returns
    /// false if the reply is not for a relayed request.
    mutating func relayReplied(_ reply: InferenceReply, now: Double) -> Bool {
        guard let entry = relays.replied(reply) else { return false }
        var back = reply
        back.route = [id] + reply.route
        sendDirect(back, to: entry.client, now: now)
        return true
    }

    /// The RSU relayed requests went to died: refuse them, so the neighbours fail over at once.
    mutating func relayHopLost(_ rsu: String, now: Double) {
        for entry in relays.hopLost(rsu) {
            sendDirect(RelayTable.refusal(entry, by: id, route: [id], detail: "\(rsu) unreachable"), to: entry.client, now: now)
        }
    }

    private mutating func neighbourCancelled(_ cancel: InferenceCancel, now: Double) {
        if let entry = relays.withdrawn(requestID: cancel.requestID, attempt: Int(cancel.attempt)) {
            out.send(Outbound(cancel, on: .access(node: entry.hop), position: position(at: now)))
        } else {
            stopOnboard(requestID: cancel.requestID, attempt: Int(cancel.attempt), now: now)
        }
    }

    // MARK: - Result sharing

    /// Broadcasts the result of a completed shareable request to the vehicles around, under the key
    /// of where it was asked.
    mutating func share(_ record: RequestRecord, task: TaskSpec, answer: String, now: Double) {
        let here = position(at: now)
        let key = tasks.sharingKey(task: task.name, at: position(at: record.createdAt))
        let shared = SharedResult(requestID: record.requestID, key: key, computedAt: now, servedBy: record.servedBy ?? id,
                                  resultBytes: UInt32(clamping: answer.isEmpty ? task.resultBytes : answer.utf8.count), answer: answer)
        out.send(Outbound(shared, on: .bus(topic: topics.v2v(at: here)), position: here))
        out.count("results_shared")
    }

    func freshSharedResult(_ key: String, now: Double) -> SharedResult? {
        guard let shared = sharedResults[key], now - shared.computedAt <= tasks.freshness else { return nil }
        return shared
    }

    /// Keeps a neighbour's result and answers the open requests with the same key.
    private mutating func sharedResultHeard(_ shared: SharedResult, now: Double) {
        guard now - shared.computedAt <= tasks.freshness else { return out.count("shared_results_stale") }
        sharedResults[shared.key] = shared
        for id in ledger.openRequestIDs where ledger.spec(of: id)?.sharingKey == shared.key {
            apply(ledger.satisfied(requestID: id, by: Self.cacheHit(shared), now: now), now: now)
        }
    }
}
