import ConvoyCore
import ConvoyRecording
import ConvoyRuntime
import ConvoyTransport
import ConvoyWire
import Foundation
import Testing

/// A hostile local client, written from PROTOCOL.md, against a running launch with CurveZMQ: one
/// process without a key, one with a key of the run that is not the node it claims to be. Every
/// attack fails, is counted, and leaves the run's records as they would be.
@Suite("End to end: a hostile client", .serialized)
struct HostileClientTests {
    /// Collects every message of a loop in the background.
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var messages: [[[UInt8]]] = []
        private var task: Task<Void, Never>?

        init(_ loop: EventLoop) {
            task = Task { [weak self] in
                for await event in loop.events {
                    if case .message(_, let frames, _) = event { self?.add(frames) }
                }
            }
        }

        private func add(_ frames: [[UInt8]]) {
            lock.lock()
            messages.append(frames)
            lock.unlock()
        }

        var count: Int {
            lock.lock()
            defer { lock.unlock() }
            return messages.count
        }
    }

    func envelope<P: WirePayload>(_ payload: P, sender: String, at time: Double, position: Position? = Position(x: 300, y: 0)) -> [UInt8] {
        Envelope(kind: P.kind, sender: sender, incarnation: 1, sequence: 1, sentAt: time, position: position, payload: payload.encoded()).encoded()
    }

    func request(_ id: String, for vehicle: String, deadline: Double) -> InferenceRequest {
        InferenceRequest(requestID: id, attempt: 1, vehicleID: vehicle, model: "llama-3-8b", inputTokens: 64, outputTokens: 8,
                         payloadBytes: 1000, deadline: deadline)
    }

    func recordFrame(sender: String, at time: Double) throws -> [UInt8] {
        let forged = RecordBatch(counters: [CounterRecord(nodeID: "rsu-1", name: "forged", value: 1)],
                                 linkSamples: [])
        return Envelope(kind: .record, sender: sender, incarnation: 1, sequence: 1, sentAt: time,
                        payload: Array(try JSONEncoder().encode(forged))).encoded()
    }

    func controlFrame(at time: Double) throws -> [UInt8] {
        Envelope(kind: .control, sender: "convoy-cli", incarnation: 0, sequence: 1, sentAt: time,
                 payload: Array(try JSONEncoder().encode(ControlCommand(action: .fail, node: "rsu-2", mode: .crash)))).encoded()
    }

    @Test(.timeLimit(.minutes(2)))
    func everyAttackFailsAndIsCounted() async throws {
        let dir = try Fixture.makeScenario(duration: 14, faults: "")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run, "--allow-client", "app"])
        try await Fixture.waitUntil("the fleet is recording requests", timeout: 40) {
            try Fixture.reading(run) { !(try $0.fetchRequests()).isEmpty }
        }
        let config = try RunConfig.load(runDirectory: run)
        let security = try #require(config.security)
        let now = config.clock.now()
        let context = try ZMQContext()

        // 1. No key at all: nothing connects.
        let keyless = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.dealer, connect: [config.endpoint(of: "rsu-1")], routingID: Array("ghost-1".utf8)),
            SocketSpec(.sub, connect: [config.busOutbound], subscribe: [[]]),
            SocketSpec(.pub, connect: [config.busInbound]),
            SocketSpec(.push, connect: [config.recorder]),
            SocketSpec(.dealer, connect: [config.control]),
        ])
        let keylessInbox = Inbox(keyless)

        // 2. Keys of the run, used to claim to be someone else: the application client "app", and car 1's stolen key.
        let app = try JSONDecoder().decode(ClientCredentials.self, from: Data(contentsOf: URL(fileURLWithPath: config.clientKeyPath(of: "app"))))
        let appKeys = CurveKeyPair(publicKey: app.publicKey, secretKey: app.secretKey)
        let car1 = try NodeKeys.read(path: config.keyPath(of: "car 1")).client
        let rsu1 = try #require(security.serverKeys["rsu-1"])
        let impostor = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.dealer, connect: [config.endpoint(of: "rsu-1")], routingID: Array("app".utf8), security: .client(appKeys, serverKey: rsu1)),
            SocketSpec(.sub, connect: [config.busOutbound], subscribe: [Array("beacon/".utf8)],
                       security: .client(appKeys, serverKey: security.launcherKey)),
            SocketSpec(.pub, connect: [config.busInbound], security: .client(car1, serverKey: security.launcherKey)),
            SocketSpec(.push, connect: [config.recorder], security: .client(car1, serverKey: security.launcherKey)),
            SocketSpec(.dealer, connect: [config.control], security: .client(appKeys, serverKey: security.launcherKey)),
        ])
        let impostorInbox = Inbox(impostor)

        for round in 0..<10 {
            let t = now + Double(round) * 0.2
            let ghost = request("ghost-1/\(round)", for: "ghost-1", deadline: t + 5)
            keyless.send([envelope(ghost, sender: "ghost-1", at: t)], on: 0)
            keyless.send([Array(Topic.direct("car,2").utf8), envelope(request("ghost-1/v\(round)", for: "ghost-1", deadline: t + 5),
                                                                         sender: "ghost-1", at: t)], on: 2)
            keyless.send([try recordFrame(sender: "ghost-1", at: t)], on: 3)
            keyless.send([try controlFrame(at: t)], on: 4)
            // Under the app's key: claiming to be car,2, and asking for car,2's request id under its own name.
            impostor.send([envelope(request("car,2/\(round + 1)", for: "car,2", deadline: t + 5), sender: "car,2", at: t)], on: 0)
            impostor.send([envelope(request("car,2/\(round + 1)", for: "car,2", deadline: t + 5), sender: "app", at: t)], on: 0)
            // Under car 1's key: a V2V request on the bus claiming to be car,2, and records about rsu-1.
            impostor.send([Array(Topic.direct("car\"3").utf8), envelope(request("car,2/x\(round)", for: "car,2", deadline: t + 5),
                                                                      sender: "car,2", at: t)], on: 2)
            impostor.send([try recordFrame(sender: "car 1", at: t)], on: 3)
            impostor.send([try controlFrame(at: t)], on: 4)
            try await Task.sleep(for: .milliseconds(200))
        }
        // The allowed client may listen to the bus; nothing reached the keyless one.
        #expect(impostorInbox.count > 0, "the allowed client hears beacons")
        #expect(keylessInbox.count == 0)
        await keyless.stop()
        await impostor.stop()
        await context.close()

        let result = try await launch.wait(timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("crash rsu-2"), "the control attack must not fail rsu-2: \(result.output)")
        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        let info = try db.metadata()
        let counters = try db.fetchCounters()
        func counter(_ node: String, _ name: String) -> Int { counters.first { $0.nodeID == node && $0.name == name }?.value ?? 0 }
        // Nothing forged got in.
        #expect(try db.fetchFaults().isEmpty)
        #expect(!counters.contains { $0.name == "forged" })
        #expect(try db.fetchRequests().allSatisfy { Fixture.vehicles.contains($0.vehicleID) })
        // Each attack was counted where it was refused.
        #expect(Int(info["auth_handshakes_failed"] ?? "0")! >= 1, "\(info)")   // keyless bus, recorder, control
        #expect(Int(info["auth_keys_refused"] ?? "0")! >= 1, "\(info)")        // the app's key on the control socket
        #expect(Int(info["bus_sender_mismatch"] ?? "0")! >= 1, "\(info)")      // car 1's key publishing as car,2
        #expect(Int(info["records_forged"] ?? "0")! >= 1, "\(info)")           // car 1's key recording rsu-1's counter
        #expect(counter("rsu-1", "auth_handshakes_failed") >= 1)               // the keyless request
        #expect(counter("rsu-1", "requests_sender_mismatch") >= 1)             // the app claiming to be car,2
        #expect(counter("rsu-1", "requests_for_another_sender") >= 1)          // the app asking for car,2's id
        #expect(try db.integrityCheck() == ["ok"])
    }
}
