internal import CZeroMQ
import Foundation
import Synchronization

/// The shared broadcast medium: an XSUB/XPUB proxy. Publishers connect to `inbound`, subscribers to
/// `outbound`; subscriptions travel upstream, so a message only reaches processes that subscribed
/// to its topic. Runs `zmq_proxy` on its own thread and context; `stop()` shuts that context down.
public final class Forwarder: Sendable {
    private let context: ZMQContext
    private let done = Mutex<Bool>(false)
    private let exited = DispatchSemaphore(value: 0)

    public init(inbound: String, outbound: String) throws {
        let context = try ZMQContext()
        self.context = context
        let started = DispatchSemaphore(value: 0)
        let failure = Mutex<TransportError?>(nil)
        let exited = self.exited
        let thread = Thread {
            var front: Socket?
            var back: Socket?
            do {
                front = try Socket(context: context, spec: SocketSpec(.xsub, bind: [inbound]))
                back = try Socket(context: context, spec: SocketSpec(.xpub, bind: [outbound]))
            } catch {
                failure.withLock { $0 = error as? TransportError }
            }
            started.signal()
            if let front, let back {
                _ = zmq_proxy(front.handle, back.handle, nil)  // returns on ETERM
            }
            front?.close()
            back?.close()
            exited.signal()
        }
        thread.name = "convoy-forwarder"
        thread.start()
        started.wait()
        if let error = failure.withLock({ $0 }) {
            exited.wait()
            throw error
        }
    }

    /// Stops the proxy and closes its sockets. Blocks until the proxy thread has exited (milliseconds);
    /// call it from a plain thread or at the end of `main`, not from a hot path.
    public func stop() {
        let first = done.withLock { d -> Bool in
            defer { d = true }
            return !d
        }
        guard first else { return }
        context.shutdown()
        exited.wait()
    }
}
