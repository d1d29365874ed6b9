import ConvoyRecording
import ConvoyRuntime
import Foundation
import Testing

/// What a run does when its disk fills, its launcher is stopped, its trace starts late or its
/// input is hostile: it never reports success after losing data, and never hangs.
@Suite("End to end: no silent loss", .serialized)
struct RobustnessTests {
    /// Runs `script` (sh) with a tmpfs of `size` mounted at `mountPoint`, in a private mount
    /// namespace (unprivileged through a user namespace where the kernel allows it).
    static func withSmallDisk(size: String, at mountPoint: String, _ script: String) throws -> (status: Int32, output: String) {
        let body = "mount -t tmpfs -o size=\(size) tmpfs '\(mountPoint)' && \(script)"
        return try Convoy.runTool("/usr/bin/unshare", Self.namespaceArguments + ["sh", "-c", body], timeout: 120)
    }

    static let namespaceArguments: [String] = {
        for arguments in [["--user", "--map-root-user", "--mount"], ["--mount"]] {
            let probe = try? Convoy.runTool("/usr/bin/unshare", arguments + ["sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], timeout: 20)
            if probe?.status == 0 { return arguments }
        }
        return []
    }()

    @Test(.timeLimit(.minutes(3)), .enabled(if: !namespaceArguments.isEmpty, "needs unshare to mount a small tmpfs"))
    func aFullDiskStopsTheRunPromptlyWithAnErrorAndAConsistentDatabase() throws {
        let dir = try Fixture.makeScenario(duration: 60, faults: "")
        let small = dir.appendingPathComponent("small").path
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let scenario = dir.appendingPathComponent("scenario.yaml").path
        let binary = Convoy.binary
        let started = Date()
        let full = try Self.withSmallDisk(size: "1m", at: small, """
            '\(binary)' launch '\(scenario)' --out '\(small)/run'; echo "launch-status=$?"
            '\(binary)' report '\(small)/run' --no-plots; echo "report-status=$?"
            """)
        #expect(full.status == 0, "\(full.output)")
        // Stopped at once (the run would take 60 s), failed, and said how much was lost.
        #expect(Date().timeIntervalSince(started) < 45, "\(full.output)")
        #expect(full.output.contains("launch-status=1"), "\(full.output)")
        #expect(full.output.contains("database or disk is full; stopping the run"), "\(full.output)")
        #expect(full.output.contains("records were lost"), "\(full.output)")
        #expect(!full.output.contains("recorded in "), "\(full.output)")
        // What was written is readable, consistent, and its result says so.
        #expect(full.output.contains("report-status=0"), "\(full.output)")
        #expect(full.output.contains("result failed"), "\(full.output)")
        #expect(full.output.contains("records could not be written"), "\(full.output)")

        // Too small to even start: a clear message, exit 1, and no half-made run directory.
        let tiny = try Self.withSmallDisk(size: "100k", at: small, """
            '\(binary)' launch '\(scenario)' --out '\(small)/run'; echo "launch-status=$?"
            ls '\(small)/run' >/dev/null 2>&1 && echo "run-directory-left"
            """)
        #expect(tiny.output.contains("launch-status=1"), "\(tiny.output)")
        #expect(tiny.output.contains("cannot prepare the run directory \(small)/run: No space left on device"), "\(tiny.output)")
        #expect(!tiny.output.contains("run-directory-left"), "\(tiny.output)")
        #expect(!tiny.output.contains("NSCocoaErrorDomain") && !tiny.output.contains("Error Domain"), "\(tiny.output)")
    }

    @Test(.timeLimit(.minutes(1)))
    func vehicleIDsThatCannotRunAreRefusedBeforeStart() throws {
        for (id, message) in [("rsu-1", "'rsu-1' is a node of the map and also a vehicle of"),
                              (String(repeating: "v", count: 65), "is 65 bytes; ids are at most 64 bytes")] {
            let dir = try Fixture.makeScenario(duration: 5, faults: "", vehicles: ["car 1", id])
            let run = dir.appendingPathComponent("run").path
            let result = try Convoy.run(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run], timeout: 30)
            #expect(result.status == 2 && result.output.contains(message), "\(result.output)")
            #expect(!FileManager.default.fileExists(atPath: run))
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aLateTraceStartsAtItsFirstSampleAndAStoppedLauncherIsRecordedAsItsOutage() async throws {
        // A SUMO-like trace that begins after a 300 s warm-up.
        let dir = try Fixture.makeScenario(duration: 10, faults: """
              - { at: 4, node: rsu-1, mode: crash, for: 3 }
              - { at: 50, node: rsu-2, mode: hang, for: 1 }

            """, traceStart: 300)
        let scenario = dir.appendingPathComponent("scenario.yaml").path
        let empty = try Convoy.run(["launch", scenario, "--out", dir.appendingPathComponent("empty").path], timeout: 30)
        #expect(empty.status == 2, "\(empty.output)")
        #expect(empty.output.contains("no vehicle is on the road in the run's window"), "\(empty.output)")
        #expect(empty.output.contains("--start first"), "\(empty.output)")

        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", scenario, "--out", run, "--start", "first"])
        try await Fixture.waitUntil("vehicles made requests", timeout: 40) {
            try Fixture.reading(run) { !(try $0.fetchRequests()).isEmpty }
        }
        // A partition, then a degrade of the same node: refused while the partition lasts.
        let partition = try Convoy.run(["fail", run, "rsu-2", "--mode", "partition", "--for", "2"], timeout: 20)
        #expect(partition.status == 0, "\(partition.output)")
        let degrade = try Convoy.run(["fail", run, "rsu-2", "--mode", "degrade"], timeout: 20)
        #expect(degrade.status == 1 && degrade.output.contains("already has an active partition"), "\(degrade.output)")
        // Stop the launcher (and so the bus) across the scheduled crash at t = 4 s.
        let clock = try RunConfig.load(runDirectory: run).clock
        #expect(clock.now() < 3.5, "the run went past the fault before the test could stop the launcher")
        kill(launch.process.processIdentifier, SIGSTOP)
        try await Task.sleep(for: .seconds(max(0, 4.5 - clock.now()) + 1))
        kill(launch.process.processIdentifier, SIGCONT)
        let result = try await launch.wait(timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("the fault at t = 50 s (hang rsu-2) lies outside the run's 0–10 s and will not fire"), "\(result.output)")
        #expect(result.output.contains("the launcher did not run for"), "\(result.output)")
        #expect(result.output.contains("s late (the launcher was busy)"), "\(result.output)")

        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        #expect(try db.metadata()["trace_offset"] == "300.0")
        #expect(Set(try db.fetchRequests().map(\.vehicleID)) == Set(Fixture.vehicles))
        let faults = try db.fetchFaults()
        #expect(faults.allSatisfy { $0.endedAt != nil }, "\(faults)")
        #expect(faults.map(\.mode).sorted() == ["crash", FaultRow.launcherOutage, "partition"], "\(faults)")
        let crash = try #require(faults.first { $0.mode == "crash" })
        #expect(crash.detail?.contains("late") == true, "\(crash)")
        // Detections while the bus was down are the launcher's outage, not failures of rsu-1/rsu-2.
        let report = RunReport(snapshot: try db.snapshot())
        #expect(report.deadDetectionsInLauncherOutages > 0)
        let outage = try #require(report.faults.first { $0.fault.mode == FaultRow.launcherOutage })
        #expect(outage.observers > 0)
        #expect(report.nodeFaults.count == 2)
    }

    @Test(.timeLimit(.minutes(1)))
    func sigtermAtAnExtremelySlowSpeedStopsWithinTheWallCap() async throws {
        let dir = try Fixture.makeScenario(duration: 30, faults: "")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run, "--speed", "1e-9"])
        try await Fixture.waitUntil("the vehicles are up", timeout: 30) {
            try Fixture.reading(run) { try $0.fetchNodes().filter { $0.role == .vehicle }.count == Fixture.vehicles.count }
        }
        let stopped = Date()
        kill(launch.process.processIdentifier, SIGTERM)
        let result = try await launch.wait(timeout: 40)
        #expect(result.status == 128 + SIGTERM, "\(result.output)")
        #expect(Date().timeIntervalSince(stopped) < 25, "took \(Date().timeIntervalSince(stopped)) s")
        #expect(Fixture.processes(mentioning: run).isEmpty)
    }
}

extension Convoy {
    /// Runs any program (not only convoy) to completion or `timeout`.
    static func runTool(_ path: String, _ arguments: [String], timeout: Double) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Read while it runs, so that a chatty child never blocks on a full pipe.
        let collected = Collected()
        let done = DispatchSemaphore(value: 0)
        let reader = pipe.fileHandleForReading
        DispatchQueue.global().async {
            collected.data = readAll(reader)
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: collected.data, as: UTF8.self))
    }

    /// Everything until end of file. Not `readDataToEndOfFile`: it traps on EINTR (a child's
    /// SIGCHLD can interrupt the read).
    static func readAll(_ handle: FileHandle) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(handle.fileDescriptor, &buffer, buffer.count)
            if n > 0 {
                data.append(contentsOf: buffer[0..<n])
            } else if n == 0 || errno != EINTR {
                return data
            }
        }
    }
}

private final class Collected: @unchecked Sendable {
    var data = Data()
}
