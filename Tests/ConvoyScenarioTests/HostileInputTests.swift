import ConvoyCore
import ConvoyScenario
import Foundation
import Testing

/// Inputs that used to pass validation and then break a run, or failed without a line to fix.
@Suite struct HostileScenarioInputTests {
    func load(_ scenario: String, map: String = tinyMap, in dir: borrowing TemporaryDirectory) throws -> Scenario {
        try dir.write("map.yaml", map)
        try dir.write("traces/trace.csv", "time,id,x,y\n0,v1,0,0\n")
        return try Scenario.load(path: try dir.write("scenario.yaml", scenario))
    }

    @Test func taskSizesMustFitTheWiresThirtyTwoBitFields() throws {
        let dir = try TemporaryDirectory()
        for (line, key) in [(10, "input_tokens"), (11, "output_tokens"), (13, "payload_bytes"), (14, "result_bytes")] {
            expectInputError(line: line, field: "workload.\(key)", message: "≤ 4294967295 (it crosses the wire as a 32-bit field)") {
                _ = try load(edited(tinyScenario, [line: "  \(key): 4294967296"]), in: dir)
            }
        }
        // The largest value that fits is accepted.
        let s = try load(edited(tinyScenario, [13: "  payload_bytes: 4294967295"]), in: dir)
        #expect(s.workload.tasks[0].payloadBytes == 4_294_967_295)
    }

    @Test func aDuplicateKeyNamesTheLineWhereItRepeats() throws {
        let dir = try TemporaryDirectory()
        // Line 5 (`seed: 7`) becomes a second `duration`.
        expectInputError(line: 5, field: "duration", message: "duplicate key: 'duration' is already set at line 4") {
            _ = try load(edited(tinyScenario, [5: "duration: 90"]), in: dir)
        }
        // In a nested mapping too.
        expectInputError(line: 9, field: "mean_interval", message: "already set at line 8") {
            _ = try load(edited(tinyScenario, [9: "  mean_interval: 2"]), in: dir)
        }
    }

    @Test func aNonUTF8ScenarioNamesTheLineOfTheFirstBadByte() throws {
        let dir = try TemporaryDirectory()
        try dir.write("map.yaml", tinyMap)
        try dir.write("traces/trace.csv", "time,id,x,y\n0,v1,0,0\n")
        var bytes = Array(tinyScenario.utf8)
        let lineStart = bytes.indices.filter { bytes[$0] == 0x0A }[4] + 1  // line 6, `workload:`
        bytes.insert(0xE9, at: lineStart + 3)  // Latin-1 é
        let path = dir.path("scenario.yaml")
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        expectInputError(file: path, line: 6, field: nil, message: "not UTF-8 text: invalid byte 0xE9 at column 4") {
            _ = try Scenario.load(path: path)
        }
    }

    @Test func aDirectoryGivenAsTheScenarioSaysSo() throws {
        let dir = try TemporaryDirectory()
        expectInputError(file: dir.url.path, line: nil, field: nil, message: "is a directory, expected the scenario") {
            _ = try Scenario.load(path: dir.url.path)
        }
    }

    @Test func aTypoInARequiredKeyIsReportedAsTheTypo() throws {
        let dir = try TemporaryDirectory()
        // tinyMap line 19 is rsu-2's `radius: 200`.
        let error = expectInputError(file: dir.path("map.yaml"), line: 19, field: "rsus[1].radus", message: "unknown key 'radus'; did you mean 'radius'?") {
            _ = try load(tinyScenario, map: edited(tinyMap, [19: "    radus: 200"]), in: dir)
        }
        #expect(error?.description.contains("missing") == false)
        // An optional key's typo: the same hint from the unknown-key check.
        expectInputError(line: 5, field: "sed", message: "unknown key 'sed'; did you mean 'seed'?") {
            _ = try load(edited(tinyScenario, [5: "sed: 7"]), in: dir)
        }
    }

