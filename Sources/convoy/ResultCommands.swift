import ArgumentParser
import ConvoyLauncher
import ConvoyRecording
import ConvoyRuntime
import Foundation

/// `convoy report RUN_DIR`: the summary of a run, and its figures when the plot tools are set up.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise a run: requests by status and path, latency, faults with detection time and failover gap.",
        discussion: """
            When the plot tools are set up (tools/plot has created tools/.venv-plot once), the figures are \
            written too, into RUN_DIR/plots unless --plots says otherwise.
            """)

    @Argument(help: "A run directory.") var runDirectory: String
    @Option(name: .customLong("plots"), help: "Directory for the figures (default: RUN_DIR/plots).") var plots: String?
    @Flag(name: .customLong("no-plots"), help: "Do not write figures.") var noPlots = false

    /// Whether the launcher of the run in `directory` still runs.
    static func launcherAlive(_ directory: String) -> Bool {
        guard let config = try? RunConfig.load(runDirectory: directory),
              let command = FileManager.default.contents(atPath: "/proc/\(config.launcherPID)/cmdline") else { return false }
        return String(decoding: command, as: UTF8.self).contains("launch")
    }

    func run() throws {
        Launcher.removeStaleSocketDirectories()
        let report: RunReport
        do {
            report = try RunReport(database: try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: runDirectory)))
        } catch {
            fail(error)
        }
        print(report.text(title: runDirectory, stillRunning: Self.launcherAlive(runDirectory)), terminator: "")
        guard !noPlots else { return }
        print("")
        guard let tools = PlotTools.locate() else {
            print("figures: not written (tools/plot not found; run from the Convoy checkout or set CONVOY_HOME)")
            return
        }
        guard tools.isSetUp else {
            print("figures: not written; run `\(tools.script) \(runDirectory)` once to set up the plot tools "
                  + "(it creates \(tools.venv)), then `convoy report` writes them too")
            return
        }
        let target = plots ?? URL(fileURLWithPath: runDirectory).appendingPathComponent("plots").path
        print("figures (tools/plot):")
        fflush(nil)  // every C stream, so our output comes before the child's
        let status = tools.run(runDirectory: runDirectory, out: target)
        if status != 0 {
            FileHandle.standardError.write(Data("convoy: warning: tools/plot exited with status \(status); no figures\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `convoy compare RUN_A RUN_B …`: key metrics of runs side by side.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the key metrics of runs side by side (requests, completion, latency, deadlines, faults).")

    @Argument(help: "Two or more run directories.") var runDirectories: [String]

    func validate() throws {
        guard runDirectories.count >= 2 else { throw ValidationError("give at least two run directories") }
    }

    func run() throws {
        var reports: [RunReport] = []
        for directory in runDirectories {
            do {
                reports.append(try RunReport(database: try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: directory))))
            } catch {
                fail(error)
            }
        }
        let titles = RunComparison.titles(for: runDirectories)
        print(RunComparison(runs: Array(zip(titles, reports))).text, terminator: "")
        print("""

            completed %: of all requests; deadline met %: of the finished ones; latency: of completed
            requests (nearest rank); mean detection: over faults, earliest observer; mean failover gap:
            over vehicles whose attempt to a faulted node was lost (see `convoy report`).
            """)
    }
}

/// `tools/plot` of this Convoy checkout and its virtualenv.
struct PlotTools {
    /// The checkout's `tools` directory.
    let directory: String
    var script: String { directory + "/plot" }
    var venv: String { directory + "/.venv-plot" }
    /// True when the virtualenv exists (tools/plot made it).
    var isSetUp: Bool { FileManager.default.isExecutableFile(atPath: venv + "/bin/python") }

    /// Looks for `tools/plot` where `DefaultScenario` looks for the bundled scenario:
    /// `$CONVOY_HOME`, the working directory, then the binary's directory and its parents.
    static func locate() -> PlotTools? {
        Checkout.locate("tools/plot", executable: DefaultScenario.executablePath)
            .map { PlotTools(directory: URL(fileURLWithPath: $0).deletingLastPathComponent().path) }
    }

    /// Runs `tools/plot RUN_DIR --out DIR` with this process's standard output and error, and
    /// returns its exit status (127 when it cannot be started).
    func run(runDirectory: String, out: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, runDirectory, "--out", out]
        do {
            try process.run()
        } catch {
            return 127
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
