import ArgumentParser
import ConvoyCore
import ConvoyLauncher
import ConvoyMobility
import ConvoyNodes
import ConvoyRecording
import ConvoyScenario
import ConvoyWire
import Foundation

@main
struct Convoy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A vehicular edge emulator: a fleet of real processes over ZeroMQ, recorded in SQLite.",
        version: ConvoyVersion.string,
        subcommands: [Launch.self, Fail.self, Recover.self, Export.self, LinkCommand.self, Bench.self, Report.self, Compare.self, CalibrateCommand.self, TraceCommand.self, MapCommand.self, Node.self]
    )

    /// Runs the command line. Usage errors (an unknown option, a missing or malformed value) exit
    /// with 2 like every other bad input, not ArgumentParser's 64 (see the README's exit codes).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Prints an error a user can act on and exits non-zero: 2 for bad input, 1 when the run could
/// not be done for another reason (e.g. the run directory could not be written).
func fail(_ error: any Error) -> Never {
    FileHandle.standardError.write(Data("convoy: error: \(error)\n".utf8))
    exit(error is LaunchError ? 1 : 2)
}

struct Launch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a fleet on a scenario (the bundled default if none is given).")

    @Argument(help: "Scenario file (YAML). Default: maps/default.yaml of this Convoy checkout.")
    var scenario: String?

    @Option(parsing: .unconditional, help: "Emulated seconds to run (default: the scenario's duration).")
    var duration: Double?

    @Option(parsing: .unconditional,
            help: "Where the run starts in the trace: `first` (its first sample) or a trace time in seconds (default: the scenario's `start:`, else 0).")
    var start: String?

    @Option(name: .customLong("out"), help: "Run directory to create (default: runs/<scenario>-<timestamp>).")
    var out: String?

    @Option(parsing: .unconditional, help: "Time dilation: emulated seconds per wall second (< 1 for fleets too big for real time).")
    var speed: Double = 1

    @Option(help: "Random seed (default: the scenario's).")
    var seed: UInt64?

    @Option(name: .customLong("allow-client"),
            help: ArgumentHelp("Admit an application client NAME: its key file is written to RUN_DIR/keys/client-NAME.json (repeatable).",
                               valueName: "NAME"))
    var allowClients: [String] = []

    @Flag(name: .customLong("no-curve"), help: "Run without CurveZMQ (no authentication or encryption; for measuring its cost).")
    var noCurve = false

    @Option(name: .customLong("beacon-lead-ms"), parsing: .unconditional,
            help: ArgumentHelp("Wall-clock ms by which vehicles send their V2V beacons ahead of their instant, and servers (up to 10 ms) their replies to vehicles, so the transport's latency does not delay them (0: at their instant).",
                               valueName: "MS"))
    var beaconLeadMs: Double = LaunchOptions.defaultBeaconLead * 1000

    @Flag(inversion: .prefixedNo,
          help: "Real-time scheduling (SCHED_FIFO) for the threads that move messages, from t = 0 until each node stops or drains, so that a node wakes on time on a loaded machine (needs CAP_SYS_NICE or `ulimit -r` ≥ 2; without, a warning and normal scheduling).")
    var realtime = true

    func validate() throws {
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be a positive number") }
        if let duration, !(duration > 0 && duration <= 1e9) { throw ValidationError("--duration must be positive (at most 1e9 s)") }
        guard beaconLeadMs >= 0, beaconLeadMs <= 1000 else { throw ValidationError("--beacon-lead-ms must be between 0 and 1000, got \(beaconLeadMs)") }
        if let start, TraceStart(text: start) == nil { throw ValidationError("--start must be `first` or a trace time in seconds, got '\(start)'") }
    }

    func run() async throws {
        let path: String
        if let scenario {
            path = scenario
        } else {
            guard let found = DefaultScenario.locate() else {
                fail(InputError(file: "maps/default.yaml", "no scenario given and the bundled default was not found "
                                + "(run from the Convoy checkout, or set CONVOY_HOME)"))
            }
            path = found
        }
        var options = LaunchOptions(scenarioPath: path, duration: duration, runDirectory: out, speed: speed, seed: seed,
                                    start: start.flatMap(TraceStart.init(text:)), curve: !noCurve, allowClients: allowClients,
                                    executable: DefaultScenario.executablePath)
        options.beaconLead = beaconLeadMs / 1000
        options.realtime = realtime
        let result: LaunchResult
        do {
            result = try await Launcher.run(options)
        } catch {
            fail(error)
        }
        if case .failed(let why) = result { FileHandle.standardError.write(Data("convoy: the run failed: \(why)\n".utf8)) }
        throw ExitCode(result.exitCode)
    }
}

