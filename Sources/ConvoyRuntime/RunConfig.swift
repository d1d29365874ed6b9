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

    public init(runDirectory: String, socketDirectory: String, epoch: Double, speed: Double, seed: UInt64,
                duration: Double, launcherPID: Int32, scenario: Scenario) {
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

    /// The ROUTER endpoint an infrastructure node binds (RSU, edge, cloud).
    public func endpoint(of node: String) -> String {
        "ipc://\(socketDirectory)/n-\(NodeID.fileName(of: node))"
    }

    /// Where the launcher puts a partition or degradation it imposes on `node` (see `ImposedFault`).
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
