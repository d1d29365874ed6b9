import ConvoyCore
import ConvoyNodeCore
import ConvoyRuntime
import ConvoyTransport
import ConvoyWire
import Foundation

/// An RSU, edge server or cloud process: its sockets, clock and signals around a `ServerCore`,
/// whose actions it carries out. The launcher's imposed faults (partition, degrade) reach it as a
/// file it re-reads on SIGUSR1.
actor ServerNode {
    private enum Sockets {
        static let clients = 0, bus = 1, beacons = 2, recorder = 3, upstream = 4
    }

    private let shell: NodeShell
    private var core: ServerCore

    static func run(config: RunConfig, id: String, incarnation: UInt32) async throws {
        let core = try ServerCore(id: id, map: config.map, liveness: config.scenario.liveness, seed: config.seed, incarnation: incarnation)
        var sockets: [SocketSpec] = [
            SocketSpec(.router, bind: [config.endpoint(of: id)]),
            SocketSpec(.pub, connect: [config.busInbound]),
            SocketSpec(.sub, connect: [config.busOutbound]),
            SocketSpec(.push, connect: [config.recorder], lingerMs: 2000),
        ]
        if let upstream = config.map.nextHop(of: id) {
            sockets.append(SocketSpec(.dealer, connect: [config.endpoint(of: upstream)], routingID: Array(id.utf8)))
            sockets[Sockets.beacons].subscribe = core.upstreamBeaconTopic.map { [Array($0.utf8)] } ?? []
        }
        let context = try ZMQContext()
        let loop = try await EventLoop.start(context: context, sockets: sockets, name: "io-\(id)")
        let shell = NodeShell(config: config, id: id, incarnation: incarnation, loop: loop,
                              sockets: .init(bus: Sockets.bus, recorder: Sockets.recorder, clients: Sockets.clients,
                                             upstream: sockets.count > Sockets.upstream ? Sockets.upstream : nil))
        let node = ServerNode(shell: shell, core: core)
        ProcessSignals.onTermination { _ in Task { await node.handle(.stop) } }
        ProcessSignals.on([SIGUSR1]) { _ in Task { await node.reloadImposedFault() } }
        await node.run()
        await loop.stop()
        await context.close()
    }

    private init(shell: NodeShell, core: ServerCore) {
        self.shell = shell
        self.core = core
    }

    /// Re-reads the fault the launcher imposes (on SIGUSR1, and at start: a restarted node keeps it).
    private func reloadImposedFault() {
        let fault = ImposedFault.read(path: shell.config.imposedFaultPath(of: shell.id))
        handle(.imposed(fault?.mode, fault?.degradation))
    }

    private func run() async {
        reloadImposedFault()
        handle(.start)
        for await event in shell.loop.events where !shell.stopped {
            switch event {
            case .timer(let id): handle(.timer(id))
            case .message(Sockets.clients, let frames): handle(.frames(.clients, frames))
            case .message(Sockets.beacons, let frames): handle(.frames(.beacons, frames))
            case .message(Sockets.upstream, let frames): handle(.frames(.upstream, frames))
            case .message: break
            }
        }
    }

    private func handle(_ event: ServerCore.Event) {
        guard !shell.stopped else { return }
        shell.perform(core.handle(event, now: shell.now))
    }
}
