import ArgumentParser
import ConvoyCore
import ConvoyMobility
import ConvoyPlacement
import ConvoyScenario
import Foundation

/// `convoy map …`: make maps from road networks and check them against traces.
struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map", abstract: "Place RSUs on a SUMO road network; measure a map's coverage of a trace.",
        subcommands: [Place.self, Coverage.self])

    struct Place: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place RSUs and edge servers on a SUMO network and write a Convoy map.",
            discussion: """
                RSUs go to junctions with traffic lights first, then to major junctions (three or more \
                major roads), then every --every metres along major roads, each at least --spacing metres \
                from the others. Major roads: SUMO priority ≥ --major-priority (default: the top priorities \
                making up a quarter of the road length). --edges edge servers are placed by k-means over the \
                RSUs, each serving its cluster. The map is in the network's x/y frame.
                """)

        @Option(help: "The SUMO network (.net.xml).") var net: String
        @Option(help: "RSU coverage radius, metres.") var radius: Double = 250
        @Option(help: "Minimum distance between RSUs, metres (default: the radius).") var spacing: Double?
        @Option(help: "Distance between RSU candidates along major roads, metres.") var every: Double = 500
        @Option(help: "Number of edge servers.") var edges: Int = 3
        @Option(help: "Edges with at least this SUMO priority are major roads.") var majorPriority: Int?
        @Option(help: "At most this many RSUs.") var maxRsus: Int?
        @Option(help: "Map name (default: the network's file name).") var name: String?
        @Option(name: .customLong("out"), help: "Map file to write (default: print it).") var out: String?

        func validate() throws {
            guard radius > 0 else { throw ValidationError("--radius must be positive") }
            guard every > 0 else { throw ValidationError("--every must be positive") }
            if let spacing, spacing < 0 { throw ValidationError("--spacing must not be negative") }
            guard edges >= 1 else { throw ValidationError("--edges must be at least 1") }
            if let maxRsus, maxRsus < 1 { throw ValidationError("--max-rsus must be at least 1") }
        }

        func run() throws {
            var options = RSUPlacement.Options()
            options.radius = radius
            options.spacing = spacing
            options.every = every
            options.edgeServers = edges
            options.majorPriority = majorPriority
            options.maxRSUs = maxRsus
            let mapName = name ?? URL(fileURLWithPath: net).lastPathComponent
                .replacingOccurrences(of: ".gz", with: "").replacingOccurrences(of: ".net.xml", with: "")
                .replacingOccurrences(of: ".xml", with: "")
            let yaml: String
            let placement: RSUPlacement
            do {
                let network = try SumoNetwork.load(path: net)
                placement = try RSUPlacement.place(on: network, options: options, file: net)
                yaml = placement.yaml(name: mapName, network: URL(fileURLWithPath: net).lastPathComponent, options: options)
                // The output must be a valid map.
                _ = try MapSpec.parse(yaml, file: out ?? "<map>")
            } catch {
                fail(error)
            }
            guard let out else {
                print(yaml, terminator: "")
                return
            }
            do {
                try yaml.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                fail(InputError(file: out, "cannot write the map: \(error.localizedDescription)"))
            }
            let reasons = Dictionary(grouping: placement.rsus, by: \.reason).mapValues(\.count)
            print("\(out): \(placement.rsus.count) RSUs (\(reasons[.trafficLight] ?? 0) at traffic lights, "
                + "\(reasons[.majorJunction] ?? 0) at major junctions, \(reasons[.alongRoad] ?? 0) along major roads), "
                + "\(placement.edgeServers.count) edge servers")
        }
    }

    struct Coverage: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Share of a trace's samples within some RSU's radius; samples and vehicles per RSU.")

        @Argument(help: "A map file (YAML).") var map: String
        @Argument(help: "A trace file (any format `convoy trace info` reads).") var trace: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var coordinateOptions: TraceCommand.CoordinateOptions

        func run() throws {
            let report: CoverageCounter.Report
            do {
                let spec = try MapSpec.load(path: map)
                let loaded = try Trace.load(path: trace, options: coordinateOptions.loadOptions())
                var counter = CoverageCounter(map: spec)
                for trajectory in loaded.trajectories {
                    for sample in trajectory.samples { counter.add(vehicle: trajectory.vehicleID, position: sample.position) }
                }
                report = counter.report
            } catch {
                fail(error)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(report.text)
            }
        }
    }
}
