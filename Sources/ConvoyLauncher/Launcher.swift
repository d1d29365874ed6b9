import ConvoyCore
import ConvoyMobility
import ConvoyReasoning
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
    /// Where the run starts in the trace (overrides the scenario's `start:`).
    public var start: TraceStart?
    /// CurveZMQ on every socket (the default); false runs without authentication (`--no-curve`).
    public var curve: Bool
    /// Application clients to admit (`--allow-client NAME`): each gets a key file in `RUN_DIR/keys`.
    public var allowClients: [String]
    /// The `convoy` binary to re-execute for each node.
    public var executable: String
    /// `tools/trainer` of the checkout, for a scenario with `fedtune:` (nil: found next to `executable`).
    public var trainer: String?
    /// Wall-clock seconds by which vehicles send their V2V beacons ahead of their instant (`--beacon-lead-ms`).
    public var beaconLead: Double = LaunchOptions.defaultBeaconLead
    /// 50 ms: more than the bus takes at the p99 on a loaded 2-core machine with 600 vehicles.
    public static let defaultBeaconLead = 0.05
    /// Real-time scheduling for the threads that move messages, where the machine permits
    /// (`--no-realtime`: never). See `RealtimeScheduling`.
    public var realtime = true

    public init(scenarioPath: String, duration: Double? = nil, runDirectory: String? = nil, speed: Double = 1, seed: UInt64? = nil,
                start: TraceStart? = nil, curve: Bool = true, allowClients: [String] = [], executable: String) {
        self.start = start
        self.curve = curve
        self.allowClients = allowClients
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
    /// Wall-clock seconds between writing the run's configuration and its t = 0. The processes
    /// present at t = 0 are spawned at once and their nodes wait for the epoch, so the start-up
    /// storm (process start, libraries, CurveZMQ handshakes: about 30 ms of this machine per
    /// process when hundreds start together) is over before the emulation begins, instead of
    /// making the first seconds of a large fleet late.
    static func startAllowance(processes: Int) -> Double { 1.0 + 0.03 * Double(processes) }

    public static func run(_ options: LaunchOptions, output: StatusOutput = .standard) async throws -> LaunchResult {
        var scenario = try Scenario.load(path: options.scenarioPath)
        if let seed = options.seed { scenario.seed = seed }
        if let start = options.start { scenario.start = start }
        // Indexed once, cached next to the trace (TRACE.convoy-index), reused while the trace is unchanged.
        let trace = try TraceCache.index(path: scenario.tracePath)
        guard !trace.entries.isEmpty else { throw InputError(file: scenario.tracePath, "the trace has no vehicles") }
        try checkVehicleIDs(trace.entries.map(\.vehicleID), trace: scenario.tracePath, map: scenario)
        try checkClientNames(options.allowClients, vehicles: Set(trace.entries.map(\.vehicleID)), map: scenario.map)
        if let path = scenario.workload.arrivalsPath {
            try ArrivalFile.load(path: path, tasks: scenario.workload.tasks)
                .checkVehicles(in: Set(trace.entries.map(\.vehicleID)), trace: scenario.tracePath)
        }
        let trainer = try scenario.fedtune.map { _ in try TrainerProcess.prepare(options, output: output) }
        let window = try RunWindow.plan(spans: trace.entries.map { RunWindow.Span(id: $0.vehicleID, start: $0.start, end: $0.end) },
                                        start: scenario.start, duration: options.duration ?? scenario.duration,
                                        faults: scenario.faults, trace: scenario.tracePath)
        for warning in window.warnings { output.line("warning: \(warning)") }
        RunDirectory.removeStaleSocketDirectories()

        // From here on, a failure (a full disk, a read-only directory) removes what it made.
        let runDirectory = try RunDirectory.choose(path: options.runDirectory, scenario: scenario)
        let existed = FileManager.default.fileExists(atPath: runDirectory)
        let socketDirectory = try RunDirectory.makeSocketDirectory()
        defer { try? FileManager.default.removeItem(atPath: socketDirectory) }
        let prepared: (config: RunConfig, database: RunDatabase, vehicles: [VehiclePlan], reserve: DiskReserve, keyring: Keyring?)
        do {
            try RunDirectory.create(runDirectory, scenario: scenario, scenarioPath: options.scenarioPath)
            let reserve = try DiskReserve(directory: runDirectory)
            let included = Set(window.vehicles)
            let vehicles = try RunDirectory.writeTrajectories(of: trace.entries.filter { included.contains($0.vehicleID) }, from: trace,
                                                              window: window, in: runDirectory)
            let map = scenario.map
            let initial = 1 + map.edges.count + map.rsus.count + vehicles.filter { $0.start <= Supervisor.spawnLead(speed: options.speed) }.count
            var config = RunConfig(runDirectory: runDirectory, socketDirectory: socketDirectory,
                                   epoch: EmulationClock.wallNow() + Self.startAllowance(processes: initial), speed: options.speed, seed: scenario.seed,
                                   duration: window.duration, launcherPID: getpid(), scenario: scenario, vehicles: window.vehicles)
            let keyring = try options.curve ? Keyring(map: scenario.map, clients: options.allowClients, registryPath: config.registryPath) : nil
            config.security = keyring?.security
            config.beaconLead = options.beaconLead
            config.realtime = options.realtime && RealtimeScheduling.permitted()
            try keyring?.writeClientFiles(config: config)
            try config.write()
            if let fedtune = scenario.fedtune { try TrainerProcess.writeConfig(fedtune, seed: scenario.seed, runDirectory: runDirectory) }
            let database = try RunDatabase(path: RunDatabase.databasePath(inRunDirectory: runDirectory))
            for (key, value) in [("convoy_version", ConvoyVersion.string), ("scenario", scenario.name), ("seed", String(scenario.seed)),
                                 ("policy", scenario.policy), ("speed", String(options.speed)), ("duration", String(window.duration)),
                                 ("trace_offset", String(window.offset)), ("trace", scenario.tracePath), ("map", scenario.mapPath),
                                 ("scheduling", config.realtime == true ? "realtime" : "normal"),
                                 ("started_wall", ISO8601DateFormatter().string(from: Date()))] {
                try database.setMetadata(key, value)
            }
            if let analytics = scenario.analytics { try Self.recordAnalyticsTruth(analytics, vehicles: vehicles, in: database) }
            prepared = (config, database, vehicles, reserve, keyring)
        } catch {
            RunDirectory.discard(runDirectory, existed: existed)
            throw LaunchError.cannotPrepare(runDirectory, reason: LaunchError.reason(error))
        }
        let config = prepared.config

        let keyring = prepared.keyring
        let forwarder = try Forwarder(inbound: config.busInbound, outbound: config.busOutbound, security: keyring?.forwarderSecurity(),
                                      realtime: config.realtime == true)
        defer { forwarder.stop() }
        let context = try ZMQContext(realtimePriority: config.realtime == true ? RealtimeScheduling.priority : nil)
        // The ZAP handler must exist before the server sockets bind.
        let zap = try keyring.map { keyring in try ZAPHandler(context: context) { keyring.authorize(domain: $0, key: $1) } }
        let server = { (domain: ZAPDomain) in keyring.map { SocketSecurity.server($0.launcher, domain: domain.rawValue) } }
        let loop = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.pull, bind: [config.recorder], highWaterMark: 100_000, security: server(.records)),
            SocketSpec(.router, bind: [config.control], security: server(.control)),
        ], name: "io-launcher")
        // The launcher's I/O thread and its libzmq I/O thread carry every record and control
        // message: real-time for the whole run.
        if config.realtime == true { loop.post { RealtimeScheduling.setCallingThread(true) } }
        let supervisor = Supervisor(config: config, executable: options.executable, trainer: trainer, vehicles: prepared.vehicles,
                                    database: prepared.database, reserve: prepared.reserve, loop: loop, output: output,
                                    security: keyring.map { Supervisor.Security(keyring: $0, forwarder: forwarder, zap: zap!) })
        ProcessSignals.onTermination { sig in Task { await supervisor.interrupt(signal: sig) } }
        output.line("run directory: \(runDirectory)")
        output.line("scenario \(scenario.name): \(prepared.vehicles.count) vehicles, \(scenario.map.rsus.count) RSUs, "
                    + "\(scenario.map.edges.count) edge servers, \(Int(window.duration)) s at speed \(options.speed)"
                    + (window.offset != 0 ? " from t = \(window.offset) s of the trace" : ""))
        if options.realtime && config.realtime != true {
            output.line("warning: real-time scheduling is not permitted here (it needs CAP_SYS_NICE or `ulimit -r` of 2 or more): "
                        + "nodes wake later on a loaded machine and fidelity suffers; --no-realtime silences this")
        }
        output.line(String(format: "t = 0 in %.1f s: the processes present at t = 0 start first", max(0, config.epoch - EmulationClock.wallNow())))
        let result = await supervisor.run()
        await context.close()
        return result
    }

    /// Removes the socket directories that launchers killed with SIGKILL left in /tmp (each
    /// launch does it too); returns how many.
    @discardableResult
    public static func removeStaleSocketDirectories() -> Int { RunDirectory.removeStaleSocketDirectories() }

    /// Application client names are node ids of their own: valid, and no node's.
    static func checkClientNames(_ names: [String], vehicles: Set<String>, map: MapSpec) throws {
        var seen: Set<String> = []
        for name in names {
            if let problem = NodeID.problem(with: name) { throw InputError(file: "--allow-client", problem) }
            if map.role(of: name) != nil || vehicles.contains(name) || name == "control" || !seen.insert(name).inserted {
                throw InputError(file: "--allow-client", "'\(NodeID.excerpt(name))' is already a node of the run (or given twice)")
            }
        }
    }

    /// Vehicle ids must be valid node ids and distinct from the map's nodes (they share the
    /// `nodes` table, logs and the wire's sender field).
    static func checkVehicleIDs(_ ids: [String], trace: String, map scenario: Scenario) throws {
        let map = scenario.map
        let infrastructure = Set([map.cloud.id] + (map.macro.map { [$0.id] } ?? []) + map.rsus.map(\.id) + map.edges.map(\.id))
        for id in ids {
            if let problem = NodeID.problem(with: id) { throw InputError(file: trace, field: "id", "vehicle: " + problem) }
            if infrastructure.contains(id) {
                throw InputError(file: scenario.mapPath, field: "id",
                                 "'\(id)' is a node of the map and also a vehicle of \(trace); node ids must be unique across roles")
            }
        }
    }
}

/// A launch that could not be done for a reason other than its input (the input errors are
/// `InputError`s): exit status 1.
public enum LaunchError: Error, CustomStringConvertible {
    case cannotPrepare(String, reason: String)

    public var description: String {
        switch self {
        case .cannotPrepare(let directory, let reason):
            "cannot prepare the run directory \(directory): \(reason) (nothing was run; the directory was removed)"
        }
    }

    /// The operating system's or SQLite's words for a file error, without Cocoa's wrapping.
    static func reason(_ error: any Error) -> String {
        if let recording = error as? RecordingError { return "\(recording)" }
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return "\(error)"
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
