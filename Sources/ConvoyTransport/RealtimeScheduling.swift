import Foundation

/// Real-time scheduling (Linux `SCHED_FIFO`) for the threads that move a run's messages: the
/// nodes' and the launcher's event-loop I/O threads, their libzmq I/O threads ("ZMQbg/IO/…"),
/// the bus's proxy thread, and one priority lower the bus's libzmq I/O thread.
///
/// On a loaded machine a thread that wakes for a timer or a message waits for a core behind
/// whatever the scheduler is running; `SCHED_FIFO` lets it preempt every normally scheduled
/// thread at once. These threads only move messages and run a node's short handlers, so they
/// take little CPU; the heavy work (recording to SQLite, model calls, file writes) stays on
/// normally scheduled threads, and the kernel keeps 5 % of each second for those even if a
/// real-time thread never blocked (`sched_rt_runtime_us`). Needs `CAP_SYS_NICE` or
/// `RLIMIT_RTPRIO` ≥ `priority` (`ulimit -r`).
public enum RealtimeScheduling {
    /// The priority of the threads that move messages: above every normally scheduled thread,
    /// and the bus's, below the kernel's own real-time threads.
    public static let priority: Int32 = 2
    /// The bus's libzmq I/O thread: it encrypts a copy of each message per subscriber, in
    /// bursts that must not hold a core against the nodes' wake-ups (the nodes preempt it), yet
    /// must not wait behind normally scheduled work either (beacons would reach their receivers
    /// late).
    public static let busPriority: Int32 = 1

    /// Whether this process may use `SCHED_FIFO` at `priority` (tried on the calling thread, which
    /// is left as it was).
    public static func permitted() -> Bool {
        // The kernel's calls on thread 0 (the calling thread), as `setCallingThread` uses: glibc's
        // pthread_*schedparam keep a cache of their own that those calls would leave stale.
        let policy = sched_getscheduler(0)
        var saved = sched_param()
        guard policy >= 0, sched_getparam(0, &saved) == 0 else { return false }
        var param = sched_param()
        param.sched_priority = priority
        guard sched_setscheduler(0, SCHED_FIFO, &param) == 0 else { return false }
        _ = sched_setscheduler(0, policy, &saved)
        return true
    }

    /// Puts the calling thread under `SCHED_FIFO` at `priority` (`on`) or back under normal
    /// scheduling; false if refused. Threads and processes it creates afterwards start under
    /// normal scheduling (`SCHED_RESET_ON_FORK`): a dispatch worker or an HTTP client's thread
    /// started from a node's handler does not inherit it.
    @discardableResult
    public static func setCallingThread(_ on: Bool) -> Bool {
        var param = sched_param()
        param.sched_priority = on ? priority : 0
        return sched_setscheduler(0, on ? SCHED_FIFO | resetOnFork : SCHED_OTHER, &param) == 0  // 0: the calling thread
    }

    /// Puts the calling thread and the process's libzmq I/O threads (real-time from their start
    /// in a `ZMQContext(realtimePriority:)`) back under normal scheduling.
    public static func leave() {
        setCallingThread(false)
        var param = sched_param()
        for tid in libzmqIOThreads() { _ = sched_setscheduler(tid, SCHED_OTHER, &param) }
    }

    /// `SCHED_RESET_ON_FORK` (linux/sched.h), not exported by Glibc's module.
    private static let resetOnFork: Int32 = 0x4000_0000

    /// The thread ids of this process's libzmq I/O threads (named "ZMQbg/IO/N" by libzmq).
    static func libzmqIOThreads() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            guard let tid = pid_t(task),
                  let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                  name.hasPrefix("ZMQbg/IO/") else { return nil }
            return tid
        }
    }
}
