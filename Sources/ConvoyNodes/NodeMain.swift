import ConvoyCore
import ConvoyRuntime
import ConvoyTransport
import Foundation

/// Entry point of a node process (`convoy node …`).
public enum NodeMain {
    public static func run(role: NodeRole, id: String, runDirectory: String, incarnation: UInt32, trajectory: String?) async throws {
        let config = try RunConfig.load(runDirectory: runDirectory)
        ProcessSignals.dieWithParent(expectedParent: config.launcherPID)
        // This incarnation's secrets, from the 0600 file the launcher wrote just before starting it.
        let keys = try config.security.map { _ in try NodeKeys.read(path: config.keyPath(of: id)) }
        switch role {
        case .vehicle:
            guard let trajectory else { throw InputError(file: runDirectory, field: "--trajectory", "a vehicle needs its trajectory file") }
            try await VehicleNode.run(config: config, id: id, trajectoryPath: trajectory, keys: keys)
        case .rsu, .edge, .cloud:
            try await ServerNode.run(config: config, id: id, incarnation: incarnation, keys: keys)
        }
    }
}

/// A node's CurveZMQ settings for each of its sockets (nil with `--no-curve`).
struct NodeSecurity {
    let keys: NodeKeys
    let run: RunSecurity

    init?(config: RunConfig, keys: NodeKeys?) throws {
        guard let run = config.security else { return nil }
        guard let keys else { throw InputError(file: config.runDirectory, "the run uses CurveZMQ but this node has no key file") }
        self.keys = keys
        self.run = run
    }

    /// As a client of the launcher (bus, recorder).
    var launcher: SocketSecurity { .client(keys.client, serverKey: run.launcherKey) }

    /// As a client of server `node`.
    func client(of node: String) throws -> SocketSecurity { .client(keys.client, serverKey: try serverKey(of: node)) }

    func serverKey(of node: String) throws -> String {
        guard let key = run.serverKeys[node] else { throw InputError(file: "run.json", field: "security", "no server key for \(node)") }
        return key
    }

    /// As the server of `domain` (an RSU's, edge server's or cloud's ROUTER).
    func server(_ domain: ZAPDomain) throws -> SocketSecurity {
        guard let server = keys.server else { throw InputError(file: "run.json", field: "security", "\(keys.id) has no server key") }
        return .server(server, domain: domain.rawValue)
    }
}
