import ConvoyCore
import ConvoyRuntime
import ConvoyTransport
import ConvoyWire
import Foundation

/// Sends a command to a running launcher (`convoy fail`, `convoy recover`) and waits for its answer.
public enum ControlClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func send(_ command: ControlCommand, runDirectory: String, timeout: Double = 5) async throws -> ControlReply {
        let config = try RunConfig.load(runDirectory: runDirectory)
        guard kill(config.launcherPID, 0) == 0 else {
            throw Failure(description: "\(runDirectory): the run is not in progress (launcher pid \(config.launcherPID) is gone)")
        }
        // With CurveZMQ, the launcher only answers the run's control key (readable by the user who launched it).
        let security = try config.security.map { run in
            SocketSecurity.client(try NodeKeys.read(path: config.controlKeyPath).client, serverKey: run.launcherKey)
        }
        let context = try ZMQContext()
        let loop = try await EventLoop.start(context: context, sockets: [SocketSpec(.dealer, connect: [config.control], security: security)])
        defer { withExtendedLifetime(context) {} }
        let payload = try JSONEncoder().encode(command)
        let frame = Envelope(kind: .control, sender: "convoy-cli", incarnation: 0, sequence: 1, sentAt: config.clock.now(),
                             payload: Array(payload)).encoded()
        loop.send([frame], on: 0)
        loop.schedule(timer: 1, atWall: EmulationClock.wallNow() + timeout)
        for await event in loop.events {
            switch event {
            case .timer:
                await loop.stop()
                throw Failure(description: "no answer from the launcher within \(Int(timeout)) s")
            case .message(_, let frames, _):
                guard let last = frames.last, let envelope = try? Envelope(decoding: last), envelope.kind == .controlReply,
                      let reply = try? JSONDecoder().decode(ControlReply.self, from: Data(envelope.payload)) else { continue }
                await loop.stop()
                return reply
            }
        }
        throw Failure(description: "the connection to the launcher closed")
    }
}
