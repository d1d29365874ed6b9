internal import CZeroMQ
import Foundation
import HeapModule
import Synchronization

/// What the event loop hands to the process's actors.
public enum TransportEvent: Sendable {
    /// A whole multipart message arrived on socket `socket` (its index in the spec list). On a
    /// CURVE server socket, `peer` is the sender's authenticated identity (the user id the ZAP
    /// handler gave its key); nil otherwise.
    case message(socket: Int, frames: [[UInt8]], peer: String?)
    /// A timer armed with `schedule(timer:atWall:)` is due.
    case timer(UInt64, dueWall: Double)
}

/// Counters of one event loop.
public struct TransportStats: Sendable, Equatable {
    public var sent = 0
    /// Messages that could not be queued (high-water mark, or a ROUTER peer that is gone).
    public var sendDropped = 0
    public var received = 0
    /// Connections refused at the CURVE handshake on this loop's server sockets: no key, a key the
    /// ZAP handler refused, or a broken handshake.
    public var handshakeFailures = 0
}

/// The one I/O thread of a process. It creates, uses and closes all of the process's ZeroMQ
/// sockets; nothing else touches them.
///
/// - Inbound messages and due timers arrive in order, either on `events` (an `AsyncStream`) or —
///   when the loop is started with a handler — by calling the handler on the I/O thread itself,
///   so a node's core runs where its messages arrive: no thread hop, no task per message.
/// - `send`, `schedule`, `subscribe`, `connect` and `post` put a command into a locked outbox and
///   wake the thread through an eventfd; they never block and never call ZeroMQ themselves. Called
///   on the I/O thread itself (from a handler), all but `post` are carried out at once, in order.
/// - Sends and timers can be due at a wall-clock instant; a timerfd wakes the thread then, so
///   delayed messages leave with microsecond precision rather than zmq_poll's milliseconds.
/// - `stop()` closes every socket and finishes `events`.
public final class EventLoop: Sendable {
    public let events: AsyncStream<TransportEvent>
    private let continuation: AsyncStream<TransportEvent>.Continuation
    private let outbox = Mutex(Outbox())
    private let statsBox = Mutex(TransportStats())
    private let wakeFD: Int32
    private let context: ZMQContext
    /// The I/O thread's pthread id, once it runs (0 before).
    private let ioThread = Atomic<UInt>(0)
    /// The sockets and due items: touched only by the I/O thread.
    private nonisolated(unsafe) var io: IOState?

    /// Handles one event on the I/O thread (see `start(context:sockets:name:handler:)`).
    public typealias Handler = @Sendable (TransportEvent) -> Void

    private struct Outbox: ~Copyable {
        var commands: [Command] = []
        var stopping = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    enum Command: @unchecked Sendable {
        case send(socket: Int, frames: [[UInt8]], atWall: Double?)
        case timer(id: UInt64, atWall: Double)
        case subscribe(socket: Int, prefix: [UInt8])
        case unsubscribe(socket: Int, prefix: [UInt8])
        case connect(socket: Int, endpoint: String)
        case disconnect(socket: Int, endpoint: String)
        case run(@Sendable () -> Void)
    }

    /// Starts the I/O thread and creates `sockets` on it, in order; socket `i` of the spec list is
    /// addressed as `i` afterwards. Throws if a socket cannot be created, bound or connected.
    public static func start(context: ZMQContext, sockets: [SocketSpec], name: String = "convoy-io") async throws -> EventLoop {
        let loop = try EventLoop(context: context)
        try await loop.launch(sockets: sockets, name: name, handler: nil)
        return loop
    }

    /// Starts the I/O thread in handler mode: `makeHandler` is given the loop before the thread
    /// starts and returns the handler, which is then called on the I/O thread for every inbound
    /// message and due timer, in order; `events` yields nothing and finishes when the loop stops.
    /// What `makeHandler` posts runs before the first message is handled.
    public static func start(context: ZMQContext, sockets: [SocketSpec], name: String = "convoy-io",
                             handler makeHandler: (EventLoop) -> Handler) async throws -> EventLoop {
        let loop = try EventLoop(context: context)
        try await loop.launch(sockets: sockets, name: name, handler: makeHandler(loop))
        return loop
    }

