import ConvoyRuntime
import ConvoyRecording
import ConvoyTransport
import ConvoyWire
import Foundation
import Testing

/// Runs of the real `convoy` binary, with faults injected and hard time-outs.
@Suite("End to end: the real binary", .serialized)
struct EndToEndTests {
    @Test(.timeLimit(.minutes(2)))
    func crashAndHangLeaveNoRequestWithoutATerminalState() async throws {
        let dir = try Fixture.makeScenario(duration: 14, faults: "  - { at: 3, node: rsu-1, mode: crash, for: 4 }\n")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        // A live fault from another "terminal" while the fleet runs, once rsu-1 is back from its crash.
        try await Fixture.waitUntil("rsu-1 restarted", timeout: 60) {
            try Fixture.reading(run) { try $0.fetchNodes().contains { $0.nodeID == "rsu-1" && $0.incarnation == 2 } }
        }
        // While the run is on, the nodes' I/O threads are real-time where the machine permits it —
        // every server's (the restarted rsu-1 too, which began after t = 0, once its process is
        // up) and running vehicles' (one just spawned or stopping has none) — and none where not.
        let nodes = { (servers: Bool) in
            Fixture.processes(mentioning: run).filter {
                let command = Fixture.commandLine($0)
                return command.contains(" node ") && command.contains("--role vehicle") != servers
            }
        }
        if RealtimeScheduling.permitted() {
            try await Fixture.waitUntil("every server node has real-time threads", timeout: 20) {
                let servers = nodes(true)
                return servers.count == 4 && servers.allSatisfy { Fixture.realtimeThreads(of: $0) >= 2 }
            }
            #expect(nodes(false).contains { Fixture.realtimeThreads(of: $0) >= 2 })
        } else {
            let threads = (nodes(true) + nodes(false)).map { Fixture.realtimeThreads(of: $0) }
            #expect(threads.count >= 4 && threads.allSatisfy { $0 == 0 }, "real-time threads per node process: \(threads)")
        }
        let fail = try Convoy.run(["fail", run, "rsu-2", "--mode", "hang", "--for", "2"], timeout: 20)
        #expect(fail.status == 0, "convoy fail: \(fail.output)")
        // Faults apply to RSUs and edge servers only.
        let cloud = try Convoy.run(["fail", run, "cloud"], timeout: 20)
        #expect(cloud.status != 0 && cloud.output.contains("not an RSU or edge server"), "convoy fail cloud: \(cloud.output)")
        // Garbage on rsu-1's access socket (restarted at 7 s) is counted and dropped; rsu-1 lives on.
        // Sent until rsu-1 (whose restart may be slow on a loaded machine) has counted it.
        // The intruder holds a key of the run (car 1's): without one it could not even connect.
        let config = try RunConfig.load(runDirectory: run)
        let stolen = try NodeKeys.read(path: config.keyPath(of: "car 1"))
        let rsuKey = try #require(config.security?.serverKeys["rsu-1"])
        let context = try ZMQContext()
        let intruder = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.dealer, connect: [config.endpoint(of: "rsu-1")], lingerMs: 1000,
                       security: .client(stolen.client, serverKey: rsuKey)),
        ])
        let garbage: [[UInt8]] = [Array("not convoy".utf8), [0x43, 0x56, 0x09, 0x01], [0x43, 0x56, 0x03, 0xee, 0, 1, 0x41]]
        var counted = false
        for _ in 0..<20 where !counted {
            for frame in garbage { intruder.send([frame], on: 0) }
            try await Task.sleep(for: .milliseconds(400))
            let live = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
            counted = try live.fetchCounters().contains { $0.nodeID == "rsu-1" && $0.name == "frames_bad_magic" }
            try live.close()
        }
        await intruder.stop()
        await context.close()
        #expect(counted, "rsu-1 never counted the garbage frames")
        let result = try await launch.wait(timeout: 60)
        #expect(result.status == 0, "launch output: \(result.output)")

        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        #expect(try db.metadata()["scheduling"] == (RealtimeScheduling.permitted() ? "realtime" : "normal"))
        let requests = try db.fetchRequests()
        let attempts = try db.fetchAttempts()
        // Every vehicle that appeared made requests, and every request ended in exactly one terminal state.
        #expect(Set(requests.map(\.vehicleID)) == Set(Fixture.vehicles))
        #expect(requests.allSatisfy { $0.status != nil }, "open requests: \(requests.filter { $0.status == nil }.map(\.requestID))")
        #expect(attempts.allSatisfy { $0.outcome != "pending" })
        // The crash and the hang were recorded, and vehicles failed over.
        let faults = try db.fetchFaults()
        #expect(faults.map(\.mode).sorted() == ["crash", "hang"])
        #expect(faults.allSatisfy { $0.endedAt != nil })
        let detections = try db.fetchDetections().filter { $0.peer == "rsu-1" && $0.state == "dead" }
        #expect(!detections.isEmpty)
        // Requests kept completing during the crash, through the other RSU or the macro cell.
        let duringCrash = requests.filter { $0.status == .completed && $0.createdAt > 4 && $0.createdAt < 6.5 }
        #expect(!duringCrash.isEmpty)
        #expect(duringCrash.allSatisfy { $0.servedBy != "rsu-1" })
        let completed = requests.filter { $0.status == .completed }.count
        #expect(Double(completed) >= 0.8 * Double(requests.count), "only \(completed) of \(requests.count) completed")

        // Links: every request crossed a metered cell, samples of modelled vs actual delivery were
        // recorded, and vehicles changed serving cell when rsu-1 died and came back.
        let stats = try db.fetchLinkStats()
        let uplink = stats.filter { $0.link == "cellular-up" && $0.kind == "request" }.reduce(0) { $0 + $1.delivered }
        #expect(uplink > 0)
        #expect(try db.fetchLinkSamples().contains { $0.link == "cellular-down" && $0.actualAt >= $0.modelledAt - 0.0005 })
        let handovers = try db.fetchHandovers()
        #expect(Set(handovers.filter { $0.event == "attach" }.map(\.vehicleID)) == Set(Fixture.vehicles))
        #expect(handovers.contains { $0.event == "handover" && $0.fromCell == "rsu-1" })
        // Processes present at t = 0 came up before the clock started, and their nodes began at t = 0, not before.
        #expect(result.output.contains("t = 0 in"))
        #expect(handovers.allSatisfy { $0.at >= 0 } && attempts.allSatisfy { $0.sentAt >= 0 },
                "records before t = 0: \(handovers.filter { $0.at < 0 }.count) handovers, \(attempts.filter { $0.sentAt < 0 }.count) attempts")

        // Export matches the database.
        let csv = dir.appendingPathComponent("csv").path
        let export = try Convoy.run(["export", run, "--out", csv], timeout: 30)
        #expect(export.status == 0, "\(export.output)")
        #expect(try Fixture.csvRows(csv + "/requests.csv") == requests.count)
        #expect(try Fixture.csvRows(csv + "/attempts.csv") == attempts.count)

        let counters = try db.fetchCounters().filter { $0.nodeID == "rsu-1" }
        for name in ["frames_bad_magic", "frames_unknown_version", "frames_unknown_kind"] {
            #expect((counters.first { $0.name == name }?.value ?? 0) >= 1, "\(name)")
        }
        let rsu1 = try db.fetchNodes().filter { $0.nodeID == "rsu-1" }.sorted { $0.incarnation < $1.incarnation }
        #expect(rsu1.map(\.exitStatus) == ["killed by signal 9", "exited 0"])

        // No process of the run is left.
        #expect(Fixture.processes(mentioning: run).isEmpty)
    }

    @Test(.timeLimit(.minutes(2)))
    func interruptStopsTheFleetAndKeepsTheRecords() async throws {
        let dir = try Fixture.makeScenario(duration: 300, faults: "")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        try await Fixture.waitUntil("car 1 completed a request", timeout: 60) {
            try Fixture.reading(run) { try $0.fetchRequests().contains { $0.vehicleID == "car 1" && $0.status == .completed } }
        }
        // kill -9 one vehicle mid-run: its open requests are closed, nobody else's records suffer.
        let victim = try #require(Fixture.processes(mentioning: run).first { pid in
            Fixture.commandLine(pid).contains("--id car 1 ")
        })
        kill(victim, SIGKILL)
        try await Fixture.waitUntil("others completed requests after the kill", timeout: 60) {
            try Fixture.reading(run) { db in
                guard let killedAt = try db.fetchNodes().first(where: { $0.nodeID == "car 1" })?.endedAt else { return false }
                return try db.fetchRequests().contains { $0.vehicleID != "car 1" && $0.status == .completed && $0.createdAt > killedAt }
            }
        }
        kill(launch.process.processIdentifier, SIGINT)
        let result = try await launch.wait(timeout: 30)
        #expect(result.status == 128 + SIGINT, "\(result.output)")
        // The vehicle that died on its own is reported: the run is no clean success.
        #expect(result.output.contains("car 1 killed by signal 9 on its own"), "\(result.output)")
        #expect(Fixture.processes(mentioning: run).isEmpty)
        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        let requests = try db.fetchRequests()
        #expect(!requests.isEmpty)
        #expect(requests.allSatisfy { $0.status != nil })
        #expect(try db.integrityCheck() == ["ok"])
        let victimRequests = requests.filter { $0.vehicleID == "car 1" }
        #expect(!victimRequests.isEmpty)
        #expect(victimRequests.allSatisfy { $0.reason == nil || $0.reason!.contains("vehicle-lost") || $0.status == .completed
            || $0.status == .expired })
        // The other vehicles kept completing requests after the kill.
        let victimNode = try #require(try db.fetchNodes().first { $0.nodeID == "car 1" })
        #expect(victimNode.exitStatus == "killed by signal 9")
        let killedAt = try #require(victimNode.endedAt)
        let others = requests.filter { $0.vehicleID != "car 1" && $0.status == .completed && $0.createdAt > killedAt }
        #expect(!others.isEmpty, "no request created after the kill at \(killedAt) s completed")
    }

    @Test(.timeLimit(.minutes(1)))
    func killingTheLauncherTakesItsFleetWithIt() async throws {
        let dir = try Fixture.makeScenario(duration: 300, faults: "")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        try await Fixture.waitUntil("the fleet is up and recording", timeout: 40) {
            try Fixture.processes(mentioning: run).count > 4 && Fixture.reading(run) { !(try $0.fetchRequests()).isEmpty }
        }
        kill(launch.process.processIdentifier, SIGKILL)
        _ = try await launch.wait(timeout: 10)
        try await Fixture.waitUntil("no orphans: \(Fixture.processes(mentioning: run))", timeout: 15) {
            Fixture.processes(mentioning: run).isEmpty
        }
        // What was recorded up to the kill is intact.
        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        #expect(try db.integrityCheck() == ["ok"])
        #expect(!(try db.fetchRequests()).isEmpty)
        try db.close()
        // The report says the run was cut short, and the socket directory the killed launcher left
        // behind is cleaned up by the next convoy command.
        let sockets = try RunConfig.load(runDirectory: run).socketDirectory
        #expect(FileManager.default.fileExists(atPath: sockets))
        let report = try Convoy.run(["report", run, "--no-plots"], timeout: 30)
        #expect(report.status == 0, "\(report.output)")
        #expect(report.output.contains("this run was CUT SHORT"), "\(report.output)")
        #expect(!FileManager.default.fileExists(atPath: sockets), "stale socket directory \(sockets) left")
    }

    @Test(.timeLimit(.minutes(1)))
    func aBadScenarioFailsWithFileLineAndField() throws {
        let dir = try Fixture.makeScenario(duration: 5, faults: "  - { at: 1, node: rsu-1, mode: explode }\n")
        let result = try Convoy.run(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out",
                                     dir.appendingPathComponent("run").path], timeout: 30)
        #expect(result.status != 0)
        #expect(result.output.contains("scenario.yaml:"))
        #expect(result.output.contains("faults[0].mode"))
        #expect(result.output.contains("expected one of crash, hang, partition, degrade"))
    }

    @Test(.timeLimit(.minutes(1)))
    func linkPrintsThePapersWorkedNumbers() throws {
        let result = try Convoy.run(["link", "cellular", "--distance", "100", "--json"], timeout: 20)
        #expect(result.status == 0, "\(result.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(abs((json["path_loss_db"] as? Double ?? 0) - 90.5) < 0.05)
        #expect(abs((json["snr_db"] as? Double ?? 0) - 12.5) < 0.05)
        #expect(abs((json["rate_bps"] as? Double ?? 0) / 1e6 - 84.6) < 0.05)
        let bad = try Convoy.run(["link", "cellular"], timeout: 20)
        #expect(bad.status != 0)
        #expect(bad.output.contains("--distance"))
    }

    @Test(.timeLimit(.minutes(1)), arguments: [false, true])
    func benchTransportMeasuresConvoyBesideRawZeroMQ(curve: Bool) throws {
        let result = try Convoy.run(["bench", "transport", "--messages", "300", "--rate", "3000", "--json"] + (curve ? ["--curve"] : []),
                                    timeout: 50)
        #expect(result.status == 0, "\(result.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Double])
        for key in ["p50_us", "p99_us", "raw_p50_us", "raw_p99_us", "ratio_p50", "ratio_p99"] { #expect((json[key] ?? 0) > 0, "\(key)") }
        #expect(json["curve"] == (curve ? 1 : 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func failOnARunThatIsNotRunningIsAClearError() throws {
        let result = try Convoy.run(["fail", "/nonexistent/run", "rsu-1"], timeout: 20)
        #expect(result.status != 0)
        #expect(result.output.contains("not a Convoy run directory"))
        // Bad numbers on the command line are bad input (exit 2), with what was wrong.
        for (arguments, message) in [(["fail", "/nonexistent/run", "rsu-1", "--for", "-1"], "--for must be a positive number of seconds"),
                                     (["fail", "/nonexistent/run", "rsu-1", "--for"], "Missing value for '--for"),
                                     (["launch", "--speed", "-2"], "--speed must be a positive number"),
                                     (["launch", "--start", "soon"], "--start must be `first` or a trace time")] {
            let bad = try Convoy.run(arguments, timeout: 20)
            #expect(bad.status == 2 && bad.output.contains(message), "\(arguments): \(bad.status) \(bad.output)")
        }
    }
}

