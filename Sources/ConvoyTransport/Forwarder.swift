internal import CZeroMQ
import Foundation
import Synchronization

/// The shared broadcast medium: an XSUB/XPUB proxy. Publishers connect to `inbound`, subscribers to
/// `outbound`; subscriptions travel upstream, so a message only reaches processes that subscribed
/// to its topic. Runs on its own thread and context; `stop()` shuts that context down.
///
/// With `security`, both sides are CURVE servers whose clients the forwarder's own ZAP handler
/// admits (domains `bus-in` and `bus-out`), and every published message must pass `verify` with
/// its publisher's authenticated identity (the envelope's sender must be the key's node):
/// anything else is dropped and counted.
public final class Forwarder: Sendable {
    public struct Security: Sendable {
        public var keys: CurveKeyPair
        public var authorize: ZAPHandler.Authorize
        /// Whether a published message (topic, envelope) may come from `peer`.
        public var verify: @Sendable (_ frames: [[UInt8]], _ peer: String?) -> Bool

        public init(keys: CurveKeyPair, authorize: @escaping ZAPHandler.Authorize,
                    verify: @escaping @Sendable (_ frames: [[UInt8]], _ peer: String?) -> Bool) {
            self.keys = keys
            self.authorize = authorize
            self.verify = verify
        }
    }

    /// What the forwarder did so far.
    public struct Stats: Sendable, Equatable {
        public var forwarded = 0
        /// Bytes of the forwarded messages (all frames), as published (before the fan-out).
        public var forwardedBytes = 0
        /// Published messages whose sender was not their publisher's identity.
        public var refused = 0
        /// Connections refused at the handshake (no key, a key that is not the run's).
        public var handshakeFailures = 0
    }

    private let context: ZMQContext
    private let zap: ZAPHandler?
    private let done = Mutex<Bool>(false)
    private let exited = DispatchSemaphore(value: 0)
    private let statsBox = StatsBox()

    private final class StatsBox: Sendable {
        let value = Mutex(Stats())
    }

    public var stats: Stats { statsBox.value.withLock { $0 } }
    /// Clients the forwarder's ZAP handler refused.
    public var refusedKeys: Int { zap?.refused ?? 0 }

    /// `realtime`: the proxy thread runs under `RealtimeScheduling` as the nodes' I/O threads do,
    /// its libzmq I/O thread at the bus's lower priority (see there).
    public init(inbound: String, outbound: String, security: Security? = nil, realtime: Bool = false) throws {
        // Its libzmq I/O thread (the per-subscriber encryption, in bursts) yields to the nodes'.
        let context = try ZMQContext(realtimePriority: realtime ? RealtimeScheduling.busPriority : nil)
        self.context = context
        zap = try security.map { try ZAPHandler(context: context, authorize: $0.authorize) }
        let started = DispatchSemaphore(value: 0)
        let failure = Mutex<TransportError?>(nil)
        let exited = self.exited
        let statsBox = self.statsBox
        let thread = Thread {
            var front: Socket?, back: Socket?
            var monitors: [Socket] = []
            do {
                front = try Socket(context: context, spec: SocketSpec(.xsub, bind: [inbound],
                                                                      security: security.map { .server($0.keys, domain: "bus-in") }))
                back = try Socket(context: context, spec: SocketSpec(.xpub, bind: [outbound],
                                                                     security: security.map { .server($0.keys, domain: "bus-out") }))
                if security != nil { monitors = try [front!, back!].map { try $0.monitorHandshakes(context: context) } }
            } catch {
                failure.withLock { $0 = error as? TransportError }
            }
            started.signal()
            if realtime { RealtimeScheduling.setCallingThread(true) }
            if let front, let back {
                if let security {
                    Self.proxy(front: front, back: back, monitors: monitors, verify: security.verify, stats: statsBox)
                } else {
                    _ = zmq_proxy(front.handle, back.handle, nil)  // returns on ETERM
                }
            }
            for socket in monitors + [front, back].compactMap({ $0 }) { socket.close() }
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

    /// zmq_proxy with a check of each published message against its publisher's identity.
    private static func proxy(front: Socket, back: Socket, monitors: [Socket],
                              verify: @Sendable ([[UInt8]], String?) -> Bool, stats: StatsBox) {
        var items = ([front, back] + monitors).map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        while true {
            for i in items.indices { items[i].revents = 0 }
            if zmq_poll(&items, Int32(items.count), -1) < 0 {
                if zmq_errno() == EINTR { continue }
                return  // ETERM
            }
            do {
                var forwarded = 0, bytes = 0, refused = 0, failures = 0
                if items[0].revents != 0 {
                    while forwarded + refused < 512, let (frames, peer) = try front.receive() {
                        if verify(frames, peer) {
                            _ = try back.send(frames)
                            forwarded += 1
                            bytes += frames.reduce(0) { $0 + $1.count }
                        } else {
                            refused += 1
                        }
                    }
                }
                if items[1].revents != 0 {
                    // Subscriptions, upstream to the publishers.
                    var n = 0
                    while n < 512, let (frames, _) = try back.receive() {
                        _ = try front.send(frames)
                        n += 1
                    }
                }
                for (i, monitor) in monitors.enumerated() where items[2 + i].revents != 0 {
                    while (try? monitor.receive()) != nil { failures += 1 }
                }
                stats.value.withLock {
                    $0.forwarded += forwarded
                    $0.forwardedBytes += bytes
                    $0.refused += refused
                    $0.handshakeFailures += failures
                }
            } catch {
                return  // ETERM
            }
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
