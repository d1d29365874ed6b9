import Foundation
import Synchronization
import Testing
@testable import ConvoyTransport

/// Waits for the next message on `loop`, failing after `seconds`.
func nextMessage(_ loop: EventLoop, within seconds: Double = 5) async throws -> (socket: Int, frames: [[UInt8]]) {
    let message = try await nextAuthenticated(loop, within: seconds)
    return (message.socket, message.frames)
}

/// The next message with its authenticated peer (CURVE server sockets), failing after `seconds`.
/// Iterating stops the loop's event stream when it times out: use it for the last wait on a loop.
func nextAuthenticated(_ loop: EventLoop, within seconds: Double = 5) async throws -> (socket: Int, frames: [[UInt8]], peer: String?) {
    try await withThrowingTaskGroup(of: (Int, [[UInt8]], String?)?.self) { group in
        group.addTask {
            for await event in loop.events {
                if case .message(let socket, let frames, let peer) = event { return (socket, frames, peer) }
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let first else { throw TimedOut() }
        return first
    }
}

struct TimedOut: Error {}

private func uniqueEndpoint(_ name: String) -> String {
    "inproc://\(name)-\(UUID().uuidString)"
}

@Suite("EventLoop over real ZeroMQ sockets")
struct EventLoopTests {
    @Test func dealerRouterRoundTripOverInproc() async throws {
        let ctx = try ZMQContext()
        let endpoint = uniqueEndpoint("rr")
        let server = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.router, bind: [endpoint])])
        let client = try await EventLoop.start(context: ctx, sockets: [
            SocketSpec(.dealer, connect: [endpoint], routingID: Array("car-1".utf8)),
        ])
        client.send([Array("hello".utf8)], on: 0)
        let (socket, frames) = try await nextMessage(server)
        #expect(socket == 0)
        #expect(frames == [Array("car-1".utf8), Array("hello".utf8)])
        server.send([Array("car-1".utf8), Array("world".utf8)], on: 0)
        let reply = try await nextMessage(client)
        #expect(reply.frames == [Array("world".utf8)])
        await client.stop()
        await server.stop()
    }

    /// Handler mode: messages, timers and posted work run on the I/O thread, in order; what the
    /// handler sends, arms or posts from there is carried out without an eventfd wake-up.
    @Test func handlerModeRunsEverythingOnTheIOThread() async throws {
        let ctx = try ZMQContext()
        let endpoint = uniqueEndpoint("handler")
        let client = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.dealer, connect: [endpoint], routingID: Array("car".utf8))])
        let seen = Mutex<[String]>([])
        let server = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.router, bind: [endpoint])]) { loop in
            loop.post { seen.withLock { $0.append("start \(loop.isCurrentThread)") } }  // before any message
            return { event in
                let here = loop.isCurrentThread
                switch event {
                case .message(_, let frames, _):
                    seen.withLock { $0.append("message \(String(decoding: frames[1], as: UTF8.self)) \(here)") }
                    // Armed from the handler, already due: must still fire without any other wake-up.
                    loop.schedule(timer: 7, atWall: EventLoop.wallNow())
                case .timer(let id, _):
                    seen.withLock { $0.append("timer \(id) \(here)") }
                    loop.post { seen.withLock { $0.append("posted \(loop.isCurrentThread)") } }
                    loop.send([Array("car".utf8), Array("done".utf8)], on: 0)
                }
            }
        }
        #expect(!server.isCurrentThread)
        client.send([Array("hi".utf8)], on: 0)
        let reply = try await nextMessage(client)
        #expect(reply.frames == [Array("done".utf8)])
        await server.stop()
        #expect(seen.withLock { $0 } == ["start true", "message hi true", "timer 7 true", "posted true"])
        await client.stop()
    }

    @Test func pubSubThroughForwarderOverTCPLoopback() async throws {
        let ctx = try ZMQContext()
        let port = 20000 + Int.random(in: 0..<20000)
        let inbound = "tcp://127.0.0.1:\(port)", outbound = "tcp://127.0.0.1:\(port + 1)"
        let forwarder = try Forwarder(inbound: inbound, outbound: outbound)
        defer { forwarder.stop() }
        let subscriber = try await EventLoop.start(context: ctx, sockets: [
            SocketSpec(.sub, connect: [outbound], subscribe: [Array("v2v/1/".utf8)]),
        ])
        let publisher = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.pub, connect: [inbound])])
        // Subscriptions propagate asynchronously: publish until one arrives.
        let receiving = Task { try await nextMessage(subscriber, within: 5) }
        for _ in 0..<50 {
            publisher.send([Array("v2v/2/".utf8), [0]], on: 0)  // not subscribed
            publisher.send([Array("v2v/1/".utf8), [1, 2, 3]], on: 0)
            try await Task.sleep(for: .milliseconds(50))
            if receiving.isCancelled { break }
        }
        let message = try await receiving.value
        #expect(message.frames == [Array("v2v/1/".utf8), [1, 2, 3]])
        await publisher.stop()
        await subscriber.stop()
    }

    @Test func delayedSendLeavesAtItsInstant() async throws {
        let ctx = try ZMQContext()
        let endpoint = uniqueEndpoint("delay")
        let sink = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.pull, bind: [endpoint])])
        let source = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.push, connect: [endpoint])])
        let start = EventLoop.wallNow()
        source.send([[2]], on: 0, atWall: start + 0.2)
        source.send([[1]], on: 0, atWall: start + 0.1)
        let first = try await nextMessage(sink)
        let second = try await nextMessage(sink)
        let elapsed = EventLoop.wallNow() - start
        #expect(first.frames == [[1]])
        #expect(second.frames == [[2]])
        #expect(elapsed >= 0.2)
        await source.stop()
        await sink.stop()
    }

    @Test func timersArriveInOrder() async throws {
        let ctx = try ZMQContext()
        let loop = try await EventLoop.start(context: ctx, sockets: [])
        let now = EventLoop.wallNow()
        loop.schedule(timer: 2, atWall: now + 0.05)
        loop.schedule(timer: 1, atWall: now + 0.02)
        var seen: [UInt64] = []
        for await event in loop.events {
            if case .timer(let id, _) = event { seen.append(id) }
            if seen.count == 2 { break }
        }
        #expect(seen == [1, 2])
        #expect(EventLoop.wallNow() - now >= 0.05)
        await loop.stop()
    }

    @Test func sendingToAGonePeerNeitherBlocksNorCrashes() async throws {
        let ctx = try ZMQContext()
        let port = 20000 + Int.random(in: 0..<20000)
        let endpoint = "tcp://127.0.0.1:\(port)"
        let server = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.router, bind: [endpoint])])
        // A router addressing a peer that never connected: counted as dropped, not an error.
        server.send([Array("nobody".utf8), [1]], on: 0)
        // A dealer whose peer is gone: queued (LINGER 0), and shutdown still returns promptly.
        let client = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.dealer, connect: ["tcp://127.0.0.1:\(port + 1)"])])
        for _ in 0..<100 { client.send([[1, 2, 3]], on: 0) }
        await server.stop()
        #expect(server.stats.sendDropped == 1)
        let clock = ContinuousClock()
        let elapsed = try await clock.measure {
            try await Task.sleep(for: .milliseconds(20))
            await client.stop()
        }
        #expect(elapsed < .seconds(2))
    }

    @Test func contextShutdownEndsTheLoop() async throws {
        let ctx = try ZMQContext()
        let loop = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.pull, bind: [uniqueEndpoint("term")])])
        ctx.shutdown()
        var count = 0
        for await _ in loop.events { count += 1 }  // finishes when the thread sees ETERM
        #expect(count == 0)
        await loop.stop()
    }

    @Test func bindFailureIsReported() async throws {
        let ctx = try ZMQContext()
        await #expect(throws: TransportError.self) {
            _ = try await EventLoop.start(context: ctx, sockets: [SocketSpec(.router, bind: ["bogus://nowhere"])])
        }
    }
}
