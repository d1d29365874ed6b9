import ConvoyCore
import ConvoyFederated
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyRuntime
import ConvoyTransport
import ConvoyWire
import Foundation

/// An RSU, edge server or cloud process: its sockets, clock and signals around a `ServerCore`,
/// whose actions it carries out. The launcher's imposed faults (partition, degrade) reach it as a
/// file it re-reads on SIGUSR1. Runs on the event loop's I/O thread, like `VehicleNode`.
final class ServerNode: @unchecked Sendable {
    private enum Sockets {
        static let clients = 0, bus = 1, beacons = 2, recorder = 3, upstream = 4
    }

    private let shell: NodeShell
    private var core: ServerCore
    /// The calls to the node's real model server, if its compute has one (map `backend:`).
    private let modelCalls: ModelCalls?

    static func run(config: RunConfig, id: String, incarnation: UInt32, keys: NodeKeys?) async throws {
        // A restarted aggregator carries on from the checkpoint its previous incarnation wrote.
        func state(_ name: String) -> [UInt8]? {
            (try? Data(contentsOf: URL(fileURLWithPath: config.statePath(of: id, name: name)))).map(Array.init)
        }
        var core = try ServerCore(id: id, map: config.map, liveness: config.scenario.liveness, seed: config.seed, incarnation: incarnation,
                                  vehicles: config.vehicles.map(Set.init), fedtune: config.scenario.fedtune,
                                  fedResume: state(FedCheckpoint.fileName), fedPending: state(FedCheckpoint.pendingFileName),
                                  analytics: config.scenario.analytics)
        core.sendAhead = ServerCore.replyLead(beaconLead: config.beaconLead ?? 0) * config.speed
        let security = try NodeSecurity(config: config, keys: keys)
        var sockets: [SocketSpec] = [
            SocketSpec(.router, bind: [config.endpoint(of: id)], security: try security?.server(.access)),
            SocketSpec(.pub, connect: [config.busInbound], security: security?.launcher),
            SocketSpec(.sub, connect: [config.busOutbound], security: security?.launcher),
            SocketSpec(.push, connect: [config.recorder], lingerMs: 2000, security: security?.launcher),
        ]
        if let upstream = config.map.nextHop(of: id) {
            sockets.append(SocketSpec(.dealer, connect: [config.endpoint(of: upstream)], routingID: Array(id.utf8),
                                      security: try security?.client(of: upstream)))
            sockets[Sockets.beacons].subscribe = core.upstreamBeaconTopic.map { [Array($0.utf8)] } ?? []
        }
        // The federated fine-tuning aggregator reaches the run's trainer (see VehicleNode).
        var trainerSocket: Int?
        if core.aggregatesFedTune {
            trainerSocket = sockets.count
            sockets.append(SocketSpec(.dealer, connect: [config.trainerEndpoint]))
        }
        let context = try ZMQContext(realtimePriority: config.realtime == true ? RealtimeScheduling.priority : nil)
        // The ZAP handler must exist before the ROUTER binds; it admits the keys in the run's registry.
        let registry = RegistryFile(path: config.registryPath)
        let zap = try security.map { _ in try ZAPHandler(context: context) { registry.authorize(domain: $0, key: $1) } }
        var node: ServerNode!
        let loop = try await EventLoop.start(context: context, sockets: sockets, name: "io-\(id)") { loop in
            let shell = NodeShell(config: config, id: id, incarnation: incarnation, loop: loop, zap: zap,
                                  sockets: .init(bus: Sockets.bus, recorder: Sockets.recorder, clients: Sockets.clients,
                                                 upstream: config.map.nextHop(of: id) != nil ? Sockets.upstream : nil,
                                                 trainer: trainerSocket))
            let server = ServerNode(shell: shell, core: core, modelCalls: ModelCalls(config.map.compute(of: id)))
            node = server
            // Posted before the I/O thread starts: handled before any message.
            loop.post {
                server.reloadImposedFault()
                server.begin()
            }
            return { event in server.received(event) }
        }
        let server: ServerNode = node
        ProcessSignals.onTermination { _ in
            loop.post {
                server.shell.leaveRealtime()
                server.handle(.stop)
            }
        }
        ProcessSignals.on([SIGUSR1]) { _ in loop.post { server.reloadImposedFault() } }
        for await _ in loop.events {}  // until the core stops the loop
        server.modelCalls?.abortAll()
        await context.close()
    }

    private init(shell: NodeShell, core: ServerCore, modelCalls: ModelCalls?) {
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

    /// Re-reads the fault the launcher imposes (on SIGUSR1, and at start: a restarted node keeps it).
    private func reloadImposedFault() {
        let fault = ImposedFault.read(path: shell.config.imposedFaultPath(of: shell.id))
        handle(.imposed(fault?.mode, fault?.degradation))
    }

    /// Starts the core at the run's epoch (see `NodeShell.startAtEpoch`).
    private func begin() { shell.startAtEpoch { handle(.start) } }

    private func received(_ event: TransportEvent) {
        switch event {
        case .timer(NodeShell.startTimer, _):
            shell.epochReached { handle(.start) }
        case .timer(let id, let due):
            shell.timerFired(dueWall: due)
            handle(.timer(id))
        case .message(Sockets.clients, let frames, let peer): handle(.frames(.clients, frames, from: peer))
        case .message(Sockets.beacons, let frames, _): handle(.frames(.beacons, frames))
        case .message(Sockets.upstream, let frames, _) where shell.sockets.upstream != nil: handle(.frames(.upstream, frames))
        case .message(let socket, let frames, _) where socket == shell.sockets.trainer: handle(.trainer(frames))
        case .message: break
        }
    }

    private func handle(_ event: ServerCore.Event) {
        guard !shell.stopped else { return }
        shell.perform(core.handle(event, now: shell.now))
    }
}
