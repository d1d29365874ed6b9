import ConvoyCore
import ConvoyRuntime
import Foundation

/// Entry point of a node process (`convoy node …`).
public enum NodeMain {
    public static func run(role: NodeRole, id: String, runDirectory: String, incarnation: UInt32, trajectory: String?) async throws {
        let config = try RunConfig.load(runDirectory: runDirectory)
        ProcessSignals.dieWithParent(expectedParent: config.launcherPID)
        switch role {
        case .vehicle:
            guard let trajectory else { throw InputError(file: runDirectory, field: "--trajectory", "a vehicle needs its trajectory file") }
            try await VehicleNode.run(config: config, id: id, trajectoryPath: trajectory)
        case .rsu, .edge, .cloud:
            try await ServerNode.run(config: config, id: id, incarnation: incarnation)
        }
    }
}
