import ArgumentParser
import ConvoyCore
import ConvoyLinks
import ConvoyScenario
import Foundation

/// `convoy link`: the link budget of one link at one distance, as the emulation applies it to a
/// message on an idle link.
struct LinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Print a link budget: path loss, SNR, rate and delivery time of a message.",
        discussion: """
        Examples:
          convoy link cellular --distance 100            # the paper's worked numbers: 90.5 dB, 12.5 dB, 84.6 Mbit/s
          convoy link v2v --distance 250 --bytes 300
          convoy link cellular --map maps/monaco.yaml --from rsu-3 --to 900,1010 --share 4
          convoy link wan --map maps/monaco.yaml --bytes 20000 --json
        """)

    @Argument(help: "cellular, macro, v2v, backhaul or wan.")
    var kind: LinkBudget.Kind

    @Option(help: "Distance in metres (radio links).")
    var distance: Double?

    @Option(help: "Message size in bytes.")
    var bytes: Int = 20_000

    @Option(help: "Vehicles sharing the cell (cellular and macro): each gets 1/N of the band.")
    var share: Int = 1

    @Option(help: "Take the link parameters from this map (default: the built-in defaults).")
    var map: String?

    @Option(help: "With --map: the RSU (or macro cell) whose parameters and position to use.")
    var from: String?

    @Option(help: "With --from: the other end as X,Y in the map's frame (metres); sets the distance.")
    var to: String?

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard bytes >= 0 else { throw ValidationError("--bytes must not be negative") }
        guard share >= 1 else { throw ValidationError("--share must be at least 1") }
        if let distance, !(distance >= 0 && distance.isFinite) { throw ValidationError("--distance must be a non-negative number") }
        if to != nil && from == nil { throw ValidationError("--to needs --from") }
        if from != nil && map == nil { throw ValidationError("--from needs --map") }
    }

    func run() throws {
        let budget: LinkBudget
        do {
            budget = try makeBudget()
        } catch {
            fail(error)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(budget), as: UTF8.self))
        } else {
            print(budget.text)
        }
    }

    private func makeBudget() throws -> LinkBudget {
        let spec = try map.map { try MapSpec.load(path: $0) }
        let links = spec?.links ?? LinkSettings()
        let rsu = try from.flatMap { id -> RSUSpec? in
            guard let spec else { return nil }
            if let rsu = spec.rsu(id) { return rsu }
            if spec.macro?.id == id { return nil }
            throw ValidationError("--from \(id): not an RSU or the macro cell of \(spec.name)")
        }
        var distance = self.distance
        if let to {
            let parts = to.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2 else { throw ValidationError("--to expects X,Y in metres, got '\(to)'") }
            let origin = rsu?.position ?? spec?.macro?.position ?? Position(x: 0, y: 0)
            distance = origin.distance(to: Position(x: parts[0], y: parts[1]))
        }
        switch kind {
        case .cellular, .macro, .v2v:
            guard let distance else { throw ValidationError("a \(kind.rawValue) budget needs --distance (or --from and --to)") }
            switch kind {
            case .cellular:
                let parameters = rsu.map { spec!.cellular(of: $0) } ?? links.cellular
                return .cellular(distance: distance, bytes: bytes, parameters: parameters, radius: rsu?.radius ?? .infinity, sharing: share)
            case .macro:
                return .cellular(distance: distance, bytes: bytes, parameters: links.macro, radius: spec?.macro?.radius ?? .infinity,
                                 sharing: share, kind: .macro)
            default:
                return .v2v(distance: distance, bytes: bytes, parameters: links.v2v)
            }
        case .backhaul:
            return .wired(.backhaul, bytes: bytes, parameters: rsu.map { spec!.backhaul(of: $0) } ?? links.backhaul)
        case .wan:
            return .wired(.wan, bytes: bytes, parameters: links.wan)
        }
    }
}

extension LinkBudget.Kind: ExpressibleByArgument {}
