internal import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// The raw-libzmq baseline of `convoy bench transport`: the same socket types, endpoint and
/// security, driven directly by one thread each (`zmq_poll`, `zmq_msg_recv`, `zmq_send`) with no
/// event loop, outbox, actor or AsyncStream in between, so that Convoy's overhead is a ratio
/// measured in the same run.
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
        var sent = 0
        var latencies: [Double] = []
        latencies.reserveCapacity(messages)
        while latencies.count < messages {
            if sent < messages, now() >= start + Double(sent) * interval {
                _ = try socket.send([peer!, stamp(0) + padding])
                sent += 1
                continue
            }
            // Wait for a reply until the next send is due (poll's milliseconds: spin the last one).
            let untilNext = sent < messages ? start + Double(sent) * interval - now() : 1.0
            try wait(socket, timeoutMs: Int(max(0, untilNext - 0.001) * 1000))
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