    private func launch(sockets: [SocketSpec], name: String, handler: Handler?) async throws {
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                self.run(specs: sockets, handler: handler, ready: ready)
            }
            thread.name = name
            thread.start()
        }
    }

    private init(context: ZMQContext) throws {
        self.context = context
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw TransportError("eventfd", code: errno) }
        wakeFD = fd
        (events, continuation) = AsyncStream.makeStream(of: TransportEvent.self, bufferingPolicy: .unbounded)
    }

    deinit {
        close(wakeFD)
    }

    public var stats: TransportStats { statsBox.withLock { $0 } }

    /// Queues `frames` for `socket`, to leave now or at the wall-clock instant `atWall` (Unix seconds).
    public func send(_ frames: [[UInt8]], on socket: Int, atWall: Double? = nil) {
        enqueue(.send(socket: socket, frames: frames, atWall: atWall))
    }

    /// Delivers `.timer(id, dueWall: atWall)` on `events` at the wall-clock instant `atWall` (Unix seconds).
    public func schedule(timer id: UInt64, atWall: Double) {
        enqueue(.timer(id: id, atWall: atWall))
    }

    public func subscribe(_ socket: Int, prefix: [UInt8]) { enqueue(.subscribe(socket: socket, prefix: prefix)) }
    public func unsubscribe(_ socket: Int, prefix: [UInt8]) { enqueue(.unsubscribe(socket: socket, prefix: prefix)) }
    public func connect(_ socket: Int, to endpoint: String) { enqueue(.connect(socket: socket, endpoint: endpoint)) }
    public func disconnect(_ socket: Int, from endpoint: String) { enqueue(.disconnect(socket: socket, endpoint: endpoint)) }

    /// Runs `body` on the I/O thread, in order with the other commands (handler mode: how events
    /// from elsewhere — signals, HTTP calls — reach the code that owns the sockets).
    public func post(_ body: @escaping @Sendable () -> Void) { enqueue(.run(body)) }

    /// Whether the caller is on this loop's I/O thread.
    public var isCurrentThread: Bool { ioThread.load(ordering: .relaxed) == UInt(bitPattern: Int(bitPattern: pthread_self())) }

    /// Stops the thread: pending immediate sends are handed to ZeroMQ first, then every socket is
    /// closed (with its linger) and `events` finishes. Returns when the thread has exited.
    public func stop() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let alreadyStopped = outbox.withLock { box -> Bool in
                if box.stopped { return true }
                box.stopping = true
                box.stopWaiters.append(done)
                return false
            }
            if alreadyStopped { done.resume() } else { wake() }
        }
    }

    private func enqueue(_ command: Command) {
        // On the I/O thread itself (a handler), the command is carried out at once, in order: no
        // outbox, no wake-up. Posted work still waits for the handler to return.
        let onIOThread = isCurrentThread
        if onIOThread, let io {
            if case .run = command {} else { return io.carryOut(command) }
        }
        let accepted = outbox.withLock { box -> Bool in
            guard !box.stopping else { return false }
            box.commands.append(command)
            return box.commands.count == 1
        }
        // The I/O thread drains the outbox before it waits again: no wake-up needed from itself.
        if accepted && !onIOThread { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - The I/O thread

    private struct Due: Comparable {
        var atWall: Double
        var order: UInt64
        var action: Action
        enum Action {
            case send(socket: Int, frames: [[UInt8]])
            case timer(UInt64)
        }
        static func < (a: Due, b: Due) -> Bool { (a.atWall, a.order) < (b.atWall, b.order) }
        static func == (a: Due, b: Due) -> Bool { a.atWall == b.atWall && a.order == b.order }
    }

    /// What only the I/O thread touches: its sockets and the sends and timers due later.
    private final class IOState {
        let sockets: [Socket]
        unowned let loop: EventLoop
        var due = Heap<Due>()
        var order: UInt64 = 0

        init(sockets: [Socket], loop: EventLoop) {
            self.sockets = sockets
            self.loop = loop
        }

        func transmit(_ socket: Int, _ frames: [[UInt8]]) {
            guard sockets.indices.contains(socket), !frames.isEmpty else {
                loop.statsBox.withLock { $0.sendDropped += 1 }
                return
            }
            let ok = (try? sockets[socket].send(frames)) ?? false
            loop.statsBox.withLock { ok ? ($0.sent += 1) : ($0.sendDropped += 1) }
        }

        func schedule(_ action: Due.Action, at atWall: Double) {
            order += 1
            due.insert(Due(atWall: atWall, order: order, action: action))
        }

        /// Carries out any command but `.run` (which the loop runs itself).
        func carryOut(_ command: Command) {
            switch command {
            case .send(let socket, let frames, let atWall):
                if let atWall { schedule(.send(socket: socket, frames: frames), at: atWall) } else { transmit(socket, frames) }
            case .timer(let id, let atWall):
                schedule(.timer(id), at: atWall)
            case .subscribe(let socket, let prefix):
                if sockets.indices.contains(socket) { try? sockets[socket].setBytes(ZMQ_SUBSCRIBE, prefix) }
            case .unsubscribe(let socket, let prefix):
                if sockets.indices.contains(socket) { try? sockets[socket].setBytes(ZMQ_UNSUBSCRIBE, prefix) }
            case .connect(let socket, let endpoint):
                if sockets.indices.contains(socket) { try? sockets[socket].connect(endpoint) }
            case .disconnect(let socket, let endpoint):
                if sockets.indices.contains(socket) { sockets[socket].disconnect(endpoint) }
            case .run:
                break
            }
        }
    }

    private func run(specs: [SocketSpec], handler: Handler?, ready: CheckedContinuation<Void, any Error>) {
        ioThread.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .relaxed)
        var sockets: [Socket] = []
        var monitors: [Socket] = []
        do {
            for spec in specs {
                let socket = try Socket(context: context, spec: spec)
                sockets.append(socket)
                if case .server? = spec.security { monitors.append(try socket.monitorHandshakes(context: context)) }
            }
        } catch {
            for s in sockets + monitors { s.close() }
            finish()
            ready.resume(throwing: error)
            return
        }
        let timerFD = timerfd_create(CLOCK_REALTIME, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        ready.resume()

        let state = IOState(sockets: sockets, loop: self)
        io = state
        var armedAt: Double? = nil
        let polled = sockets.indices.filter { sockets[$0].type.receives }
        var items = [zmq_pollitem_t](repeating: zmq_pollitem_t(), count: polled.count + 2 + monitors.count)
        for (slot, index) in polled.enumerated() {
            items[slot].socket = sockets[index].handle
            items[slot].events = Int16(ZMQ_POLLIN)
        }
        items[polled.count].fd = wakeFD
        items[polled.count].events = Int16(ZMQ_POLLIN)
        items[polled.count + 1].fd = timerFD
        items[polled.count + 1].events = Int16(ZMQ_POLLIN)
        let firstMonitor = polled.count + 2
        for (i, monitor) in monitors.enumerated() {
            items[firstMonitor + i].socket = monitor.handle
            items[firstMonitor + i].events = Int16(ZMQ_POLLIN)
        }

        func deliver(_ event: TransportEvent) {
            if let handler { handler(event) } else { continuation.yield(event) }
        }

        mainLoop: while true {
            // 1. Commands from the outbox.
            let (commands, stopping) = outbox.withLock { box in
                defer { box.commands.removeAll(keepingCapacity: true) }
                return (box.commands, box.stopping)
            }
            var ran = false
            for command in commands {
                if case .run(let body) = command {
                    body()
                    ran = true
                } else {
                    state.carryOut(command)
                }
            }
            if stopping { break mainLoop }

            // 2. Everything that is due.
            let now = Self.wallNow()
            while let next = state.due.min, next.atWall <= now {
                let item = state.due.removeMin()
                switch item.action {
                case .send(let socket, let frames): state.transmit(socket, frames)
                case .timer(let id):
                    deliver(.timer(id, dueWall: item.atWall))
                    ran = true
                }
            }
            // A handler (or posted body) may have queued commands: carry them out before waiting.
            if ran && outbox.withLock({ !$0.commands.isEmpty || $0.stopping }) { continue mainLoop }

            // 3. Arm the timerfd for the next due item.
            let nextAt = state.due.min?.atWall
            if nextAt != armedAt {
                var spec = itimerspec()
                if let nextAt {
                    let whole = nextAt.rounded(.down)
                    spec.it_value.tv_sec = Int(whole)
                    spec.it_value.tv_nsec = max(1, Int((nextAt - whole) * 1e9))
                }
                timerfd_settime(timerFD, Int32(TFD_TIMER_ABSTIME), &spec, nil)
                armedAt = nextAt
            }

            // 4. Wait.
            for i in items.indices { items[i].revents = 0 }
            let rc = zmq_poll(&items, Int32(items.count), -1)
            if rc < 0 {
                let err = zmq_errno()
                if err == EINTR { continue }
                break mainLoop  // ETERM: the context is shutting down
            }
            var scratch: UInt64 = 0
            if items[polled.count].revents != 0 { _ = read(wakeFD, &scratch, 8) }
            if items[polled.count + 1].revents != 0 {
                _ = read(timerFD, &scratch, 8)
                armedAt = nil
            }
            for (slot, index) in polled.enumerated() where items[slot].revents & Int16(ZMQ_POLLIN) != 0 {
                var count = 0
                do {
                    while count < 512, let (frames, peer) = try sockets[index].receive() {
                        count += 1
                        deliver(.message(socket: index, frames: frames, peer: peer))
                    }
                } catch let error as TransportError where error.isTerminated {
                    break mainLoop
                } catch {}
                if count > 0 { statsBox.withLock { $0.received += count } }
            }
            for (i, monitor) in monitors.enumerated() where items[firstMonitor + i].revents & Int16(ZMQ_POLLIN) != 0 {
                var failures = 0
                while let event = try? monitor.receive() { failures += event.frames.isEmpty ? 0 : 1 }
                if failures > 0 { statsBox.withLock { $0.handshakeFailures += failures } }
            }
        }

        io = nil
        for s in sockets + monitors { s.close() }
        close(timerFD)
        finish()
    }

    private func finish() {
        continuation.finish()
        let waiters = outbox.withLock { box in
            box.stopped = true
            box.stopping = true
            defer { box.stopWaiters.removeAll() }
            return box.stopWaiters
        }
        for w in waiters { w.resume() }
    }

    static func wallNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
