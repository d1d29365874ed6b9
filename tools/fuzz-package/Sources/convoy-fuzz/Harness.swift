// The libFuzzer entry points (libFuzzer provides main). The harness is chosen once per process by
// the environment: CONVOY_FUZZ_HARNESS=<name> (tools/fuzz sets it). With CONVOY_FUZZ_SEEDS=<dir>
// the binary writes that harness's seeds into <dir> and exits instead of fuzzing.
import ConvoyFuzzTargets
import Foundation

nonisolated(unsafe) var harness = FuzzHarness.envelope
/// Where the harnesses whose reader takes a path write their input (one directory per process).
nonisolated(unsafe) var scratch: FuzzScratch?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    let environment = ProcessInfo.processInfo.environment
    guard let name = environment["CONVOY_FUZZ_HARNESS"], let chosen = FuzzHarness(rawValue: name) else {
        let names = FuzzHarness.allCases.map(\.rawValue).joined(separator: " ")
        FileHandle.standardError.write(Data("convoy-fuzz: set CONVOY_FUZZ_HARNESS to one of: \(names)\n".utf8))
        exit(2)
    }
    harness = chosen
    if let directory = environment["CONVOY_FUZZ_SEEDS"] {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for seed in FuzzSeeds.seeds(for: harness) {
            guard FileManager.default.createFile(atPath: directory + "/" + seed.name, contents: Data(seed.bytes)) else {
                FileHandle.standardError.write(Data("convoy-fuzz: cannot write \(directory)/\(seed.name)\n".utf8))
                exit(1)
            }
        }
        exit(0)
    }
    scratch = FuzzScratch()
    atexit { scratch?.remove() }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    harness.run(input, scratch: scratch!)
    return 0
}
