import CProcess
import ConvoyCore
import Foundation

/// A node process the launcher spawned.
struct NodeProcess {
    enum State: Equatable {
        case running
        /// SIGSTOPped by a hang fault.
        case hung
        /// Killed by a crash fault; waits for recovery.
        case crashed
        case exited(String)
    }

    var id: String
    var role: NodeRole
    var incarnation: Int
    var pid: pid_t
    var state: State
    var arguments: [String]
    var logPath: String
}

/// Runs every `posix_spawn` on one thread that lives as long as the launcher. Children ask for
/// PR_SET_PDEATHSIG, which fires when the *thread* that spawned them exits, not the process:
/// spawned from Swift's pool, whose idle threads come and go, they would be killed at random.
final class SpawnThread: @unchecked Sendable {
    // `jobs` is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "convoy-spawn"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result (a spawn takes about a millisecond).
    func run<T>(_ body: @escaping () -> T) -> T {
        var result: T?
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append {
            result = body()
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return result!
    }
}

/// Spawns and reaps node processes. Children run in their own process group (a terminal's Ctrl-C
/// reaches only the launcher, which then stops them in order) and die with the launcher (PDEATHSIG).
struct ProcessTable {
    let executable: String
    private let spawner = SpawnThread()
    private(set) var nodes: [String: NodeProcess] = [:]
    private var byPID: [pid_t: String] = [:]
    /// Processes that are not nodes (the trainer), by pid: their names.
    private(set) var helpers: [pid_t: String] = [:]
    /// Helpers that ended since the last look: (name, how).
    var helpersEnded: [(String, String)] = []

    init(executable: String) { self.executable = executable }

    enum SpawnError: Error, CustomStringConvertible {
        case failed(String, Int32)
        var description: String {
            switch self {
            case .failed(let id, let code): "cannot start node \(id): \(String(cString: strerror(code)))"
            }
        }
    }

    /// Spawns `executable ARGUMENTS` on the spawn thread, output to `logPath`.
    private func launch(_ executable: String, _ arguments: [String], logPath: String, name: String) throws -> pid_t {
        let argv = [executable] + arguments
        let pid = spawner.run { () -> pid_t in
            var cArgs = argv.map { strdup($0) }
            cArgs.append(nil)
            defer { for p in cArgs { free(p) } }
            return convoy_spawn(executable, &cArgs, logPath)
        }
        guard pid > 0 else { throw SpawnError.failed(name, -pid) }
        return pid
    }

    mutating func spawn(id: String, role: NodeRole, incarnation: Int, arguments: [String], logPath: String) throws -> pid_t {
        let pid = try launch(executable, arguments, logPath: logPath, name: id)
        nodes[id] = NodeProcess(id: id, role: role, incarnation: incarnation, pid: pid, state: .running, arguments: arguments,
                                logPath: logPath)
        byPID[pid] = id
        return pid
    }

    /// Starts a process that is not a node (`executable` with `arguments`), output to `logPath`.
    mutating func spawnHelper(name: String, executable: String, arguments: [String], logPath: String) throws -> pid_t {
        let pid = try launch(executable, arguments, logPath: logPath, name: name)
        helpers[pid] = name
        return pid
    }

    func signalHelpers(_ sig: Int32) {
        for pid in helpers.keys { kill(pid, sig) }
    }

    subscript(id: String) -> NodeProcess? {
        get { nodes[id] }
        set { nodes[id] = newValue }
    }

    func alive(_ role: NodeRole? = nil) -> [NodeProcess] {
        nodes.values.filter { ($0.state == .running || $0.state == .hung) && (role == nil || $0.role == role) }
    }

    mutating func signal(_ id: String, _ sig: Int32) {
        guard let node = nodes[id], node.state == .running || node.state == .hung else { return }
        kill(node.pid, sig)
    }

    /// Collects exited children: (node id, description of how it ended).
    mutating func reap() -> [(NodeProcess, String)] {
        var out: [(NodeProcess, String)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { break }
            let signal = status & 0x7f
            let how = signal == 0 ? "exited \((status >> 8) & 0xff)" : "killed by signal \(signal)"
            if let name = helpers.removeValue(forKey: pid) { helpersEnded.append((name, how)) }
            guard let id = byPID.removeValue(forKey: pid), var node = nodes[id], node.pid == pid else { continue }
            if node.state != .crashed { node.state = .exited(how) }
            nodes[id] = node
            out.append((node, how))
        }
        return out
    }
}
