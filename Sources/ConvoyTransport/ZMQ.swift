internal import CZeroMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A ZeroMQ call failed.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var message: String

    init(_ call: String, code: Int32 = zmq_errno()) {
        self.call = call
        self.code = code
        self.message = String(cString: zmq_strerror(code))
    }

    public var description: String { "\(call): \(message) (errno \(code))" }

    /// The context was shut down (ETERM): not a failure during shutdown.
    public var isTerminated: Bool { code == ETERM }
}

/// A CurveZMQ key pair, both keys as 40-character Z85 text.
public struct CurveKeyPair: Codable, Sendable, Equatable {
    public var publicKey: String
    public var secretKey: String

    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh key pair from libsodium (through libzmq).
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw TransportError("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// Whether this libzmq was built with CURVE (libsodium).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }

    /// A 32-byte binary key as Z85 text (how ZAP hands over a client's public key).
    static func z85(_ key: [UInt8]) -> String? {
        guard key.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        return key.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, 32) } == nil ? nil : String(cString: text)
    }
}

/// How a socket authenticates (CurveZMQ). A server socket (one that binds) proves its identity
/// with its key pair and asks the context's ZAP handler (`ZAPHandler`) to admit each client in
/// `domain`; a client socket (one that connects) must know the server's public key.
public enum SocketSecurity: Sendable {
    case server(CurveKeyPair, domain: String)
    case client(CurveKeyPair, serverKey: String)
}

/// The kinds of ZeroMQ socket Convoy uses.
public enum SocketType: Sendable {
    case pub, sub, xpub, xsub, dealer, router, push, pull, req, rep, pair

    var raw: Int32 {
        switch self {
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .pair: ZMQ_PAIR
        }
    }

    /// Whether the event loop polls this socket for input.
    var receives: Bool {
        switch self {
        case .pub, .push: false
        default: true
        }
    }
}

/// A ZeroMQ context. Shut it down with `close()`: blocked calls on its sockets return ETERM, then
/// the context is terminated once every socket is closed (sockets use LINGER 0, so that is prompt).
public final class ZMQContext: @unchecked Sendable {
    // zmq contexts are thread-safe; the handle is immutable. `terminated` is only read and written
    // under `lock`.
    let handle: UnsafeMutableRawPointer
    private let lock = NSLock()
    private var terminated = false

    /// `realtimePriority`: libzmq starts the context's threads under `SCHED_FIFO` at that
    /// priority, where the process is permitted to (libzmq aborts if a scheduling option it was
    /// given is refused, so nothing is set otherwise). See `RealtimeScheduling`.
    public init(realtimePriority: Int32? = nil) throws {
        guard let ctx = zmq_ctx_new() else { throw TransportError("zmq_ctx_new") }
        if let realtimePriority, RealtimeScheduling.permitted() {
            guard zmq_ctx_set(ctx, ZMQ_THREAD_SCHED_POLICY, SCHED_FIFO) == 0,
                  zmq_ctx_set(ctx, ZMQ_THREAD_PRIORITY, realtimePriority) == 0 else {
                let error = TransportError("zmq_ctx_set(ZMQ_THREAD_SCHED_POLICY)")
                zmq_ctx_term(ctx)
                throw error
            }
        }
        handle = ctx
    }

    /// Makes every blocking call on this context's sockets return ETERM.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    /// Terminates the context once its event loops have stopped: waits (on a plain thread, not
    /// Swift's pool) until every message still queued on a socket with a linger period has been
    /// handed to its peer or the linger expired. Call it before the process exits, or the last
    /// messages (a node's final records) may be lost.
    public func close() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                terminate()
                done.resume()
            }
            thread.name = "convoy-zmq-term"
            thread.start()
        }
    }

    private func terminate() {
        lock.lock()
        defer { lock.unlock() }
        guard !terminated else { return }
        terminated = true
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit {
        lock.lock()
        let done = terminated
        lock.unlock()
        if !done {
            zmq_ctx_shutdown(handle)
            while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
        }
    }
}

/// Options of one socket of an event loop.
public struct SocketSpec: Sendable {
    public var type: SocketType
    public var bind: [String]
    public var connect: [String]
    /// Prefixes a SUB socket subscribes to at start.
    public var subscribe: [[UInt8]]
    /// ZMQ_ROUTING_ID for DEALER sockets (how ROUTER peers address this socket).
    public var routingID: [UInt8]?
    /// ZMQ_LINGER when the socket is closed, ms. 0 (the default) discards unsent messages.
    public var lingerMs: Int32
    /// ZMQ_SNDHWM / ZMQ_RCVHWM; nil keeps libzmq's default (1000).
    public var highWaterMark: Int32?
    /// For a ROUTER that connects to other ROUTERs: endpoints to connect to, each under the routing
    /// id this socket will address it by (ZMQ_CONNECT_ROUTING_ID), and with the CURVE server key
    /// of that peer (when `security` is `.client`; nil: the socket's). One ROUTER then reaches
    /// many peers by name, instead of one DEALER socket per peer.
    public var peers: [(endpoint: String, routingID: [UInt8], serverKey: String?)]
    /// CurveZMQ; nil: none (plain NULL mechanism).
    public var security: SocketSecurity?

    public init(_ type: SocketType, bind: [String] = [], connect: [String] = [], subscribe: [[UInt8]] = [],
                routingID: [UInt8]? = nil, lingerMs: Int32 = 0, highWaterMark: Int32? = nil,
                peers: [(endpoint: String, routingID: [UInt8], serverKey: String?)] = [], security: SocketSecurity? = nil) {
        self.security = security
        self.type = type
        self.bind = bind
        self.connect = connect
        self.subscribe = subscribe
        self.routingID = routingID
        self.lingerMs = lingerMs
        self.highWaterMark = highWaterMark
        self.peers = peers
    }
}

