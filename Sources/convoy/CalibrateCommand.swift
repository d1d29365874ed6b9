import ArgumentParser
import ConvoyCore
import ConvoyModelServers
import ConvoyReasoning
import ConvoyScenario
import Foundation

/// `convoy calibrate`: measures a real model server and writes a profile the compute model can use.
struct CalibrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure a real model server's prefill and decode speed and write a profile for the compute model.",
        discussion: """
        Sends streamed completions with prompts of about \(Calibration.promptSizes.map(String.init).joined(separator: ", ")) tokens and \
        \(Calibration.outputLengths.map(String.init).joined(separator: " and ")) generated tokens, measures the time to the first token \
        and the decode rate, and fits prefill = a + b × prompt tokens and decode step = c + d × context. A map uses the profile with \
        `calibration: FILE` under a compute, so a large fleet runs on the model yet stays true to the measured server.
        Example: tools/model-server --background && convoy calibrate http://127.0.0.1:8077 --model smollm2-135m --device epyc-2vcpu
        """)

    @Argument(help: "The server's base URL (its OpenAI-compatible API is under /v1).")
    var url: String

    @Option(help: "The model name to ask for; also the catalog model the profile is for.")
    var model: String

    @Option(help: "Where to write the profile (JSON).")
    var out: String?

    @Option(help: "Calls per prompt size and output length.")
    var repeats: Int = 2

    @Option(help: "Print the roofline model's prediction on this device next to the measurement.")
    var device: String?

    func validate() throws {
        guard ModelProfile.catalog[model] != nil else {
            throw ValidationError("unknown model '\(model)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
        }
        if let device, DeviceProfile.catalog[device] == nil {
            throw ValidationError("unknown device '\(device)' (known: \(DeviceProfile.catalog.keys.sorted().joined(separator: ", ")))")
        }
        guard (1...20).contains(repeats) else { throw ValidationError("--repeats must be 1…20") }
        guard let parsed = URLComponents(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host?.isEmpty == false else {
            throw ValidationError("expected an http:// or https:// URL, got '\(url)'")
        }
    }

    func run() async throws {
        do {
            try await calibrate()
        } catch {
            // The server or the output file failed us: not bad input (exit 1).
            FileHandle.standardError.write(Data("convoy: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func calibrate() async throws {
        let client = OpenAIClient(spec: BackendSpec(url: url, model: model, timeout: 120, stall: 30))
        print("calibrating \(model) at \(url) (\(repeats) calls per size; load \(Self.load()))")
        let samples = try await Calibration.measure(client, repeats: repeats) { print($0) }
        guard var profile = MeasuredProfile.fit(model: model, samples: samples) else { throw CalibrationError.tooFewSamples }
        profile.server = url
        profile.measuredAt = ISO8601DateFormatter().string(from: Date())
        let path = out ?? "calibration-\(model).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(profile).write(to: URL(fileURLWithPath: path))
        print(String(format: "prefill: %.1f ms + %.3f ms/token; decode step: %.2f ms + %.5f ms/context token",
                     profile.prefillBase * 1000, profile.prefillPerToken * 1000, profile.decodeStepBase * 1000,
                     profile.decodeStepPerContextToken * 1000))
        var rows = [["", "prefill 256 tok (ms)", "decode at 256 (tok/s)", "256 in + 32 out (ms)"]]
        rows.append(["measured", String(format: "%.1f", profile.prefillTime(inputTokens: 256) * 1000),
                     String(format: "%.1f", 1 / profile.decodeStepTime(context: 256)),
                     String(format: "%.1f", profile.inferenceTime(inputTokens: 256, outputTokens: 32) * 1000)])
        if let name = device, let device = DeviceProfile.catalog[name], let model = ModelProfile.catalog[model] {
            rows.append(["roofline (\(name))",
                         String(format: "%.1f", ComputeModel.prefillTime(model: model, device: device, inputTokens: 256) * 1000),
                         String(format: "%.1f", ComputeModel.decodeRate(model: model, device: device, context: 256)),
                         String(format: "%.1f", ComputeModel.inferenceTime(model: model, device: device, inputTokens: 256,
                                                                           outputTokens: 32) * 1000)])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print(row.enumerated().map { $0.offset == 0 ? $0.element.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[$0.offset] - $0.element.count) + $0.element }.joined(separator: "  "))
        }
        print("wrote \(path) (use it in a map: compute: { device: …, calibration: \(path) })")
    }

    static func load() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }
}