struct Fail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inject a fault into a running launch.")

    @Argument(help: "The run directory of the running launch.") var runDirectory: String
    @Argument(help: "The node to fail (an RSU or edge server id).") var nodeID: String
    @Option(help: "crash (SIGKILL, restarted on recovery), hang (SIGSTOP/SIGCONT), partition (drops all its traffic), degrade (extra loss and latency) or backend-down (its real model server is gone).")
    var mode: FaultMode = .crash
    @Option(parsing: .unconditional, help: "degrade: extra loss probability (default 0.2).") var loss: Double?
    @Option(name: .customLong("latency-ms"), parsing: .unconditional, help: "degrade: extra latency in ms (default 50).")
    var latencyMs: Double?
    @Option(name: .customLong("for"), parsing: .unconditional, help: "Emulated seconds until automatic recovery (default: until `convoy recover`).")
    var seconds: Double?

    func validate() throws {
        if mode != .degrade, loss != nil || latencyMs != nil { throw ValidationError("--loss and --latency-ms go with --mode degrade") }
        if let loss, !(0...1).contains(loss) { throw ValidationError("--loss must be a probability in [0, 1]") }
        if let latencyMs, !(latencyMs >= 0 && latencyMs.isFinite) { throw ValidationError("--latency-ms must be a finite number ≥ 0") }
        if let seconds, !(seconds > 0 && seconds.isFinite) { throw ValidationError("--for must be a positive number of seconds, got \(seconds)") }
    }

    func run() async throws {
        try await sendControl(ControlCommand(action: .fail, node: nodeID, mode: mode, duration: seconds, loss: loss,
                                             latency: latencyMs.map { $0 / 1000 }), runDirectory: runDirectory)
    }
}

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End a fault injected with `convoy fail`.")

    @Argument(help: "The run directory of the running launch.") var runDirectory: String
    @Argument(help: "The failed node.") var nodeID: String

    func run() async throws {
        try await sendControl(ControlCommand(action: .recover, node: nodeID), runDirectory: runDirectory)
    }
}

func sendControl(_ command: ControlCommand, runDirectory: String) async throws {
    let reply: ControlReply
    do {
        reply = try await ControlClient.send(command, runDirectory: runDirectory)
    } catch {
        fail(error)
    }
    print(reply.message)
    if !reply.ok { throw ExitCode(1) }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the tables of a run, and its per-second time series, as RFC 4180 CSV files.",
        discussion: """
            --since/--until keep the rows whose time lies in [since, until] (ends included): created_at for \
            requests, sent_at for attempts, at for detections and handovers, started_at for nodes and faults, \
            sent_at for link_samples, and the second for timeseries. counters, run_info and link_stats are \
            always exported whole.
            """)

    @Argument(help: "A run directory.") var runDirectory: String
    @Option(name: .customLong("out"), help: "Output directory (default: RUN_DIR/csv).") var out: String?
    @Option(name: .customLong("table"), help: "Export only this table, or 'timeseries' (repeatable).") var tables: [String] = []
    @Option(parsing: .unconditional, help: ArgumentHelp("Keep rows from this emulated second on.", valueName: "S")) var since: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Keep rows up to this emulated second.", valueName: "S")) var until: Double?

    func validate() throws {
        if let since, !since.isFinite { throw ValidationError("--since must be a number of seconds") }
        if let until, !until.isFinite { throw ValidationError("--until must be a number of seconds") }
        if let since, let until, since > until { throw ValidationError("--since must not be after --until") }
    }

    func run() throws {
        let database = RunDatabase.databasePath(inRunDirectory: runDirectory)
        let target = out ?? URL(fileURLWithPath: runDirectory).appendingPathComponent("csv").path
        do {
            let counts = try CSVExport.export(databasePath: database, to: target, tables: tables.isEmpty ? nil : tables,
                                              window: TimeWindow(since: since, until: until))
            for (table, rows) in counts.sorted(by: { $0.key < $1.key }) {
                print("\(target)/\(table).csv: \(rows) rows")
            }
        } catch {
            fail(error)
        }
    }
}

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one node of a launch (started by the launcher).",
                                                    shouldDisplay: false)

    @Option var role: NodeRole
    @Option var id: String
    @Option(name: .customLong("run")) var runDirectory: String
    @Option var incarnation: UInt32 = 1
    @Option var trajectory: String?

    func run() async throws {
        do {
            try await NodeMain.run(role: role, id: id, runDirectory: runDirectory, incarnation: incarnation, trajectory: trajectory)
        } catch {
            fail(error)
        }
    }
}

extension NodeRole: ExpressibleByArgument {}

/// Finds the bundled default scenario and this binary.
enum DefaultScenario {
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func locate() -> String? { Checkout.locate("maps/default.yaml", executable: executablePath) }
}

extension FaultMode: ExpressibleByArgument {}
