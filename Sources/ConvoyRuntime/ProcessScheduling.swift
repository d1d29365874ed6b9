import CProcess
import Foundation

/// Short scheduler slices for the run's processes. A run is hundreds of processes that each wake
/// for a message and sleep again; on a busy machine a woken thread otherwise waits for the running
/// one's slice (a few ms with the kernel's default), which is the emulator's latency tail. Linux's
/// EEVDF scheduler (6.12 and later) lets a thread ask for a shorter slice, without privileges; a
/// thread with a shorter slice than the running one preempts it when it wakes. Older kernels
/// accept the request and ignore it.
public enum ProcessScheduling {
    /// Asks for a slice of `microseconds` on every thread of this process (threads and processes it
    /// creates later inherit it). Returns the slice the kernel keeps, in µs: 0 where it has no
    /// custom slices, nil if the request failed.
    @discardableResult
    public static func requestSlice(microseconds: Int) -> Int? {
        let ns = UInt64(max(0, microseconds)) * 1000
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"))?.compactMap { Int32($0) } ?? [0]
        var failed = false
        for tid in threads { failed = convoy_set_sched_slice(tid, ns) != 0 || failed }
        let kept = convoy_sched_slice(0)
        return failed || kept < 0 ? nil : Int(kept / 1000)
    }
}
