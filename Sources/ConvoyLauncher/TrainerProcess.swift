import ConvoyCore
import ConvoyFederated
import Foundation

/// The trainer process of federated fine-tuning (tools/trainer: Python, PEFT on the CPU build of
/// torch), run beside the fleet: one per run, holding the base model once.
enum TrainerProcess {
    /// Finds tools/trainer and makes its Python environment if it is missing (before anything
    /// of the run is created, so that a missing environment fails early and clearly).
    static func prepare(_ options: LaunchOptions, output: StatusOutput) throws -> String {
        guard let script = options.trainer ?? Checkout.locate("tools/trainer", executable: options.executable) else {
            throw InputError(file: options.scenarioPath, field: "fedtune",
                             "federated fine-tuning needs tools/trainer of the Convoy checkout (run from the checkout, or set CONVOY_HOME)")
        }
        let setup = Process()
        setup.executableURL = URL(fileURLWithPath: script)
        setup.arguments = ["setup"]
        do {
            try setup.run()
        } catch {
            throw InputError(file: script, "cannot run the trainer's set-up: \(error)")
        }
        setup.waitUntilExit()
        guard setup.terminationStatus == 0 else {
            throw InputError(file: script, "the trainer's Python environment could not be made (`\(script) setup` exited "
                             + "\(setup.terminationStatus); see its messages above)")
        }
        return script
    }

    static func configPath(runDirectory: String) -> String {
        URL(fileURLWithPath: runDirectory).appendingPathComponent("trainer.json").path
    }

    static func arguments(runDirectory: String, endpoint: String) -> [String] {
        ["--config", configPath(runDirectory: runDirectory), "--endpoint", endpoint, "--threads", "2"]
    }

    /// The trainer's configuration (tools/fedtune/README.md) from the scenario's `fedtune:`.
    static func writeConfig(_ c: FedTuneConfig, seed: UInt64, runDirectory: String) throws {
        let json: [String: Any] = [
            "model": c.model,
            "adapter": ["kind": c.adapter.rawValue, "rank": c.rank, "alpha": c.loraAlpha, "dropout": 0.0, "targets": c.targets,
                        "virtual_tokens": c.virtualTokens],
            "sequence_length": c.sequenceLength,
            "seed": seed,
            "domains": c.domains,
            "clients": c.clients,
            "samples_per_client": c.samplesPerClient,
            "test_samples_per_domain": c.testSamplesPerDomain,
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: configPath(runDirectory: runDirectory)))
    }
}