    @Test func nodeIDsAreCheckedAtLoad() throws {
        // Two ids that become the same endpoint name.
        var error = #expect(throws: InputError.self) {
            _ = try MapSpec.parse(edited(tinyMap, [16: "  - id: rsu.2"]).replacingOccurrences(of: "id: rsu-1", with: "id: rsu_2")
                .replacingOccurrences(of: "rsus: [rsu-1]", with: "rsus: [rsu_2]"), file: "map.yaml")
        }
        #expect(error?.line == 16 && error?.field == "id", "\(String(describing: error))")
        #expect(error?.message.contains("'rsu_2' (line 12) and 'rsu.2' both become 'rsu_2'") == true, "\(String(describing: error))")
        // Longer than the wire's sender field.
        let long = String(repeating: "r", count: 65)
        error = #expect(throws: InputError.self) {
            _ = try MapSpec.parse(edited(tinyMap, [16: "  - id: \(long)"]), file: "map.yaml")
        }
        #expect(error?.line == 16 && error?.message.contains("65 bytes; ids are at most 64 bytes") == true, "\(String(describing: error))")
        // A 10 kB id is quoted in short.
        let huge = String(repeating: "x", count: 10_000)
        error = #expect(throws: InputError.self) {
            _ = try MapSpec.parse(edited(tinyMap, [16: "  - id: \(huge)"]), file: "map.yaml")
        }
        #expect((error?.description.count ?? .max) < 200, "\(String(describing: error))")
        // The same id under two roles.
        error = #expect(throws: InputError.self) {
            _ = try MapSpec.parse(edited(tinyMap, [16: "  - id: cloud"]), file: "map.yaml")
        }
        #expect(error?.line == 16 && error?.message.contains("used twice (also at line 3)") == true, "\(String(describing: error))")
        // 64 bytes is fine.
        let fits = String(repeating: "r", count: 64)
        #expect(try MapSpec.parse(edited(tinyMap, [16: "  - id: \(fits)"]), file: "map.yaml").rsus[1].id == fits)
    }

    @Test func coordinatesBeyondTheBoundAreRefused() {
        let error = #expect(throws: InputError.self) {
            _ = try MapSpec.parse(edited(tinyMap, [13: "    x: 1e308"]), file: "map.yaml")
        }
        #expect(error?.line == 13 && error?.field == "rsus[0].x", "\(String(describing: error))")
    }

    @Test func startTakesFirstOrATime() throws {
        let dir = try TemporaryDirectory()
        #expect(try load(edited(tinyScenario, [5: "start: first"]), in: dir).start == .firstSample)
        #expect(try load(edited(tinyScenario, [5: "start: 300"]), in: dir).start == .at(300))
        expectInputError(line: 5, field: "start", message: "expected `first` or a trace time in seconds, got 'soon'") {
            _ = try load(edited(tinyScenario, [5: "start: soon"]), in: dir)
        }
    }
}

/// The window of a run in its trace: decided before anything starts.
@Suite struct RunWindowTests {
    let late = [RunWindow.Span(id: "a", start: 300, end: 400), RunWindow.Span(id: "b", start: 350, end: 900)]

    @Test func aTraceThatStartsLateAndAShortRunIsRefusedWithAWayOut() {
        let error = #expect(throws: InputError.self) {
            _ = try RunWindow.plan(spans: late, start: nil, duration: 60, faults: [], trace: "t.xml")
        }
        #expect(error?.file == "t.xml" && error?.field == "start")
        #expect(error?.message.contains("no vehicle is on the road in the run's window (t = 0 to 60 s of the trace)") == true)
        #expect(error?.message.contains("--start first") == true && error?.message.contains("--start 300") == true)
    }

    @Test func startAtTheFirstSampleShiftsTheWindow() throws {
        let w = try RunWindow.plan(spans: late, start: .firstSample, duration: 60, faults: [], trace: "t.xml")
        #expect(w.offset == 300 && w.duration == 60 && w.vehicles == ["a", "b"] && w.warnings.isEmpty)
        let explicit = try RunWindow.plan(spans: late, start: .at(500), duration: nil, faults: [], trace: "t.xml")
        #expect(explicit.offset == 500 && explicit.duration == 400 && explicit.vehicles == ["b"])
    }

    @Test func idleSecondsAndFaultsOutsideTheRunAreWarnedAbout() throws {
        let faults = [FaultSpec(at: 30, node: "rsu-1", mode: .crash, duration: 5), FaultSpec(at: 700, node: "rsu-2", mode: .hang, duration: nil)]
        let w = try RunWindow.plan(spans: late, start: nil, duration: 600, faults: faults, trace: "t.xml")
        #expect(w.offset == 0 && w.vehicles == ["a", "b"])
        #expect(w.warnings.count == 2, "\(w.warnings)")
        #expect(w.warnings[0].contains("no vehicle appears before t = 300 s of the run"))
        #expect(w.warnings[1].contains("the fault at t = 700 s (hang rsu-2) lies outside the run's 0–600 s and will not fire"))
    }

    @Test func aStartAfterTheTraceEndsIsAnError() {
        let error = #expect(throws: InputError.self) {
            _ = try RunWindow.plan(spans: late, start: .at(1000), duration: nil, faults: [], trace: "t.xml")
        }
        #expect(error?.message.contains("after the trace ends") == true)
    }
}
