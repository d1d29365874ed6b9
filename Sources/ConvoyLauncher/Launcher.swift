import ConvoyCore
import ConvoyMobility
import ConvoyRuntime
import ConvoyRecording
import ConvoyScenario
import ConvoyTransport
import ConvoyWire
import Foundation

/// What `convoy launch` was asked to do.
public struct LaunchOptions: Sendable {
    public var scenarioPath: String
    public var duration: Double?
    public var runDirectory: String?
    public var speed: Double
    public var seed: UInt64?
    /// The `convoy` binary to re-execute for each node.
    public var executable: String

    public init(scenarioPath: String, duration: Double? = nil, runDirectory: String? = nil, speed: Double = 1, seed: UInt64? = nil,
                executable: String) {
        self.scenarioPath = scenarioPath
        self.duration = duration
        self.runDirectory = runDirectory
        self.speed = speed
        self.seed = seed
        self.executable = executable
    }
}

/// How a launch ended.
public enum LaunchResult: Sendable, Equatable {
    case completed
    case interrupted(Int32)
    case failed(String)

    public var exitCode: Int32 {
        switch self {
        case .completed: 0
        case .interrupted(let signal): 128 + signal
        case .failed: 1
        }
    }
}

/// Runs a fleet: prepares the run directory, spawns one process per node (vehicles at their first
/// trace sample), records everything into `run.sqlite` as the single writer, injects scheduled and
/// live faults, shows a status line, and stops everything in order at the end or on SIGINT/SIGTERM.
public enum Launcher {
    public static func run(_ options: LaunchOptions, output: StatusOutput = .standard) async throws -> LaunchResult {
        var scenario = try Scenario.load(path: options.scenarioPath)
        if let seed = options.seed { scenario.seed = seed }
        // Indexed once, cached next to the trace (TRACE.convoy-index), reused while the trace is unchanged.
        let trace = try TraceCache.index(path: scenario.tracePath)
        guard !trace.entries.isEmpty else { throw InputError(file: scenario.tracePath, "the trace has no vehicles") }
        if let path = scenario.workload.arrivalsPath {
            try ArrivalFile.load(path: path, tasks: scenario.workload.tasks)
                .checkVehicles(in: Set(trace.entries.map(\.vehicleID)), trace: scenario.tracePath)
        }
        let traceEnd = trace.entries.map(\.end).max() ?? 0
        let duration = options.duration ?? scenario.duration ?? traceEnd
        guard duration > 0 else { throw InputError(file: options.scenarioPath, field: "duration", "must be positive") }

        let runDirectory = try RunDirectory.prepare(path: options.runDirectory, scenario: scenario, scenarioPath: options.scenarioPath)
        let vehicles = try RunDirectory.writeTrajectories(of: trace.entries.filter { $0.start < duration }, from: trace, in: runDirectory)
        let socketDirectory = try RunDirectory.makeSocketDirectory()
        defer { try? FileManager.default.removeItem(atPath: socketDirectory) }

        let config = RunConfig(runDirectory: runDirectory, socketDirectory: socketDirectory,
                               epoch: EmulationClock.wallNow() + 1.0, speed: options.speed, seed: scenario.seed,
                               duration: duration, launcherPID: getpid(), scenario: scenario)
        try config.write()
        let database = try RunDatabase(path: RunDatabase.databasePath(inRunDirectory: runDirectory))
        for (key, value) in [("convoy_version", ConvoyVersion.string), ("scenario", scenario.name), ("seed", String(scenario.seed)), ("policy", scenario.policy),
                             ("speed", String(options.speed)), ("duration", String(duration)),
                             ("trace", scenario.tracePath), ("map", scenario.mapPath),
                             ("started_wall", ISO8601DateFormatter().string(from: Date()))] {
            try database.setMetadata(key, value)
        }

        let forwarder = try Forwarder(inbound: config.busInbound, outbound: config.busOutbound)
        defer { forwarder.stop() }
        let context = try ZMQContext()
        let loop = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.pull, bind: [config.recorder], highWaterMark: 100_000),
            SocketSpec(.router, bind: [config.control]),
        ], name: "io-launcher")
        let supervisor = Supervisor(config: config, executable: options.executable, vehicles: vehicles, database: database,
                                    loop: loop, output: output)
        ProcessSignals.onTermination { sig in Task { await supervisor.interrupt(signal: sig) } }
        output.line("run directory: \(runDirectory)")
        output.line("scenario \(scenario.name): \(vehicles.count) vehicles, \(scenario.map.rsus.count) RSUs, "
                    + "\(scenario.map.edges.count) edge servers, \(Int(duration)) s at speed \(options.speed)")
        let result = await supervisor.run()
        await context.close()
        return result
    }
}

/// A vehicle to spawn: its id, its first and last sample, and its trajectory file.
struct VehiclePlan: Sendable {
    var id: String
    var start: Double
    var end: Double
    var firstPosition: Position
    var trajectoryPath: String
    var logName: String
}

public enum ConvoyVersion {
    public static let string = "0.1.0"
}
