import ConvoyFuzzTargets
import Foundation
import Testing

/// The committed fuzz corpus (`Tests/FuzzCorpus/<harness>/`, grown by `tools/fuzz`) replayed through
/// the same decoding calls as the libFuzzer harnesses, without libFuzzer: any input that ever made a
/// decoder crash, trap or hang stays a regression test. Only "it returns" is checked (a refusal is a
/// fine answer to a bad input); the harnesses' own preconditions (round trips) trap on a violation.
@Suite struct FuzzCorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    @Test(.timeLimit(.minutes(1)), arguments: FuzzHarness.allCases)
    func corpusReplays(_ harness: FuzzHarness) throws {
        let directory = Self.corpus.appendingPathComponent(harness.rawValue)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(!names.isEmpty, "no corpus in \(directory.path): run tools/fuzz seed")
        let scratch = FuzzScratch()
        defer { scratch.remove() }
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
            harness.run(bytes, scratch: scratch)
        }
    }

    /// The seeds are valid inputs: every one is accepted (else the fuzzer starts from refusals),
    /// except the `seed-refused-*` ones, which must be refused.
    @Test(arguments: FuzzHarness.allCases)
    func seedsAreAccepted(_ harness: FuzzHarness) {
        let seeds = FuzzSeeds.seeds(for: harness)
        #expect(!seeds.isEmpty)
        let scratch = FuzzScratch()
        defer { scratch.remove() }
        for seed in seeds {
            let refused = seed.name.hasPrefix("seed-refused-")
            #expect(harness.run(seed.bytes, scratch: scratch) != refused,
                    "seed \(seed.name) of \(harness.rawValue) is \(refused ? "accepted" : "refused")")
        }
    }
}
