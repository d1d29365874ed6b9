import ConvoyCore
import ConvoyTransport
import Foundation
import Synchronization

/// The public half of a run's CurveZMQ set-up, in `run.json`: the server keys every client needs.
/// Secrets never appear here; each process gets its own through a 0600 file (`NodeKeys`).
public struct RunSecurity: Sendable, Codable, Equatable {
    /// The launcher's server key: the bus (both sides), the recorder and the control socket.
    public var launcherKey: String
    /// Each RSU's, edge server's and cloud's server key (its ROUTER), stable for the run.
    public var serverKeys: [String: String]
    /// Application clients admitted with `convoy launch --allow-client NAME`.
    public var clients: [String]

    public init(launcherKey: String, serverKeys: [String: String], clients: [String]) {
        self.launcherKey = launcherKey
        self.serverKeys = serverKeys
        self.clients = clients
    }
}

/// What may connect where. Each server socket asks its context's ZAP handler with its domain.
public enum ZAPDomain: String, Sendable, CaseIterable {
    /// Publishing on the bus (the forwarder's XSUB side).
    case busIn = "bus-in"
    /// Subscribing to the bus (XPUB side).
    case busOut = "bus-out"
    /// Sending records to the launcher.
    case records
    /// `convoy fail` / `convoy recover`.
    case control
    /// Requests to an RSU, edge server or cloud.
    case access
}

/// Who a key belongs to: a node of the run, the control client, or an application client.
public struct KeyHolder: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case vehicle, rsu, edge, cloud, control, client
    }

    public var id: String
    public var kind: Kind

    public init(id: String, kind: Kind) {
        self.id = id
        self.kind = kind
    }

    public init(id: String, role: NodeRole) {
        self.id = id
        switch role {
        case .vehicle: kind = .vehicle
        case .rsu: kind = .rsu
        case .edge: kind = .edge
        case .cloud: kind = .cloud
        }
    }

    /// Whether this holder may connect in `domain`.
    public func may(_ domain: ZAPDomain) -> Bool {
        switch (kind, domain) {
        case (.control, .control): true
        case (.control, _), (_, .control): false
        case (.client, .busOut), (.client, .access): true
        case (.client, _): false
        case (.vehicle, _), (.rsu, _), (.edge, _), (.cloud, _): true
        }
    }
}

/// The run's admitted client keys (Z85 public key → holder), as the launcher keeps it and writes
/// it to `RUN_DIR/keys/registry.json` for the node processes. A node's key changes with each
/// incarnation: the new one replaces the old, which is refused from then on.
public struct KeyRegistry: Sendable, Codable, Equatable {
    public private(set) var holders: [String: KeyHolder] = [:]

    public init() {}

    /// Admits `key` for `holder`, revoking the holder's previous key.
    public mutating func admit(_ key: String, for holder: KeyHolder) {
        holders = holders.filter { $0.value != holder }
        holders[key] = holder
    }

    /// The identity (node id) to give a client presenting `key` in `domain`, or nil to refuse.
    public func authorize(domain: String, key: String) -> String? {
        guard let domain = ZAPDomain(rawValue: domain), let holder = holders[key], holder.may(domain) else { return nil }
        return holder.id
    }

    public func write(to path: String) throws { try writePrivately(self, to: path) }

    public static func read(path: String) -> KeyRegistry? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(KeyRegistry.self, from: data)
    }
}

/// The registry file as a node process's ZAP handler sees it: re-read when it changes (a node
/// restarted with a new key), and once more before a key is refused.
public final class RegistryFile: Sendable {
    private let path: String
    private let cache = Mutex<(modified: Date?, registry: KeyRegistry)>((nil, KeyRegistry()))

    public init(path: String) {
        self.path = path
    }

    public func authorize(domain: String, key: String) -> String? {
        if let id = current(reload: false).authorize(domain: domain, key: key) { return id }
        return current(reload: true).authorize(domain: domain, key: key)
    }

    private func current(reload: Bool) -> KeyRegistry {
        let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        return cache.withLock { entry in
            if reload || entry.modified != modified, let fresh = KeyRegistry.read(path: path) {
                entry = (modified, fresh)
            }
            return entry.registry
        }
    }
}

/// One process's secrets: its client key pair (this incarnation's) and, for an RSU, edge server
/// or cloud, its server key pair. Written by the launcher to `RUN_DIR/keys/NAME.json`, mode 0600.
public struct NodeKeys: Sendable, Codable, Equatable {
    public var id: String
    public var client: CurveKeyPair
    public var server: CurveKeyPair?

    public init(id: String, client: CurveKeyPair, server: CurveKeyPair? = nil) {
        self.id = id
        self.client = client
        self.server = server
    }

    /// Writes the file readable by its owner only.
    public func write(to path: String) throws { try writePrivately(self, to: path) }

    public static func read(path: String) throws -> NodeKeys {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(file: path, "no key file (the launcher writes one per node before starting it)")
        }
        do {
            return try JSONDecoder().decode(NodeKeys.self, from: data)
        } catch {
            throw InputError(file: path, "unreadable key file: \(error)")
        }
    }
}

/// What an application client (`convoy launch --allow-client NAME`) needs to join the run, in
/// `RUN_DIR/keys/client-NAME.json` (0600): its key pair, the server keys, and the endpoints.
/// It may subscribe to the bus and send requests to RSUs, edge servers and the cloud, under its
/// own name only (its envelopes' sender must be NAME).
public struct ClientCredentials: Sendable, Codable, Equatable {
    public var name: String
    public var publicKey: String
    public var secretKey: String
    /// The launcher's server key: for the bus.
    public var launcherKey: String
    /// Each RSU's, edge server's and cloud's server key.
    public var serverKeys: [String: String]
    /// Where to subscribe to the bus, and each server's ROUTER endpoint.
    public var busOutbound: String
    public var endpoints: [String: String]

    public init(name: String, keys: CurveKeyPair, launcherKey: String, serverKeys: [String: String], busOutbound: String,
                endpoints: [String: String]) {
        self.name = name
        publicKey = keys.publicKey
        secretKey = keys.secretKey
        self.launcherKey = launcherKey
        self.serverKeys = serverKeys
        self.busOutbound = busOutbound
        self.endpoints = endpoints
    }
}

/// Writes `value` as JSON readable by its owner only (0600), atomically.
public func writePrivately<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(value)
    try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                            withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    guard FileManager.default.createFile(atPath: path + ".tmp", contents: data, attributes: [.posixPermissions: 0o600]) else {
        throw InputError(file: path, "cannot write the key file")
    }
    guard rename(path + ".tmp", path) == 0 else { throw InputError(file: path, "cannot write the key file: \(String(cString: strerror(errno)))") }
}
