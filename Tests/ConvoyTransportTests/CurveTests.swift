import Foundation
import Testing
@testable import ConvoyTransport

/// Polls `condition` every 20 ms for up to `seconds`.
func eventually(within seconds: Double = 5, _ condition: () -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

@Suite("CurveZMQ and ZAP over real sockets")
struct CurveTests {
    let server: CurveKeyPair
    let admitted: CurveKeyPair
    let stranger: CurveKeyPair

    init() throws {
        server = try .generate()
        admitted = try .generate()
        stranger = try .generate()
    }

    func endpoint() -> String { "ipc:///tmp/convoy-curve-test-\(UUID().uuidString.prefix(12))" }

    @Test func keysAreZ85AndDistinct() {
        #expect(CurveKeyPair.isAvailable)
        #expect(server.publicKey.utf8.count == 40 && server.secretKey.utf8.count == 40)
        #expect(server.publicKey != admitted.publicKey)
    }

    @Test func anAdmittedKeyIsDeliveredWithItsIdentityOthersAreRefusedAndCounted() async throws {
        let context = try ZMQContext()
        let admittedKey = admitted.publicKey
        let zap = try ZAPHandler(context: context) { domain, key in domain == "access" && key == admittedKey ? "car-1" : nil }
        let address = endpoint()
        let serverLoop = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.router, bind: [address], security: .server(server, domain: "access")),
        ])
        let clientContext = try ZMQContext()
        let good = try await EventLoop.start(context: clientContext, sockets: [
            SocketSpec(.dealer, connect: [address], routingID: Array("g".utf8), security: .client(admitted, serverKey: server.publicKey)),
        ])
        let wrongKey = try await EventLoop.start(context: clientContext, sockets: [
            SocketSpec(.dealer, connect: [address], routingID: Array("w".utf8), security: .client(stranger, serverKey: server.publicKey)),
        ])
        let noKey = try await EventLoop.start(context: clientContext, sockets: [
            SocketSpec(.dealer, connect: [address], routingID: Array("n".utf8)),
        ])
        wrongKey.send([Array("from a stranger".utf8)], on: 0)
        noKey.send([Array("from nobody".utf8)], on: 0)
        good.send([Array("hello".utf8)], on: 0)
        let message = try await nextAuthenticated(serverLoop)
        #expect(message.frames == [Array("g".utf8), Array("hello".utf8)])
        #expect(message.peer == "car-1")
        // The stranger's key was refused by ZAP; the keyless client failed the handshake. Both counted.
        #expect(try await eventually { zap.refused >= 1 && serverLoop.stats.handshakeFailures >= 2 },
                "refused \(zap.refused), handshake failures \(serverLoop.stats.handshakeFailures)")
        #expect(zap.admitted >= 1)
        // (The loop counts a batch of messages after handing them over.)
        #expect(try await eventually { serverLoop.stats.received >= 1 })
        #expect(serverLoop.stats.received == 1, "nothing but the admitted client's message got through")
        for loop in [good, wrongKey, noKey, serverLoop] { await loop.stop() }
        await clientContext.close()
        await context.close()
    }

    @Test func theForwarderOnlyPassesMessagesWhosePublisherIsTheirSender() async throws {
        let inbound = endpoint(), outbound = endpoint()
        let admittedKey = admitted.publicKey, strangerKey = stranger.publicKey
        let forwarder = try Forwarder(inbound: inbound, outbound: outbound, security: Forwarder.Security(
            keys: server,
            authorize: { _, key in key == admittedKey ? "car-1" : key == strangerKey ? "car-2" : nil },
            verify: { frames, peer in frames.count == 2 && String(decoding: frames[1], as: UTF8.self) == peer }))
        defer { forwarder.stop() }
        let context = try ZMQContext()
        let subscriber = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.sub, connect: [outbound], subscribe: [Array("t".utf8)], security: .client(admitted, serverKey: server.publicKey)),
        ])
        let honest = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.pub, connect: [inbound], security: .client(admitted, serverKey: server.publicKey)),
        ])
        let impostor = try await EventLoop.start(context: context, sockets: [
            SocketSpec(.pub, connect: [inbound], security: .client(stranger, serverKey: server.publicKey)),
        ])
        // Publish until the subscription has reached both publishers (slow joiners: each connects
        // in its own time) and the impostor has been refused, then check what arrived.
        let first = Task { try? await nextAuthenticated(subscriber, within: 10) }
        let publishing = Task {
            for _ in 0..<100 where forwarder.stats.refused == 0 {
                impostor.send([Array("t".utf8), Array("car-1".utf8)], on: 0)  // claims to be car-1
                honest.send([Array("t".utf8), Array("car-1".utf8)], on: 0)
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let got = await first.value
        try await publishing.value
        #expect(got?.frames == [Array("t".utf8), Array("car-1".utf8)])
        #expect(forwarder.stats.refused >= 1, "the impostor's messages were refused")
        for loop in [subscriber, honest, impostor] { await loop.stop() }
        await context.close()
    }

    @Test func zapAnswersFollowTheRFC() {
        let request: [[UInt8]] = [Array("1.0".utf8), Array("7".utf8), Array("access".utf8), Array("127.0.0.1".utf8), [],
                                  Array("CURVE".utf8), [UInt8](repeating: 1, count: 32)]
        let yes = ZAPHandler.answer(request) { _, _ in "car-1" }
        #expect(yes.admitted && yes.frames[2] == Array("200".utf8) && yes.frames[4] == Array("car-1".utf8) && yes.frames[1] == Array("7".utf8))
        let no = ZAPHandler.answer(request) { _, _ in nil }
        #expect(!no.admitted && no.frames[2] == Array("400".utf8))
        var null = request
        null[5] = Array("NULL".utf8)
        #expect(!ZAPHandler.answer(null) { _, _ in "x" }.admitted)
        #expect(!ZAPHandler.answer([Array("2.0".utf8)]) { _, _ in "x" }.admitted)
    }
}