/// A small deterministic world: a straight 800 m road, two RSUs covering it, one edge, a cloud
/// and a macro cell; four vehicles drive along it for the whole run.
enum Fixture {
    static let vehicles = ["car 1", "car,2", "car\"3", "càr-4"]

    static let defaultWorkload =
        "workload: { arrival: poisson, mean_interval: 0.5, model: llama-3-8b, input_tokens: 128, output_tokens: 16, deadline: 4 }"

    /// A scenario on a 800 m line with two RSUs, one edge, the cloud and a macro cell (or `map`),
    /// four vehicles driving along it, `workload` and `extra` top-level lines.
    static func makeScenario(duration: Int, faults: String, map customMap: String? = nil, workload: String = defaultWorkload,
                             extra: String = "", traceStart: Int = 0, vehicles: [String] = vehicles) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let map = customMap ?? """
        name: line
        cloud: { id: cloud, compute: { device: a100-80gb, slots: 8, queue: 64 } }
        macro: { id: macro, x: 400, y: 0, radius: 2000 }
        edges:
          - { id: edge-1, x: 400, y: 50, rsus: [rsu-1, rsu-2], compute: { device: rtx-4090, slots: 8, queue: 32 } }
        rsus:
          - { id: rsu-1, x: 300, y: 20, radius: 600 }
          - { id: rsu-2, x: 500, y: 20, radius: 600 }
        links:
          macro: { bandwidth_mhz: 10, noise_dbm: -99 }

        """
        let scenario = """
        name: e2e
        map: map.yaml
        trace: trace.csv
        duration: \(duration)
        seed: 3
        \(workload)
        \(extra)
        liveness: { beacon_interval: 0.1, suspect_after: 2, dead_after: 3 }
        faults:
        \(faults.isEmpty ? "  []" : faults)
        """.replacingOccurrences(of: "faults:\n  []", with: "faults: []")
        var trace = "time,id,x,y,speed,angle\n"
        for t in stride(from: traceStart, through: traceStart + duration + 5, by: 1) {
            for (i, id) in vehicles.enumerated() {
                let quoted = "\"" + id.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                let x = Double((t * 2 + i * 150) % 800)
                trace += "\(t),\(quoted),\(x),\(Double(i) * 5),2,90\n"
            }
        }
        try map.write(to: dir.appendingPathComponent("map.yaml"), atomically: true, encoding: .utf8)
        try scenario.write(to: dir.appendingPathComponent("scenario.yaml"), atomically: true, encoding: .utf8)
        try trace.write(to: dir.appendingPathComponent("trace.csv"), atomically: true, encoding: .utf8)
        return dir
    }

    /// Launches `dir`'s scenario into `dir/run`, expects a clean exit and no process left, and
    /// opens the run's database.
    static func launchToEnd(_ dir: URL, timeout: Double = 90) async throws -> RunDatabase {
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        let result = try await launch.wait(timeout: timeout)
        #expect(result.status == 0, "\(result.output)")
        #expect(processes(mentioning: run).isEmpty)
        return try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
    }

    /// Data rows of an RFC 4180 file (records, not lines: quoted fields may hold newlines).
    static func csvRows(_ path: String) throws -> Int {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var records = 0, inQuotes = false, sawContent = false
        for ch in text.unicodeScalars {
            if ch == "\"" { inQuotes.toggle() }
            if ch == "\n" && !inQuotes {
                records += 1
                sawContent = false
            } else if ch != "\r" {
                sawContent = true
            }
        }
        if sawContent { records += 1 }
        return records - 1  // the header
    }

    static func commandLine(_ pid: Int32) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "" }
        return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// Waits until `condition` holds, checking every 100 ms; records an issue (and throws) after
    /// `timeout` seconds. Errors from `condition` count as "not yet".
    static func waitUntil(_ what: @autoclosure () -> String, timeout: Double, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out after \(timeout) s waiting for: \(what())")
        throw CancellationError()
    }

    /// Reads the run's database while the launcher writes it.
    static func reading<T>(_ run: String, _ body: (RunDatabase) throws -> T) throws -> T {
        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        defer { try? db.close() }
        return try body(db)
    }

    /// Pids of processes whose command line mentions `text`.
    /// How many threads of process `pid` run under SCHED_FIFO (policy, field 41 of their stat).
    static func realtimeThreads(of pid: Int32) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.filter { task in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")  // from field 3 on
            return fields.count > 38 && fields[38] == "1"
        }.count
    }

    static func processes(mentioning text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), commandLine(pid).contains(text) else { return false }
            // A zombie is already gone as far as the test cares.
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
    }
}

/// The `convoy` binary next to the test bundle.
enum Convoy {
    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["CONVOY_BIN"] { return explicit }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [root.appendingPathComponent(".build/debug/convoy").path] +
            ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(".build").path)) ?? [])
            .map { root.appendingPathComponent(".build/\($0)/debug/convoy").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    struct Running {
        let process: Process
        let output: Pipe

        func wait(timeout: Double) async throws -> (status: Int32, output: String) {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            if process.isRunning {
                process.interrupt()
                try await Task.sleep(for: .seconds(2))
                kill(process.processIdentifier, SIGKILL)
                Issue.record("convoy did not finish within \(timeout) s")
            }
            process.waitUntilExit()
            let text = String(decoding: Convoy.readAll(output.fileHandleForReading), as: UTF8.self)
            return (process.terminationStatus, text)
        }
    }

    static func start(_ arguments: [String]) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return Running(process: process, output: pipe)
    }

    /// Runs `convoy ARGUMENTS` to completion, or kills it after `timeout` seconds.
    static func run(_ arguments: [String], timeout: Double) throws -> (status: Int32, output: String) {
        try runTool(binary, arguments, timeout: timeout)
    }
}
