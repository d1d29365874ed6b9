import ConvoyCore
import ConvoyReasoning
import ConvoyScenario

/// What the vehicle's path policy ranks: RSUs in range, the macro cell, on-board compute and
/// neighbours, as the vehicle knows them now.
extension VehicleCore {
    /// Seconds a neighbour stays known without a beacon.
    static let neighbourTimeout = 3.0

    /// What the vehicle knows of its paths at `now` (RSUs in range, macro cell, neighbours).
    func pathContext(now: Double) -> PathContext {
        let here = position(at: now)
        let macro = map.macro.map {
            MacroView(position: $0.position, radius: $0.radius, target: map.cloud.id, activeVehicles: Int(macroLoad?.activeVehicles ?? 0),
                      queued: Int(macroLoad?.queued ?? 0))
        }
        let neighbourViews = neighbours.filter { now - $0.value.heardAt < Self.neighbourTimeout }.map { id, n in
            NeighbourView(id: id, position: n.position, freeSlots: n.freeSlots, uplinkRate: n.uplinkRate)
        }
        return PathContext(position: here, rsus: rsuViews(at: here), macro: macro, cellular: map.links.cellular,
                           macroCellular: map.links.macro, wanLatency: map.links.wan.latency, neighbours: neighbourViews,
                           v2v: map.links.v2v, prices: scenario.prices)
    }

    /// The candidate routes for every request at `now`, best first (per request: its payload,
    /// deadline and compute), from `base` (the paths at `now`) and the current on-board load.
    func candidates(_ base: PathContext, now: Double) -> RequestLedger.Candidates {
        var base = base
        return { [openRecords, serviceTimes, map, onboard, policy, id, scenario, ledger, subtaskOf, seed] spec in
            base.payloadBytes = spec.payloadBytes
            let record = openRecords[subtaskOf[spec.requestID]?.parent ?? spec.requestID]
            base.budget = max(0, (record?.deadlineAt ?? now + spec.deadline) - now)
            base.serviceTime = serviceTimes[spec.task]
                ?? map.serviceTimes(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                    budget: ledger.config.attemptTimeout)
            base.neighbourComputeTime = Self.pipelineTime(for: spec, onboard: scenario.onboard)
                ?? Self.onboardTime(for: spec, onboard: scenario.onboard)
            if let onboard {
                let finish = onboard.estimatedFinish(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens, now: now)
                base.onboard = OnboardView(id: id, finishIn: finish.map { $0 - now })
            }
            let ranked = if let expert = subtaskOf[spec.requestID]?.expert {
                Self.expertRoutes(expert, vehicle: id, seed: seed, context: base, ranked: policy.rank(base))
            } else if spec.pipeline > 0 {
                Self.pipelineRoutes(stages: spec.pipeline, context: base, ranked: policy.rank(base))
            } else {
                Self.splitRoutes(policy.rank(base), split: spec.split, model: spec.model, context: base)
            }
            return ranked.map { route in
                var annotated = route
                annotated.expectedLatency = base.expectedLatency(route)
                return annotated
            }
        }
    }

    /// The candidate routes at `now` from what the vehicle knows now.
    func candidates(now: Double) -> RequestLedger.Candidates { candidates(pathContext(now: now), now: now) }

    /// Caches the expected compute behind each server for the task of `spec` (used by `candidates`).
    mutating func cacheServiceTimes(for spec: RequestSpec) {
        guard serviceTimes[spec.task] == nil else { return }
        serviceTimes[spec.task] = map.serviceTimes(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                                   budget: ledger.config.attemptTimeout)
    }

    /// The RSUs whose radius covers `here`, as the vehicle knows them (liveness, and the advertised
    /// load unless `signalOnly`).
    private func rsuViews(at here: Position, signalOnly: Bool = false) -> [RSUView] {
        map.rsus.filter { here.distance(to: $0.position) <= $0.radius }.map { rsu in
            RSUView(id: rsu.id, position: rsu.position, radius: rsu.radius, alive: liveness.isAlive(rsu.id),
                    activeVehicles: signalOnly ? 0 : Int(rsuLoad[rsu.id]?.activeVehicles ?? 0),
                    queued: signalOnly ? 0 : Int(rsuLoad[rsu.id]?.queued ?? 0), cellular: rsu.cellular)
        }
    }

    /// Compute seconds of `spec` on an idle on-board device (every vehicle has the same), nil if none or it does not fit.
    static func onboardTime(for spec: RequestSpec, onboard: ComputeSpec?) -> Double? {
        onboard?.inferenceTime(model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens)
    }

    func inRange(of rsu: RSUSpec, at now: Double) -> Bool {
        position(at: now).distance(to: rsu.position) <= rsu.radius
    }

    /// The alive RSUs in range and the rate the vehicle gets at each: its share of the advertised
    /// load, or (`signalOnly`) the whole cell's, which depends on the radio path alone.
    private func usableRSUs(now: Double, signalOnly: Bool = false) -> [(id: String, rate: Double)] {
        let here = position(at: now)
        return PathContext(position: here, rsus: rsuViews(at: here, signalOnly: signalOnly), macro: nil, cellular: map.links.cellular)
            .usableRSUs.map { ($0.rsu.id, $0.rate) }
    }

    private static func best(_ rsus: [(id: String, rate: Double)]) -> (id: String, rate: Double)? {
        rsus.max { ($0.rate, $1.id) < ($1.rate, $0.id) }
    }

    /// The best alive RSU in range and the rate the vehicle gets there (for relaying and its V2V beacon).
    func bestRSU(now: Double) -> (id: String, rate: Double)? { Self.best(usableRSUs(now: now)) }

    /// The rate a better RSU's signal must offer, as a multiple of the serving RSU's, before the
    /// vehicle hands over (LTE's A3 offset, as a rate; about 1 dB at the cell's middle SNRs).
    static let handoverMargin = 1.1

    /// The RSU the vehicle is attached to (its serving cell, and the way of its fine-tuning and
    /// analytics traffic), chosen like a cellular handover: by signal, not load (with the load
    /// each RSU advertises, vehicles between two RSUs ping-pong as the load follows them), kept
    /// while alive and in range until another offers `handoverMargin` times its rate. Requests
    /// still choose their RSU per request, with the load (`candidates`).
    func servingRSU(now: Double) -> String? {
        let usable = usableRSUs(now: now, signalOnly: true)
        guard let best = Self.best(usable) else { return nil }
        if let current = servingCell.cell, let kept = usable.first(where: { $0.id == current }), best.rate < kept.rate * Self.handoverMargin {
            return current
        }
        return best.id
    }

    func neighbourReachable(_ id: String, from here: Position, now: Double) -> Bool {
        guard let n = neighbours[id] else { return false }
        return now - n.heardAt < Self.neighbourTimeout && n.position.distance(to: here) <= map.links.v2v.rangeM
    }
}
