import ConvoyCore
import ConvoyRuntime
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation
import Synchronization

/// A run's CurveZMQ keys, made and kept by the launcher: its own server key pair (bus, recorder,
/// control), one server key pair per RSU, edge server and cloud for the run, and one client key
/// pair per node per incarnation, issued just before the node starts (`issue`). The registry of
/// admitted public keys lives here (the launcher's ZAP handlers ask it) and in
/// `RUN_DIR/keys/registry.json` (the nodes' ZAP handlers read it).
final class Keyring: Sendable {
    let launcher: CurveKeyPair
    let control: CurveKeyPair
    let servers: [String: CurveKeyPair]
    private let registry = Mutex(KeyRegistry())
    private let registryPath: String

    /// The public half, for `run.json`.
    let security: RunSecurity

    init(map: MapSpec, clients: [String], registryPath: String) throws {
        guard CurveKeyPair.isAvailable else {
            throw LaunchError.cannotPrepare(registryPath, reason: "this libzmq has no CURVE support (built without libsodium); "
                                            + "use --no-curve to run without authentication")
        }
        launcher = try .generate()
        control = try .generate()
        var servers: [String: CurveKeyPair] = [:]
        for id in [map.cloud.id] + map.rsus.map(\.id) + map.edges.map(\.id) { servers[id] = try .generate() }
        self.servers = servers
        self.registryPath = registryPath
        security = RunSecurity(launcherKey: launcher.publicKey, serverKeys: servers.mapValues(\.publicKey), clients: clients)
        registry.withLock { $0.admit(control.publicKey, for: KeyHolder(id: "control", kind: .control)) }
    }

    /// The identity of a client presenting `key` in `domain` (a ZAP verdict).
    func authorize(domain: String, key: String) -> String? {
        registry.withLock { $0.authorize(domain: domain, key: key) }
    }

    /// A fresh client key pair for `holder`, admitted from now on (its previous one refused), with
    /// the registry file rewritten before this returns.
    func admit(_ holder: KeyHolder) throws -> CurveKeyPair {
        let keys = try CurveKeyPair.generate()
        let snapshot = registry.withLock { registry in
            registry.admit(keys.publicKey, for: holder)
            return registry
        }
        try snapshot.write(to: registryPath)
        return keys
    }

    /// Issues `node`'s keys for a new incarnation and writes them to its 0600 key file.
    func issue(for id: String, role: NodeRole, config: RunConfig) throws {
        let client = try admit(KeyHolder(id: id, role: role))
        try NodeKeys(id: id, client: client, server: servers[id]).write(to: config.keyPath(of: id))
    }

    /// Writes the control key file and each application client's credentials.
    func writeClientFiles(config: RunConfig) throws {
        try NodeKeys(id: "control", client: control).write(to: config.controlKeyPath)
        for name in security.clients {
            let keys = try admit(KeyHolder(id: name, kind: .client))
            let endpoints = Dictionary(uniqueKeysWithValues: servers.keys.map { ($0, config.endpoint(of: $0)) })
            try writePrivately(ClientCredentials(name: name, keys: keys, launcherKey: launcher.publicKey,
                                                 serverKeys: security.serverKeys, busOutbound: config.busOutbound,
                                                 endpoints: endpoints),
                               to: config.clientKeyPath(of: name))
        }
    }

    /// The forwarder's CURVE set-up: admitted keys only, and every published envelope's sender
    /// must be its publisher.
    func forwarderSecurity() -> Forwarder.Security {
        Forwarder.Security(keys: launcher, authorize: { [self] in authorize(domain: $0, key: $1) }) { frames, peer in
            frames.count == 2 && peer != nil && Envelope.sender(ofFrame: frames[1]) == peer
        }
    }
}
