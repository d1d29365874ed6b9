import ConvoyCore
import ConvoyMobility
import ConvoyScenario
import Foundation

/// Layout of a run directory:
/// `run.json` (the run as the nodes see it), `run.sqlite`, `scenario.yaml` and `map.yaml` (copies
/// of what was run), `trajectories/` (one file per vehicle), `logs/` (one log per node process).
enum RunDirectory {
    /// What a launch writes into its run directory (removed again when the launch cannot start).
    static let entries = [".reserve", "run.json", "run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "scenario.yaml", "map.yaml",
                          "logs", "trajectories", "faults"]

    /// The run directory to use: `path`, or `runs/<scenario>-<timestamp>` in the working directory.
    ///
    /// - Throws: `InputError` when `path` already holds a run.
    static func choose(path: String?, scenario: Scenario) throws -> String {
        let fm = FileManager.default
        guard let path else {
            let stamp = DateFormatter()
            stamp.dateFormat = "yyyyMMdd-HHmmss"
            stamp.locale = Locale(identifier: "en_US_POSIX")
            return URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("runs/\(scenario.name)-\(stamp.string(from: Date()))").path
        }
        let directory = URL(fileURLWithPath: path).standardizedFileURL.path
        if fm.fileExists(atPath: URL(fileURLWithPath: directory).appendingPathComponent("run.sqlite").path) {
            throw InputError(file: directory, field: "--out", "already holds a run; choose a new directory")
        }
        return directory
    }

    /// Makes the directory's layout and copies the scenario and map into it.
    static func create(_ directory: String, scenario: Scenario, scenarioPath: String) throws {
        let fm = FileManager.default
        for sub in ["", "logs", "trajectories"] {
            try fm.createDirectory(atPath: URL(fileURLWithPath: directory).appendingPathComponent(sub).path,
                                   withIntermediateDirectories: true)
        }
        for (source, name) in [(scenarioPath, "scenario.yaml"), (scenario.mapPath, "map.yaml")] {
            let target = URL(fileURLWithPath: directory).appendingPathComponent(name)
            try? fm.removeItem(at: target)
            try fm.copyItem(at: URL(fileURLWithPath: source), to: target)
        }
    }

    /// Removes what a launch that could not start wrote: the whole directory when it did not exist
    /// before (`existed` false), else only the launch's own entries.
    static func discard(_ directory: String, existed: Bool) {
        let fm = FileManager.default
        if !existed {
            try? fm.removeItem(atPath: directory)
            return
        }
        for entry in entries { try? fm.removeItem(atPath: URL(fileURLWithPath: directory).appendingPathComponent(entry).path) }
    }

    /// A file-system-safe, unique name for a node's files.
    static func safeName(_ id: String, index: Int) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        let safe = String(id.unicodeScalars.map { allowed.contains($0) && $0.isASCII ? Character($0) : "_" })
        return safe == id && !id.hasPrefix(".") ? id : "\(safe)-\(index)"
    }

    /// One trajectory file per vehicle, for the vehicle process to load alone: the part of its
    /// trajectory inside the run's window, in run time (trace time minus the window's offset).
    static func writeTrajectories(of entries: [TraceIndex.Entry], from trace: TraceIndex, window: RunWindow,
                                  in directory: String) throws -> [VehiclePlan] {
        try entries.enumerated().map { index, entry in
            guard let whole = try trace.trajectory(for: entry.vehicleID) else {
                throw InputError(file: trace.path, field: "vehicle", "the index lists '\(entry.vehicleID)' but holds no trajectory for it")
            }
            let trajectory = whole.clipped(from: window.offset)
            // The window only lists vehicles on the road at some time from its offset on.
            guard let first = trajectory.samples.first else {
                throw InputError(file: trace.path, field: "vehicle", "'\(entry.vehicleID)' has no sample from t = \(window.offset) s on")
            }
            let name = safeName(trajectory.vehicleID, index: index)
            let path = URL(fileURLWithPath: directory).appendingPathComponent("trajectories/\(name).traj").path
            try TrajectoryFile.write(trajectory, to: path)
            return VehiclePlan(id: trajectory.vehicleID, start: trajectory.start, end: trajectory.end,
                               firstPosition: first.position, trajectoryPath: path, logName: name)
        }
    }

    /// The name of the file in a socket directory that holds its launcher's pid.
    private static let ownerFile = "launcher.pid"

    /// A short private directory for the run's ipc:// sockets, holding the launcher's pid so that
    /// a later launch can remove it if this launcher is killed (`removeStaleSocketDirectories`).
    static func makeSocketDirectory() throws -> String {
        var template = Array("/tmp/convoy-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw InputError(file: "/tmp", "cannot create a socket directory: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        try String(getpid()).write(toFile: directory + "/" + ownerFile, atomically: false, encoding: .utf8)
        return directory
    }

    /// Removes the socket directories of launchers that no longer run (killed with SIGKILL, so
    /// they could not clean up). Returns how many were removed.
    @discardableResult
    static func removeStaleSocketDirectories(in parent: String = "/tmp") -> Int {
        let fm = FileManager.default
        var removed = 0
        for name in (try? fm.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix("convoy-") && name.count == 13 {
            let directory = parent + "/" + name
            guard let text = try? String(contentsOfFile: directory + "/" + ownerFile, encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
                  kill(pid, 0) == -1, errno == ESRCH else { continue }
            if (try? fm.removeItem(atPath: directory)) != nil { removed += 1 }
        }
        return removed
    }
}

extension Trajectory {
    /// The part from trace time `offset` on, shifted so that `offset` becomes 0. A vehicle already
    /// on the road at `offset` starts at its interpolated position there.
    func clipped(from offset: Double) -> Trajectory {
        guard offset != 0 else { return self }
        var kept = samples.filter { $0.time >= offset }
        if kept.first?.time != offset, let position = position(at: offset) {
            kept.insert(TraceSample(time: offset, position: position), at: 0)
        }
        let shifted = kept.map { TraceSample(time: $0.time - offset, position: $0.position, speed: $0.speed, angle: $0.angle) }
        return Trajectory(vehicleID: vehicleID, samples: shifted, maxGap: maxGap)
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

/// Disk space set aside in the run directory (a file of real, allocated blocks) and given back when
/// the disk fills, so that the launcher can still close the run consistently: close the open
/// requests, record the result and checkpoint the database.
final class DiskReserve: Sendable {
    static let bytes = 256 * 1024
    let path: String

    /// - Throws: when the space cannot be allocated (the disk is already full).
    init(directory: String) throws {
        path = URL(fileURLWithPath: directory).appendingPathComponent(".reserve").path
        let descriptor = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(descriptor) }
        let status = posix_fallocate(descriptor, 0, off_t(Self.bytes))
        guard status == 0 else {
            unlink(path)
            throw POSIXError(POSIXErrorCode(rawValue: status) ?? .ENOSPC)
        }
    }

    /// Frees the space (idempotent).
    func release() { unlink(path) }
}
