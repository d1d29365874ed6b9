import ConvoyCore
import ConvoyMobility
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyRuntime
import ConvoyScenario
import ConvoyTransport
import ConvoyWire

/// A vehicle process: its sockets, clock and signals around a `VehicleCore`, whose actions it
/// carries out. Runs on the event loop's I/O thread (handler mode): every event — a message, a
/// timer, a signal or a model call's end posted to the loop — is handled there, one at a time.
final class VehicleNode: @unchecked Sendable {
    private enum Sockets {
        /// `access` is one ROUTER connected to every RSU (and the cloud, over the macro cell),
        /// addressing each by its node id.
        static let bus = 0, broadcast = 1, recorder = 2, access = 3, trainer = 4
    }

    private let shell: NodeShell
    private var core: VehicleCore
    /// The calls to the on-board real model server, if `onboard:` has a `backend:`.
    private let modelCalls: ModelCalls?

    static func run(config: RunConfig, id: String, trajectoryPath: String, keys: NodeKeys?) async throws {
        let trajectory = try TrajectoryFile.read(path: trajectoryPath)
        var arrivals: [ArrivalFile.Arrival] = []
        if let path = config.scenario.workload.arrivalsPath {
            arrivals = try ArrivalFile.load(path: path, tasks: config.scenario.workload.tasks).arrivals[id] ?? []
        }
        let core = VehicleCore(.init(id: id, scenario: config.scenario, seed: config.seed, duration: config.duration,
                                     trajectory: trajectory, arrivals: arrivals, vehicles: config.vehicles.map(Set.init),
                                     beaconLead: (config.beaconLead ?? 0) * config.speed))
        let servers = core.reachable.sorted()
        let security = try NodeSecurity(config: config, keys: keys)
        var sockets = [
            SocketSpec(.pub, connect: [config.busInbound], security: security?.launcher),
            SocketSpec(.sub, connect: [config.busOutbound], security: security?.launcher),  // the core subscribes to the topics around the vehicle
            SocketSpec(.push, connect: [config.recorder], lingerMs: 2000, security: security?.launcher),
            SocketSpec(.router, routingID: Array(id.utf8),
                       peers: try servers.map { (config.endpoint(of: $0), Array($0.utf8), try security?.serverKey(of: $0)) },
                       security: security?.launcher),
        ]
        // A federated fine-tuning participant reaches the run's trainer (a local ipc socket in the
        // run's private socket directory; the trainer speaks no CURVE).
        if core.fed != nil { sockets.append(SocketSpec(.dealer, connect: [config.trainerEndpoint])) }
        let context = try ZMQContext(realtimePriority: config.realtime == true ? RealtimeScheduling.priority : nil)
        var node: VehicleNode!
        let loop = try await EventLoop.start(context: context, sockets: sockets, name: "io-\(id)") { loop in
            let shell = NodeShell(config: config, id: id, incarnation: 1, loop: loop, zap: nil,
                                  sockets: .init(bus: Sockets.bus, recorder: Sockets.recorder, broadcast: Sockets.broadcast,
                                                 access: Sockets.access, trainer: core.fed != nil ? Sockets.trainer : nil))
            let vehicle = VehicleNode(shell: shell, core: core, modelCalls: ModelCalls(config.scenario.onboard))
            node = vehicle
            // Posted before the I/O thread starts: handled before any message.
            loop.post { vehicle.begin() }
            return { event in vehicle.received(event) }
        }
        let vehicle: VehicleNode = node
        ProcessSignals.onTermination { _ in
            loop.post {
                vehicle.shell.leaveRealtime()
                vehicle.handle(.drain)
            }
        }
        for await _ in loop.events {}  // until the core stops the loop
        vehicle.modelCalls?.abortAll()
        await context.close()
    }

    private init(shell: NodeShell, core: VehicleCore, modelCalls: ModelCalls?) {
        self.shell = shell
        self.core = core
        self.modelCalls = modelCalls
        shell.onCompute = { [unowned self, loop = shell.loop] command in
            modelCalls?.carryOut(command) { result in loop.post { [weak self] in self?.callEnded(result) } }
        }
    }

    private func callEnded(_ result: ModelCallResult) {
        guard modelCalls?.take(result) == true else { return }
        handle(.modelCallEnded(result))
    }

    /// Starts the core at the run's epoch (see `NodeShell.startAtEpoch`).
    /// Subscribes first, so that the bus has passed the subscriptions on by then.
    private func begin() {
        shell.perform(core.initialSubscriptions(at: max(shell.now, 0)))
        shell.startAtEpoch { handle(.start) }
    }

    private func received(_ event: TransportEvent) {
        switch event {
        case .timer(NodeShell.startTimer, _):
            shell.epochReached { handle(.start) }
        case .timer(let id, let due):
            shell.timerFired(dueWall: due)
            handle(.timer(id))
        case .message(Sockets.trainer, let frames, _): handle(.trainer(frames))
        case .message(let socket, let frames, _): handle(.frames(socket == Sockets.access ? .access : .broadcast, frames))
        }
    }

    private func handle(_ event: VehicleCore.Event) {
        guard !shell.stopped else { return }
        shell.perform(core.handle(event, now: shell.now))
    }
}
