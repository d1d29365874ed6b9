internal import CZeroMQ
import Foundation
import Synchronization

/// The ZAP handler (ZeroMQ RFC 27) of one context: every CURVE server socket of the context asks
/// it whether to admit a client, giving the socket's ZAP domain and the client's public key. It
/// answers on its own thread with `authorize`'s verdict: the client's identity (which becomes the
/// `User-Id` of its messages, `TransportEvent.message`'s `peer`), or nil to refuse.
///
/// Start it before binding the context's server sockets; it stops when the context is terminated.
public final class ZAPHandler: Sendable {
    /// Maps (ZAP domain, client public key as Z85) to the client's identity, or nil to refuse.
    public typealias Authorize = @Sendable (_ domain: String, _ publicKey: String) -> String?

    private final class Counts: Sendable {
        let value = Mutex((admitted: 0, refused: 0))
    }
    private let counts = Counts()

    /// Clients admitted and refused so far.
    public var admitted: Int { counts.value.withLock { $0.admitted } }
    public var refused: Int { counts.value.withLock { $0.refused } }

    public init(context: ZMQContext, authorize: @escaping Authorize) throws {
        let bound = DispatchSemaphore(value: 0)
        let failure = Mutex<TransportError?>(nil)
        let thread = Thread { [counts] in
            let socket: Socket
            do {
                socket = try Socket(context: context, spec: SocketSpec(.rep, bind: ["inproc://zeromq.zap.01"]))
            } catch {
                failure.withLock { $0 = error as? TransportError }
                bound.signal()
                return
            }
            bound.signal()
            Self.serve(socket, authorize: authorize, counts: counts)
            socket.close()
        }
        thread.name = "convoy-zap"
        thread.start()
        bound.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Answers requests until the context is terminated.
    private static func serve(_ socket: Socket, authorize: Authorize, counts: Counts) {
        var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        while true {
            item.revents = 0
            if zmq_poll(&item, 1, -1) < 0 {
                if zmq_errno() == EINTR { continue }
                return  // ETERM
            }
            guard let request = try? socket.receive() else { continue }
            let reply = answer(request.frames, authorize: authorize)
            counts.value.withLock { reply.admitted ? ($0.admitted += 1) : ($0.refused += 1) }
            _ = try? socket.send(reply.frames)
        }
    }

    /// The reply to one ZAP request: version, request id, domain, address, routing id, mechanism,
    /// then the mechanism's credentials (CURVE: the client's 32-byte public key).
    static func answer(_ frames: [[UInt8]], authorize: Authorize) -> (frames: [[UInt8]], admitted: Bool) {
        let version = Array("1.0".utf8)
        guard frames.count >= 6, frames[0] == version else {
            return ([version, frames.count > 1 ? frames[1] : [], Array("500".utf8), Array("bad ZAP request".utf8), [], []], false)
        }
        let requestID = frames[1]
        let domain = String(decoding: frames[2], as: UTF8.self)
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        guard mechanism == "CURVE", frames.count >= 7, let key = CurveKeyPair.z85(frames[6]), let user = authorize(domain, key) else {
            return ([version, requestID, Array("400".utf8), Array("not a key of this run".utf8), [], []], false)
        }
        return ([version, requestID, Array("200".utf8), Array("OK".utf8), Array(user.utf8), []], true)
    }
}
