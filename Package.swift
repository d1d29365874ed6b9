// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Convoy",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "convoy", targets: ["convoy"]),
        // For tools/fuzz-package/ (the libFuzzer package, which depends on this one by path).
        .library(name: "ConvoyFuzzTargets", targets: ["ConvoyFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // libzmq, wrapped only by ConvoyTransport.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        // zlib, for gzip-compressed traces; used only by ConvoyMobility.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // prctl and posix_spawn, which Swift's Glibc module does not expose conveniently.
        .target(name: "CProcess"),
        // Vocabulary shared by every layer: positions, roles, emulated time, seeded randomness, input errors.
        .target(name: "ConvoyCore"),
        // The versioned envelope and message payloads that cross process boundaries.
        .target(name: "ConvoyWire", dependencies: ["ConvoyCore"], exclude: ["PROTOCOL.md"]),
        // One I/O thread per process owning its ZeroMQ sockets; actors talk to it through an AsyncStream and an outbox.
        .target(name: "ConvoyTransport", dependencies: [
            "CZeroMQ", .product(name: "HeapModule", package: "swift-collections"),
        ]),
        // Mobility traces: readers and trajectory interpolation.
        .target(name: "ConvoyMobility", dependencies: ["ConvoyCore", "CZlib"]),
        // Link models (cellular, V2V, backhaul, WAN) and the resource queues that hold messages back.
        .target(name: "ConvoyLinks", dependencies: ["ConvoyCore"]),
        // Compute model, servers, liveness, path choice and failover: pure state machines.
        .target(name: "ConvoyReasoning", dependencies: ["ConvoyCore", "ConvoyWire", "ConvoyLinks"]),
        // Federated fine-tuning: adapters, aggregation rules (FedAvg, clustered, hierarchical, FedAsync, FedBuff),
        // chunked transfer, and the aggregator's and participant's state machines. Pure; the passes run in tools/fedtune.
        .target(name: "ConvoyFederated", dependencies: ["ConvoyCore", "ConvoyWire"]),
        // Map and scenario files.
        .target(name: "ConvoyScenario", dependencies: ["ConvoyCore", "ConvoyLinks", "ConvoyReasoning", "ConvoyFederated", "Yams"]),
        // RSU placement on a SUMO network and coverage of a trace (`convoy map`); the only user of FoundationXML.
        .target(name: "ConvoyPlacement", dependencies: ["ConvoyCore", "ConvoyScenario"]),
        // The launcher/node contract: the run description, imposed faults, process signals.
        .target(name: "ConvoyRuntime", dependencies: ["CProcess", "ConvoyCore", "ConvoyScenario", "ConvoyTransport"]),
        // SQLite recording (single writer) and CSV export.
        .target(name: "ConvoyRecording", dependencies: ["ConvoyCore", "ConvoyWire", "ConvoyReasoning", .product(name: "GRDB", package: "GRDB.swift")]),
        // What nodes decide, as pure state machines: event and time in, actions out (no sockets, no clock).
        .target(name: "ConvoyNodeCore", dependencies: ["ConvoyCore", "ConvoyWire", "ConvoyMobility", "ConvoyLinks", "ConvoyReasoning", "ConvoyScenario", "ConvoyFederated"]),
        // Real model servers behind the compute seam: an OpenAI-compatible streaming client (AsyncHTTPClient).
        .target(name: "ConvoyModelServers", dependencies: [
            "ConvoyCore", "ConvoyReasoning", "ConvoyScenario", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // The node processes: thin interpreters of the cores' actions, owning sockets, clocks and signals.
        .target(name: "ConvoyNodes", dependencies: ["ConvoyCore", "ConvoyWire", "ConvoyTransport", "ConvoyMobility", "ConvoyNodeCore", "ConvoyFederated", "ConvoyScenario", "ConvoyRuntime", "ConvoyModelServers"]),
        // The launcher: spawns, supervises and records a fleet; fault injection.
        .target(name: "ConvoyLauncher", dependencies: ["CProcess", "ConvoyCore", "ConvoyWire", "ConvoyTransport", "ConvoyMobility", "ConvoyReasoning", "ConvoyScenario", "ConvoyRecording", "ConvoyRuntime", "ConvoyFederated"]),
        .executableTarget(name: "convoy", dependencies: [
            "ConvoyLauncher", "ConvoyNodes", "ConvoyRecording", "ConvoyScenario", "ConvoyPlacement", "ConvoyRuntime", "ConvoyModelServers",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The decoders of untrusted input as fuzz harnesses (tools/fuzz-package, tools/fuzz) and their seeds.
        .target(name: "ConvoyFuzzTargets", dependencies: ["ConvoyCore", "ConvoyWire", "ConvoyMobility", "ConvoyReasoning", "ConvoyScenario"]),

        .testTarget(name: "ConvoyCoreTests", dependencies: ["ConvoyCore", "ConvoyWire"]),
        .testTarget(name: "ConvoyTransportTests", dependencies: ["ConvoyTransport"]),
        .testTarget(name: "ConvoyMobilityTests", dependencies: ["ConvoyMobility", "ConvoyCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ConvoyFederatedTests", dependencies: ["ConvoyFederated", "ConvoyWire"]),
        .testTarget(name: "ConvoyLinksTests", dependencies: ["ConvoyLinks", "ConvoyReasoning"]),
        .testTarget(name: "ConvoyReasoningTests", dependencies: ["ConvoyReasoning", "ConvoyCore", "ConvoyWire", "ConvoyLinks"]),
        .testTarget(name: "ConvoyScenarioTests", dependencies: ["ConvoyScenario", "ConvoyPlacement", "ConvoyCore", "ConvoyLinks", "ConvoyReasoning"]),
        .testTarget(name: "ConvoyNodeCoreTests", dependencies: ["ConvoyNodeCore", "ConvoyCore", "ConvoyWire", "ConvoyLinks", "ConvoyReasoning", "ConvoyScenario", "ConvoyMobility"]),
        .testTarget(name: "ConvoyRecordingTests", dependencies: [
            "ConvoyRecording", "ConvoyWire", "ConvoyCore", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "ConvoyModelServersTests", dependencies: [
            "ConvoyModelServers", "ConvoyReasoning", "ConvoyScenario", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .testTarget(name: "ConvoyFuzzReplayTests", dependencies: ["ConvoyFuzzTargets"]),
        .testTarget(name: "ConvoyEndToEndTests", dependencies: ["ConvoyRecording", "ConvoyTransport", "ConvoyRuntime", "ConvoyReasoning", "ConvoyScenario"]),
    ]
)
