import ArgumentParser
import ConvoyCore
import ConvoyTransport
import Foundation
import Synchronization

/// `convoy bench`: benchmarks anyone can re-run (figures in the README).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: transport overhead per hop.",
        subcommands: [Transport.self, Echo.self])

    /// One hop = a message leaving one process's node code and reaching another's, as in the nodes:
    /// the sender's event-loop handler queues it, its I/O thread sends it, ZeroMQ carries it over
    /// ipc://, the receiver's I/O thread hands it to its handler.
    /// No link model. Messages are paced so that the figure is latency, not queueing.
    struct Transport: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-hop latency of the transport between two processes (no link model), beside raw libzmq's.")

        @Option(help: "Messages to time.") var messages = 20_000
        @Option(help: "Messages per second.") var rate = 2_000.0
        @Option(help: "Payload bytes per message.") var bytes = 200
        @Flag(help: "CurveZMQ on both ends (authenticated and encrypted, as in a launch), with a ZAP handler.") var curve = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let endpoint = "ipc://\(directory)/bench"
            let context = try ZMQContext()
            var echoArguments = ["bench", "echo", "--endpoint", endpoint]
            var security: SocketSecurity?
            var zap: ZAPHandler?
            if curve {
                let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
                zap = try ZAPHandler(context: context) { _, key in key == client.publicKey ? "echo" : nil }
                security = .server(server, domain: "bench")
                echoArguments += ["--keys", [client.publicKey, client.secretKey, server.publicKey].joined(separator: ",")]
            }
            // Handler mode, as in the nodes: messages are handled on the I/O thread where they arrive.
            let (signals, signal) = AsyncStream.makeStream(of: Void.self)
            let received = Mutex<(peer: [UInt8]?, latencies: [Double])>((nil, []))
            let loop = try await EventLoop.start(context: context, sockets: [SocketSpec(.router, bind: [endpoint], security: security)]) { _ in
                { [messages] event in
                    guard case .message(_, let frames, _) = event, frames.count == 2 else { return }
                    let now = EmulationClock.wallNow()
                    let signalled = received.withLock { r -> Bool in
                        if frames[1].count < 8 {  // the echo's hello
                            r.peer = frames[0]
                            return true
                        }
                        r.latencies.append(now - readStamp(frames[1]))
                        return r.latencies.count == messages
                    }
                    if signalled { signal.yield() }
                }
            }
            let child = Process()
            child.executableURL = URL(fileURLWithPath: DefaultScenario.executablePath)
            child.arguments = echoArguments
            try child.run()
            defer { if child.isRunning { child.terminate() } }

            // Wait for the echo process to say hello (its routing id).
            var waiting = signals.makeAsyncIterator()
            _ = await waiting.next()
            guard let peer = received.withLock({ $0.peer }) else { throw ValidationError("the echo process did not connect") }

            let padding = [UInt8](repeating: 0x2a, count: max(0, bytes - 8))
            let interval = 1 / rate
            let start = EmulationClock.wallNow() + 0.05
            for i in 0..<messages { loop.send([peer, stamp(0) + padding], on: 0, atWall: start + Double(i) * interval) }
            _ = await waiting.next()
            let latencies = received.withLock { $0.latencies }
            loop.send([peer, []], on: 0)  // tells the echo process to stop
            child.waitUntilExit()
            await loop.stop()

            // The baseline, in the same run: the same sockets, endpoint kind and security, raw libzmq.
            let rawEndpoint = "ipc://\(directory)/raw"
            let rawChild = Process()
            rawChild.executableURL = URL(fileURLWithPath: DefaultScenario.executablePath)
            rawChild.arguments = echoArguments.map { $0 == endpoint ? rawEndpoint : $0 } + ["--raw"]
            try rawChild.run()
            defer { if rawChild.isRunning { rawChild.terminate() } }
            let raw = try RawBaseline.measure(context: context, spec: SocketSpec(.router, bind: [rawEndpoint], security: security),
                                              messages: messages, rate: rate, bytes: bytes, stamp: stamp, readStamp: readStamp,
                                              now: EmulationClock.wallNow)
            rawChild.waitUntilExit()
            await context.close()
            withExtendedLifetime(zap) {}

            let convoy = Self.percentiles(latencies), baseline = Self.percentiles(raw)
            var result = ["messages": Double(messages), "curve": curve ? 1 : 0]
            for (name, value) in convoy { result[name] = value }
            for (name, value) in baseline { result["raw_" + name] = value }
            result["ratio_p50"] = convoy["p50_us"]! / baseline["p50_us"]!
            result["ratio_p99"] = convoy["p99_us"]! / baseline["p99_us"]!
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "transport, one hop between processes over ipc://%@ (%d messages of %d bytes at %.0f/s):",
                             curve ? " with CurveZMQ" : "", messages, bytes, rate))
                for (label, p) in [("convoy  ", convoy), ("raw zmq ", baseline)] {
                    print(String(format: "  %@ p50 %.1f µs   p90 %.1f µs   p99 %.1f µs   p99.9 %.1f µs   max %.1f µs", label,
                                 p["p50_us"]!, p["p90_us"]!, p["p99_us"]!, p["p999_us"]!, p["max_us"]!))
                }
                print(String(format: "  convoy / raw: p50 %.2f×, p99 %.2f×", result["ratio_p50"]!, result["ratio_p99"]!))
            }
        }

        /// p50, p90, p99, p99.9 and max of `seconds`, in µs (nearest rank).
        static func percentiles(_ seconds: [Double]) -> [String: Double] {
            let sorted = seconds.sorted()
            func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1e6 }
            return ["p50_us": percentile(0.5), "p90_us": percentile(0.9), "p99_us": percentile(0.99), "p999_us": percentile(0.999),
                    "max_us": sorted.last! * 1e6]
        }
    }

    /// The other end of `convoy bench transport`: stamps and returns every message it gets.
    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Echo side of the transport benchmark.", shouldDisplay: false)

        @Option var endpoint: String
        /// CurveZMQ: own public key, own secret key, the server's public key (comma-separated).
        @Option var keys: String?
        /// The raw-libzmq baseline's echo (no event loop).
        @Flag var raw = false

        func run() async throws {
            let context = try ZMQContext()
            let parts = keys?.split(separator: ",").map(String.init) ?? []
            let security = parts.count == 3 ? SocketSecurity.client(CurveKeyPair(publicKey: parts[0], secretKey: parts[1]), serverKey: parts[2]) : nil
            if raw {
                try RawBaseline.echo(context: context, spec: SocketSpec(.dealer, connect: [endpoint], routingID: Array("echo".utf8),
                                                                        security: security),
                                     stamp: stamp, now: EmulationClock.wallNow)
                return await context.close()
            }
            let (stopped, stop) = AsyncStream.makeStream(of: Void.self)
            let loop = try await EventLoop.start(context: context, sockets: [
                SocketSpec(.dealer, connect: [endpoint], routingID: Array("echo".utf8), security: security),
            ]) { loop in
                { event in
                    guard case .message(_, let frames, _) = event, let frame = frames.last else { return }
                    if frame.isEmpty {
                        stop.yield()
                        return
                    }
                    var reply = frame
                    reply.replaceSubrange(0..<8, with: stamp(EmulationClock.wallNow()))
                    loop.send([reply], on: 0)
                }
            }
            loop.send([[]], on: 0)  // hello
            for await _ in stopped { break }
            await loop.stop()
            await context.close()
        }
    }
}

private func stamp(_ time: Double) -> [UInt8] {
    withUnsafeBytes(of: time.bitPattern.bigEndian) { Array($0) }
}

private func readStamp(_ bytes: [UInt8]) -> Double {
    var bits: UInt64 = 0
    for b in bytes.prefix(8) { bits = bits << 8 | UInt64(b) }
    return Double(bitPattern: bits)
}

private func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/convoy-bench-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw ValidationError("cannot create a temporary directory") }
    return String(cString: made)
}
