internal import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// The raw-libzmq baseline of `convoy bench transport`: the same socket types, endpoint and
/// security, driven directly by one thread each (`zmq_poll`, `zmq_msg_recv`, `zmq_send`, a timerfd
/// to pace the sends) with no event loop, outbox or handler in between, so that Convoy's overhead
/// is a ratio measured in the same run. Both ends block while they wait, like Convoy's.
public enum RawBaseline {
    /// The measuring end: binds a ROUTER, waits for the echo's hello, sends `messages` messages of
    /// `bytes` paced at `rate`, and returns each reply's one-way latency: from the echo's send
    /// instant (stamped in its first 8 bytes) to its receipt here, seconds — the hop `convoy bench
    /// transport` times through Convoy's layers.
    public static func measure(context: ZMQContext, spec: SocketSpec, messages: Int, rate: Double, bytes: Int,
                               stamp: (Double) -> [UInt8], readStamp: ([UInt8]) -> Double, now: () -> Double) throws -> [Double] {
        let socket = try Socket(context: context, spec: spec)
        defer { socket.close() }
        var peer: [UInt8]?
        while peer == nil {
            try wait(socket, timeoutMs: 10_000)
            if let (frames, _) = try socket.receive(), frames.count == 2 { peer = frames[0] } else if peer == nil { continue }
        }
        let padding = [UInt8](repeating: 0x2a, count: max(0, bytes - 8))
        let interval = 1 / rate, start = now() + 0.05
        // Paced by a timerfd and blocking in zmq_poll, as Convoy's event loop does: a thread that
        // spun between sends would answer faster than any process that sleeps while it waits.
        let timerFD = timerfd_create(CLOCK_REALTIME, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        defer { close(timerFD) }
        var items = [zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
                     zmq_pollitem_t(socket: nil, fd: timerFD, events: Int16(ZMQ_POLLIN), revents: 0)]
        var sent = 0
        var latencies: [Double] = []
        latencies.reserveCapacity(messages)
        while latencies.count < messages {
            while sent < messages, now() >= start + Double(sent) * interval {
                _ = try socket.send([peer!, stamp(0) + padding])
                sent += 1
            }
            var spec = itimerspec()
            if sent < messages {
                let at = start + Double(sent) * interval, whole = at.rounded(.down)
                spec.it_value.tv_sec = Int(whole)
                spec.it_value.tv_nsec = max(1, Int((at - whole) * 1e9))
            }
            timerfd_settime(timerFD, Int32(TFD_TIMER_ABSTIME), &spec, nil)
            for i in items.indices { items[i].revents = 0 }
            while zmq_poll(&items, 2, sent < messages ? -1 : 10_000) < 0 {
                guard zmq_errno() == EINTR else { throw TransportError("zmq_poll", code: zmq_errno()) }
            }
            var scratch: UInt64 = 0
            if items[1].revents != 0 { _ = read(timerFD, &scratch, 8) }
            while let (frames, _) = try socket.receive(), frames.count == 2, frames[1].count >= 8 {
                latencies.append(now() - readStamp(frames[1]))
            }
        }
        _ = try socket.send([peer!, []])
        return latencies
    }

    /// The echo end: connects a DEALER, says hello, and answers every message with its send
    /// instant in the first 8 bytes, until an empty message.
    public static func echo(context: ZMQContext, spec: SocketSpec, stamp: (Double) -> [UInt8], now: () -> Double) throws {
        let socket = try Socket(context: context, spec: spec)
        defer { socket.close() }
        _ = try socket.send([[]])
        while true {
            try wait(socket, timeoutMs: 10_000)
            while let (frames, _) = try socket.receive(), let frame = frames.last {
                if frame.isEmpty { return }
                var reply = frame
                reply.replaceSubrange(0..<8, with: stamp(now()))
                _ = try socket.send([reply])
            }
        }
    }

    private static func wait(_ socket: Socket, timeoutMs: Int) throws {
        var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        while zmq_poll(&item, 1, timeoutMs) < 0 {
            guard zmq_errno() == EINTR else { throw TransportError("zmq_poll", code: zmq_errno()) }
        }
    }
}
