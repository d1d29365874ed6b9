import ConvoyReasoning

extension MapSpec {
    /// Expected seconds of compute, plus the wired hops to reach it, behind each RSU and the cloud
    /// for a request of `model` — what a vehicle's path policy adds to the upload time. An RSU
    /// counts its own compute when it would answer within `budget` (as `ServingDecision` does),
    /// else its edge server's (with the backhaul both ways), else the cloud's (with the WAN too).
    /// Idle servers are assumed; advertised queues are accounted separately.
    public func serviceTimes(model: String, inputTokens: Int, outputTokens: Int, budget: Double) -> [String: Double] {
        func time(_ compute: ComputeSpec?) -> Double? {
            compute?.inferenceTime(model: model, inputTokens: inputTokens, outputTokens: outputTokens)
        }
        let cloudTime = time(cloud.compute) ?? 0
        var times = [cloud.id: cloudTime]
        for rsu in rsus {
            if let own = time(rsu.compute), own <= budget {
                times[rsu.id] = own
            } else if let edgeID = rsu.edge, let edge = edge(edgeID) {
                let backhaul = 2 * backhaul(of: rsu).latency
                times[rsu.id] = backhaul + (time(edge.compute).flatMap { $0 <= budget ? $0 : nil } ?? (2 * links.wan.latency + cloudTime))
            } else {
                times[rsu.id] = time(rsu.compute) ?? 0
            }
        }
        return times
    }
}

extension MapSpec {
    /// The device that computes a request of `model` sent to `rsu`, and the one-way wired latency
    /// to it (by the same rule as `serviceTimes`); nil if nothing behind the RSU runs the model.
    public func server(behind rsu: RSUSpec, model: String, inputTokens: Int, outputTokens: Int,
                       budget: Double) -> (device: DeviceProfile, latency: Double)? {
        func usable(_ compute: ComputeSpec?) -> DeviceProfile? {
            guard let compute, let time = compute.inferenceTime(model: model, inputTokens: inputTokens, outputTokens: outputTokens),
                  time <= budget else { return nil }
            return compute.profile
        }
        if let own = usable(rsu.compute) { return (own, 0) }
        guard let edgeID = rsu.edge, let edge = edge(edgeID) else { return nil }
        let backhaul = backhaul(of: rsu).latency
        if let device = usable(edge.compute) { return (device, backhaul) }
        return (cloud.compute.profile, backhaul + links.wan.latency)
    }
}
