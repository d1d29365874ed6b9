import ArgumentParser
import ConvoyCore
import ConvoyMobility
import Foundation

/// `convoy trace …`: inspect and convert mobility traces.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace", abstract: "Inspect and convert mobility traces.", subcommands: [Info.self, Import.self])

    /// Options shared by the trace commands: how coordinates are read.
    struct CoordinateOptions: ParsableArguments {
        @Option(help: "A SUMO network (.net.xml): project lon/lat traces with its projection and shift UTM traces by its netOffset, so the trace lands on the network's (and its maps') x/y frame.")
        var net: String?

        @Option(help: "auto (from the file, else from the values), metric (x/y metres) or geo (x = lon, y = lat).")
        var coordinates: String = "auto"

        func validate() throws {
            guard ["auto", "metric", "geo", "geographic"].contains(coordinates) else {
                throw ValidationError("--coordinates must be auto, metric or geo")
            }
        }

        /// The load options; exits with an error for an unusable network.
        func loadOptions() -> TraceLoadOptions {
            var options = TraceLoadOptions()
            switch coordinates {
            case "metric": options.coordinates = .metric
            case "geo", "geographic": options.coordinates = .geographic
            default: options.coordinates = .auto
            }
            if let net {
                do {
                    options.projection = try GeoProjection.sumoNetwork(path: net)
                } catch {
                    fail(error)
                }
            }
            return options
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Vehicles, samples, time span, sampling interval, concurrency, bounding box and coordinate frame of a trace.",
            discussion: """
                Reads SUMO FCD XML (x/y, lon/lat or UTM), SUMO FCD CSV, ns-2 mobility, plain CSV \
                time,id,x,y[,speed,angle] and Convoy trace indexes, plain or gzip-compressed; the format is \
                detected from the content. Lon/lat is projected to UTM (the zone of the first sample, shifted \
                so that sample is at 0,0) unless --net gives the network's projection.
                """)

        @Argument(help: "A trace file.") var file: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var coordinateOptions: CoordinateOptions

        func run() throws {
            let trace: Trace
            do {
                trace = try Trace.load(path: file, options: coordinateOptions.loadOptions())
            } catch {
                fail(error)
            }
            let info = TraceInfo(trace)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(info), as: UTF8.self))
            } else {
                print(info.text)
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Convert a trace once into an indexed file that loads fast, one vehicle at a time.",
            discussion: """
                Writes TRACE.convoy-index next to the trace unless --out is given. Any command that takes a \
                trace also takes the index file.
                """)

        @Argument(help: "A trace file (any format `convoy trace info` reads).") var trace: String
        @Option(name: .customLong("out"), help: "The index file to write (default: TRACE.convoy-index).") var out: String?
        @OptionGroup var coordinateOptions: CoordinateOptions

        func run() throws {
            let options = coordinateOptions.loadOptions()
            let target = out ?? TraceCache.indexPath(for: trace)
            let started = Date()
            let loaded: Trace
            do {
                loaded = try Trace.load(path: trace, options: options)
            } catch {
                fail(error)
            }
            do {
                try TraceIndex.write(loaded, to: target, optionsKey: out == nil ? TraceCache.optionsKey(options) : "")
            } catch {
                fail(error)  // an InputError naming the target and the system's reason
            }
            let samples = loaded.trajectories.reduce(0) { $0 + $1.samples.count }
            let seconds = Date().timeIntervalSince(started)
            print("\(target): \(loaded.trajectories.count) vehicles, \(samples) samples (\(loaded.coordinateFrame)) in \(String(format: "%.2f", seconds)) s")
        }
    }
}