/// A socket owned by exactly one thread (the thread that created it). Not Sendable.
struct Socket {
    let handle: UnsafeMutableRawPointer
    let type: SocketType

    init(context: ZMQContext, spec: SocketSpec) throws {
        guard let s = zmq_socket(context.handle, spec.type.raw) else { throw TransportError("zmq_socket") }
        handle = s
        type = spec.type
        do {
            try setInt(ZMQ_LINGER, spec.lingerMs)
            if let hwm = spec.highWaterMark {
                try setInt(ZMQ_SNDHWM, hwm)
                try setInt(ZMQ_RCVHWM, hwm)
            }
            if spec.type == .router { try setInt(ZMQ_ROUTER_MANDATORY, 1) }
            if let id = spec.routingID { try setBytes(ZMQ_ROUTING_ID, id) }
            for prefix in spec.subscribe { try setBytes(ZMQ_SUBSCRIBE, prefix) }
            switch spec.security {
            case .server(let keys, let domain)?:
                try setInt(ZMQ_CURVE_SERVER, 1)
                try setKey(ZMQ_CURVE_SECRETKEY, keys.secretKey)
                try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8))
                // Where libzmq offers it (ZMQ_ZAP_ENFORCE_DOMAIN, draft in 4.3), refuse everyone when the
                // context has no ZAP handler rather than admit anyone; Convoy always starts one first.
                try? setInt(93, 1)
            case .client(let keys, let serverKey)?:
                try setKey(ZMQ_CURVE_PUBLICKEY, keys.publicKey)
                try setKey(ZMQ_CURVE_SECRETKEY, keys.secretKey)
                try setKey(ZMQ_CURVE_SERVERKEY, serverKey)
            case nil:
                break
            }
            for endpoint in spec.bind {
                guard zmq_bind(s, endpoint) == 0 else { throw TransportError("zmq_bind(\(endpoint))") }
            }
            for endpoint in spec.connect { try connect(endpoint) }
            for peer in spec.peers {
                try setBytes(ZMQ_CONNECT_ROUTING_ID, peer.routingID)
                if let key = peer.serverKey { try setKey(ZMQ_CURVE_SERVERKEY, key) }
                try connect(peer.endpoint)
            }
        } catch {
            zmq_close(s)
            throw error
        }
    }

    func setInt(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw TransportError("zmq_setsockopt(\(option))")
        }
    }

    /// A CURVE key option from its 40-character Z85 text.
    func setKey(_ option: Int32, _ z85: String) throws {
        guard z85.utf8.count == 40 else { throw TransportError("zmq_setsockopt(\(option)): a Z85 key has 40 characters", code: EINVAL) }
        try setBytes(option, Array(z85.utf8) + [0])
    }

    func setBytes(_ option: Int32, _ value: [UInt8]) throws {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw TransportError("zmq_setsockopt(\(option))") }
    }

    func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw TransportError("zmq_connect(\(endpoint))") }
    }

    func disconnect(_ endpoint: String) {
        _ = zmq_disconnect(handle, endpoint)
    }

    /// Sends a multipart message without blocking. Returns false if it could not be queued
    /// (high-water mark reached, or a ROUTER peer that is not connected).
    func send(_ frames: [[UInt8]]) throws -> Bool {
        for (i, frame) in frames.enumerated() {
            let flags = ZMQ_DONTWAIT | (i < frames.count - 1 ? ZMQ_SNDMORE : 0)
            while true {
                let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                let err = zmq_errno()
                if err == EINTR { continue }
                // Only the first frame can fail: later frames of an accepted message are queued atomically.
                if err == EAGAIN || err == EHOSTUNREACH { return false }
                throw TransportError("zmq_send", code: err)
            }
        }
        return true
    }

    /// Receives one whole multipart message if one is ready; nil if none. `peer` is the user id
    /// the context's ZAP handler gave the connection it came from (CURVE server sockets), else nil.
    func receive() throws -> (frames: [[UInt8]], peer: String?)? {
        var frames: [[UInt8]] = []
        var peer: String?
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let rc = zmq_msg_recv(&msg, handle, ZMQ_DONTWAIT)
            if rc < 0 {
                let err = zmq_errno()
                if err == EINTR { continue }
                if err == EAGAIN && frames.isEmpty { return nil }
                throw TransportError("zmq_msg_recv", code: err)
            }
            // A ROUTER's routing-id frame is made locally and carries no metadata: take the first frame that has it.
            if peer == nil, let user = zmq_msg_gets(&msg, "User-Id") { peer = String(cString: user) }
            let size = zmq_msg_size(&msg)
            if size == 0 {
                frames.append([])
            } else {
                let base = zmq_msg_data(&msg)!.assumingMemoryBound(to: UInt8.self)
                frames.append(Array(UnsafeBufferPointer(start: base, count: size)))
            }
            if zmq_msg_more(&msg) == 0 { return (frames, peer) }
        }
    }

    /// Starts reporting failed handshakes (no key, a wrong key, a refused key) on a PAIR socket it
    /// returns; the event loop polls it and counts them.
    func monitorHandshakes(context: ZMQContext) throws -> Socket {
        let endpoint = "inproc://convoy-monitor-\(UInt(bitPattern: handle))-\(UInt64.random(in: 0...UInt64.max))"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw TransportError("zmq_socket_monitor") }
        return try Socket(context: context, spec: SocketSpec(.pair, connect: [endpoint]))
    }

    func close() {
        zmq_close(handle)
    }
}
