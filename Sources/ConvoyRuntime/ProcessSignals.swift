import CProcess
import Foundation

/// Makes the process die with its launcher (no orphans even if the launcher is SIGKILLed) and
/// turns SIGTERM/SIGINT into a call of `handler` on the main queue.
public enum ProcessSignals {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    public static func dieWithParent(expectedParent: Int32) {
        _ = convoy_set_parent_death_signal(SIGKILL)
        if getppid() != expectedParent { exit(1) }  // the parent died before prctl
    }

    /// Calls `handler` once per SIGTERM/SIGINT, on the main dispatch queue.
    public static func onTermination(_ handler: @escaping @Sendable (Int32) -> Void) {
        on([SIGTERM, SIGINT], handler)
    }

    /// Calls `handler` once per delivery of any of `signals`, on the main dispatch queue.
    public static func on(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler { handler(sig) }
            source.resume()
            sources.append(source)
        }
    }
}
