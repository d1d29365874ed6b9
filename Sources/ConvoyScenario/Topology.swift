import ConvoyCore

extension MapSpec {
    /// Who forwards to whom: the graph of next hops a server sends what it cannot serve to. An RSU
    /// forwards to the edge server that lists it, an edge server to the cloud; the cloud to nobody.
    public var nextHops: [String: String] {
        var graph: [String: String] = [:]
        for rsu in rsus { graph[rsu.id] = rsu.edge }
        for edge in edges { graph[edge.id] = cloud.id }
        return graph
    }

    /// The next hop of a server (nil: none).
    public func nextHop(of id: String) -> String? { nextHops[id] }
}
