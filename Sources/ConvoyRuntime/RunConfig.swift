import ConvoyCore
import ConvoyScenario
import Foundation

/// Everything a node process needs to know about its run. The launcher writes it to
/// `RUN_DIR/run.json` before it spawns any node; nodes and `convoy fail` read it.
public struct RunConfig: Sendable, Codable, Equatable {
    public static let fileName = "run.json"

    public var runDirectory: String
    /// Directory of the run's ipc:// endpoints (short path: Unix socket paths are limited to ~100 bytes).
    public var socketDirectory: String
    public var epoch: Double
    public var speed: Double
    public var seed: UInt64
    /// Emulated seconds the run lasts.
    public var duration: Double
    public var launcherPID: Int32
    public var scenario: Scenario
    /// The run's CurveZMQ server keys; nil when the run was launched with `--no-curve`.
    public var security: RunSecurity?
    /// The ids of the run's vehicles (a V2V request from anyone else is refused).
    public var vehicles: [String]?
    /// Wall-clock seconds by which vehicles hand their V2V beacons to the bus ahead of their
    /// instant (`convoy launch --beacon-lead-ms`; nil or 0: at it). See `VehicleCore.Setup.beaconLead`.
    public var beaconLead: Double?
    /// Whether nodes put the threads that move their messages under real-time scheduling from
    /// t = 0 until they stop or drain (`RealtimeScheduling`; the launcher sets it when the
    /// machine permits and `--no-realtime` was not given; nil: no).
    public var realtime: Bool?

    public init(runDirectory: String, socketDirectory: String, epoch: Double, speed: Double, seed: UInt64,
                duration: Double, launcherPID: Int32, scenario: Scenario, security: RunSecurity? = nil, vehicles: [String]? = nil) {
        self.security = security
        self.vehicles = vehicles
        self.runDirectory = runDirectory
        self.socketDirectory = socketDirectory
        self.epoch = epoch
        self.speed = speed
        self.seed = seed
        self.duration = duration
        self.launcherPID = launcherPID
        self.scenario = scenario
    }

    public var clock: EmulationClock { EmulationClock(epoch: epoch, speed: speed) }
    public var map: MapSpec { scenario.map }

    /// Publishers connect here (the forwarder's XSUB side).
    public var busInbound: String { "ipc://\(socketDirectory)/bus-in" }
    /// Subscribers connect here (the forwarder's XPUB side).
    public var busOutbound: String { "ipc://\(socketDirectory)/bus-out" }
    /// Nodes PUSH their records here; the launcher PULLs.
    public var recorder: String { "ipc://\(socketDirectory)/recorder" }
    /// `convoy fail` / `convoy recover` talk to the launcher here.
    public var control: String { "ipc://\(socketDirectory)/control" }
    /// The trainer process of federated fine-tuning (bound by it; nodes connect DEALERs).
    public var trainerEndpoint: String { "ipc://\(socketDirectory)/trainer" }

    /// The ROUTER endpoint an infrastructure node binds (RSU, edge, cloud).
    public func endpoint(of node: String) -> String {
        "ipc://\(socketDirectory)/n-\(NodeID.fileName(of: node))"
    }

    /// The directory of the run's keys (0700): one secret file per process, the registry of
    /// admitted public keys, the control key and application clients' keys.
    public var keysDirectory: String { URL(fileURLWithPath: runDirectory).appendingPathComponent("keys").path }
    /// `node`'s secrets (`NodeKeys`, 0600).
    public func keyPath(of node: String) -> String { keysDirectory + "/node-" + Self.hex(node) + ".json" }
    /// The admitted public keys (`KeyRegistry`), for the nodes' ZAP handlers.
    public var registryPath: String { keysDirectory + "/registry.json" }
    /// The control client's secrets, read by `convoy fail` and `convoy recover`.
    public var controlKeyPath: String { keysDirectory + "/control.json" }
    /// An application client's key file (`convoy launch --allow-client NAME`).
    public func clientKeyPath(of name: String) -> String { keysDirectory + "/client-" + NodeID.fileName(of: name) + ".json" }

    /// A node id as a file name that no other id shares (ids are at most 64 bytes: 128 digits).
    private static func hex(_ id: String) -> String { id.utf8.map { String(format: "%02x", $0) }.joined() }

    /// Where the launcher puts a partition or degradation it imposes on `node` (see `ImposedFault`).
    /// A node's state file `name`: what it keeps for its next incarnation (`NodeAction.persist`).
    public func statePath(of node: String, name: String) -> String {
        URL(fileURLWithPath: runDirectory).appendingPathComponent("state/\(NodeID.fileName(of: node))/\(name)").path
    }

    public func imposedFaultPath(of node: String) -> String {
        URL(fileURLWithPath: runDirectory).appendingPathComponent("faults/\(NodeID.fileName(of: node)).json").path
    }

    public static func load(runDirectory: String) throws -> RunConfig {
        let path = URL(fileURLWithPath: runDirectory).appendingPathComponent(fileName).path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(file: path, "not a Convoy run directory (no \(fileName))")
        }
        do {
            return try JSONDecoder().decode(RunConfig.self, from: data)
        } catch {
            throw InputError(file: path, "unreadable run description: \(error)")
        }
    }

    public func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = URL(fileURLWithPath: runDirectory).appendingPathComponent(Self.fileName)
        try encoder.encode(self).write(to: path, options: .atomic)
    }
}

/// A partition or degradation the launcher imposes on a running node: written as JSON to
/// `RunConfig.imposedFaultPath(of:)`, then the node is sent SIGUSR1 and re-reads it (a missing
/// file means no fault). Out of band, so that it reaches a partitioned node too.
public struct ImposedFault: Sendable, Codable, Equatable {
    public var mode: FaultMode
    public var degradation: Degradation?

    public init(mode: FaultMode, degradation: Degradation? = nil) {
        self.mode = mode
        self.degradation = degradation
    }

    public static func read(path: String) -> ImposedFault? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(ImposedFault.self, from: data)
    }

    public func write(path: String) throws {
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
