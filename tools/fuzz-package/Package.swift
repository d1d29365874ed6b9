// swift-tools-version: 6.0
// The libFuzzer harnesses of Convoy's decoders: a package of its own, so that the main package's
// `swift build` and `swift test` never see -sanitize=fuzzer. Build and run it with `tools/fuzz`
// (swift build -c release --package-path tools/fuzz-package --scratch-path tools/fuzz-package/.build --sanitize fuzzer
// -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address). The decoding calls live in the main package
// (Sources/ConvoyFuzzTargets), shared with the corpus replay tests (Tests/ConvoyFuzzReplayTests).
import Foundation
import PackageDescription

// A path dependency is known by its directory's name, whatever the checkout is called.
let convoy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

let package = Package(
    name: "ConvoyFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "../..")],
    targets: [
        // One binary for every harness; CONVOY_FUZZ_HARNESS picks one (see tools/fuzz).
        .executableTarget(name: "convoy-fuzz", dependencies: [.product(name: "ConvoyFuzzTargets", package: convoy)]),
    ]
)
