import ConvoyCore
import ConvoyMobility
import ConvoyScenario
import Foundation

/// Layout of a run directory:
/// `run.json` (the run as the nodes see it), `run.sqlite`, `scenario.yaml` and `map.yaml` (copies
/// of what was run), `trajectories/` (one file per vehicle), `logs/` (one log per node process).
enum RunDirectory {
    static func prepare(path: String?, scenario: Scenario, scenarioPath: String) throws -> String {
        let fm = FileManager.default
        let directory: String
        if let path {
            directory = URL(fileURLWithPath: path).standardizedFileURL.path
            if fm.fileExists(atPath: URL(fileURLWithPath: directory).appendingPathComponent("run.sqlite").path) {
                throw InputError(file: directory, field: "--out", "already holds a run; choose a new directory")
            }
        } else {
            let stamp = DateFormatter()
            stamp.dateFormat = "yyyyMMdd-HHmmss"
            stamp.locale = Locale(identifier: "en_US_POSIX")
            directory = URL(fileURLWithPath: fm.currentDirectoryPath)
                .appendingPathComponent("runs/\(scenario.name)-\(stamp.string(from: Date()))").path
        }
        for sub in ["", "logs", "trajectories"] {
            try fm.createDirectory(atPath: URL(fileURLWithPath: directory).appendingPathComponent(sub).path,
                                   withIntermediateDirectories: true)
        }
        for (source, name) in [(scenarioPath, "scenario.yaml"), (scenario.mapPath, "map.yaml")] {
            let target = URL(fileURLWithPath: directory).appendingPathComponent(name)
            try? fm.removeItem(at: target)
            try fm.copyItem(at: URL(fileURLWithPath: source), to: target)
        }
        return directory
    }

    /// A file-system-safe, unique name for a node's files.
    static func safeName(_ id: String, index: Int) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        let safe = String(id.unicodeScalars.map { allowed.contains($0) && $0.isASCII ? Character($0) : "_" })
        return safe == id && !id.hasPrefix(".") ? id : "\(safe)-\(index)"
    }

    /// One trajectory file per vehicle, for the vehicle process to load alone.
    static func writeTrajectories(of entries: [TraceIndex.Entry], from trace: TraceIndex, in directory: String) throws -> [VehiclePlan] {
        try entries.enumerated().map { index, entry in
            guard let trajectory = try trace.trajectory(for: entry.vehicleID) else {
                throw InputError(file: trace.path, field: "vehicle", "the index lists '\(entry.vehicleID)' but holds no trajectory for it")
            }
            let name = safeName(trajectory.vehicleID, index: index)
            let path = URL(fileURLWithPath: directory).appendingPathComponent("trajectories/\(name).traj").path
            try TrajectoryFile.write(trajectory, to: path)
            return VehiclePlan(id: trajectory.vehicleID, start: trajectory.start, end: trajectory.end,
                               firstPosition: trajectory.samples[0].position, trajectoryPath: path, logName: name)
        }
    }

    /// A short private directory for the run's ipc:// sockets.
    static func makeSocketDirectory() throws -> String {
        var template = Array("/tmp/convoy-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw InputError(file: "/tmp", "cannot create a socket directory") }
        return String(cString: made)
    }
}

/// Where the launcher's status goes: a line refreshed in place on a terminal, plain periodic lines otherwise.
public struct StatusOutput: Sendable {
    public var isTerminal: Bool
    public var write: @Sendable (String) -> Void

    public static let standard = StatusOutput(isTerminal: isatty(STDOUT_FILENO) == 1) { text in
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    public init(isTerminal: Bool, write: @escaping @Sendable (String) -> Void) {
        self.isTerminal = isTerminal
        self.write = write
    }

    func line(_ text: String) {
        write(isTerminal ? "\r\u{1B}[K\(text)\n" : "\(text)\n")
    }

    func status(_ text: String) {
        write(isTerminal ? "\r\u{1B}[K\(text)" : "\(text)\n")
    }
}
