import ConvoyCore
import Foundation

/// How geographic coordinates (WGS84 longitude/latitude in degrees) become positions in the local
/// metric frame that maps use.
public enum GeoProjection: Sendable, Equatable, CustomStringConvertible {
    /// Equirectangular around (`originLon`, `originLat`): x = N·cos φ0·Δλ, y = M·Δφ with the WGS84
    /// radii of curvature N and M at φ0. The origin maps to (0, 0). Distances are true to about
    /// 0.1 % within 10 km of the origin, but its north is true north, not a UTM grid north: use it for
    /// traces not meant to match a SUMO network.
    case localEquirectangular(originLon: Double, originLat: Double)
    /// UTM (WGS84) in `zone`, then shifted by (`offsetX`, `offsetY`): exactly what SUMO does for a
    /// network with `<location netOffset="offsetX,offsetY" projParameter="+proj=utm +zone=…"/>`, so
    /// geo traces land on that network's (and its maps') x/y frame.
    case utm(zone: Int, south: Bool, offsetX: Double, offsetY: Double)

    /// The projection used for geo traces when none is given: UTM in the standard zone of
    /// (`originLon`, `originLat`), shifted so that this point is (0, 0). SUMO builds networks from
    /// OpenStreetMap in that same zone, so a geo trace projected this way differs from the network's
    /// x/y frame by a constant offset only (no rotation, no scale); pass the network's projection
    /// (`sumoNetwork(path:)`) to remove the offset too.
    public static func defaultProjection(originLon: Double, originLat: Double) -> GeoProjection {
        let zone = UTM.zone(lon: originLon)
        let south = originLat < 0
        let (e, n) = UTM.forward(lon: originLon, lat: originLat, zone: zone, south: south)
        return .utm(zone: zone, south: south, offsetX: -e, offsetY: -n)
    }

    /// The position of (`lon`, `lat`) in degrees.
    public func project(lon: Double, lat: Double) -> Position {
        switch self {
        case .localEquirectangular(let lon0, let lat0):
            let phi0 = lat0 * .pi / 180
            let e2 = WGS84.f * (2 - WGS84.f)
            let s = sin(phi0)
            let w = (1 - e2 * s * s).squareRoot()
            let n = WGS84.a / w  // prime vertical radius
            let m = WGS84.a * (1 - e2) / (w * w * w)  // meridional radius
            return Position(x: n * cos(phi0) * (lon - lon0) * .pi / 180, y: m * (lat - lat0) * .pi / 180)
        case .utm(let zone, let south, let dx, let dy):
            let (e, n) = UTM.forward(lon: lon, lat: lat, zone: zone, south: south)
            return Position(x: e + dx, y: n + dy)
        }
    }

    /// For UTM traces (SUMO `--fcd-output.utm`): the shift that puts UTM metres on the network frame.
    public var utmOffset: (x: Double, y: Double)? {
        if case .utm(_, _, let dx, let dy) = self { return (dx, dy) }
        return nil
    }

    public var description: String {
        switch self {
        case .localEquirectangular(let lon, let lat):
            return "local equirectangular around lon \(format6(lon)), lat \(format6(lat))"
        case .utm(let zone, let south, let dx, let dy):
            return "UTM zone \(zone)\(south ? "S" : "N") + offset (\(format2(dx)), \(format2(dy)))"
        }
    }

    /// The projection of a SUMO network (`<location netOffset=… projParameter="+proj=utm +zone=N …"/>`),
    /// read from the start of the `.net.xml` (plain or gzip) without reading the rest.
    ///
    /// Throws an `InputError` naming the file when it has no `<location>`, the network is not
    /// geo-referenced (`projParameter="!"`), or its projection is not UTM.
    public static func sumoNetwork(path: String) throws(InputError) -> GeoProjection {
        var scanner = try XMLScanner(path: path, expectedRoot: "net", expected: "a SUMO network file")
        defer { scanner.buffer.close() }
        while true {
            let token = try scanner.next()
            guard case .start(let name, _) = token else {
                if case .endOfDocument = token { break }
                continue
            }
            guard scanner.equals(name, "location") else { continue }
            let line = scanner.tokenLine
            guard let offsetRange = scanner.attribute("netOffset") else {
                throw InputError(file: path, line: line, field: "netOffset", "missing attribute; expected \"x,y\"")
            }
            let offsetText = try scanner.string(offsetRange)
            let parts = offsetText.split(separator: ",").map { parseNumber(String($0)) }
            guard parts.count == 2, let dx = parts[0], let dy = parts[1] else {
                throw InputError(file: path, line: line, field: "netOffset", "expected \"x,y\" in metres, found \"\(excerpt(offsetText))\"")
            }
            for value in [dx, dy] where coordinateProblem(value, axis: .x, geographic: false) != nil {
                throw InputError(
                    file: path, line: line, field: "netOffset",
                    "offset \(describeNumber(value)) m is outside the supported range; expected |offset| ≤ 1e9 m")
            }
            let parameter = try scanner.attribute("projParameter").map { range throws(InputError) in try scanner.string(range) } ?? "!"
            return try fromProj(parameter, offsetX: dx, offsetY: dy, file: path, line: line)
        }
        throw InputError(file: path, "no <location> element; expected a SUMO network (.net.xml)")
    }

    /// A projection from a PROJ string as SUMO writes it (`+proj=utm +zone=32 [+south] +ellps=WGS84 …`).
    static func fromProj(_ parameter: String, offsetX: Double, offsetY: Double, file: String, line: Int?) throws(InputError)
        -> GeoProjection
    {
        guard parameter != "!" else {
            throw InputError(file: file, line: line, field: "projParameter",
                             "the network is not geo-referenced (projParameter=\"!\"); expected a UTM projection")
        }
        var fields: [String: String] = [:]
        var south = false
        for token in parameter.split(separator: " ") where token.hasPrefix("+") {
            let pair = token.dropFirst().split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) } else if pair.first == "south" { south = true }
        }
        guard fields["proj"] == "utm", let zoneText = fields["zone"], let zone = Int(zoneText), (1...60).contains(zone) else {
            throw InputError(file: file, line: line, field: "projParameter",
                             "unsupported projection \"\(excerpt(parameter, limit: 80))\"; expected +proj=utm +zone=1…60")
        }
        return .utm(zone: zone, south: south, offsetX: offsetX, offsetY: offsetY)
    }
}

enum WGS84 {
    static let a = 6_378_137.0
    static let f = 1 / 298.257_223_563
}

/// Universal Transverse Mercator on WGS84 (Krüger series to n³: well below a millimetre in a zone).
enum UTM {
    static let k0 = 0.9996

    /// The standard zone (1…60) of a longitude (no Norway/Svalbard exceptions); 1 or 60 for a
    /// longitude out of range (clamped before converting, so never a trap), 31 for NaN.
    static func zone(lon: Double) -> Int {
        let index = ((lon + 180) / 6).rounded(.down)
        guard !index.isNaN else { return 31 }
        return Int(min(59, max(0, index))) + 1
    }

    static func forward(lon: Double, lat: Double, zone: Int, south: Bool) -> (easting: Double, northing: Double) {
        let n = WGS84.f / (2 - WGS84.f)
        let bigA = WGS84.a / (1 + n) * (1 + n * n / 4 + n * n * n * n / 64)
        let alpha = [n / 2 - 2 * n * n / 3 + 5 * n * n * n / 16, 13 * n * n / 48 - 3 * n * n * n / 5, 61 * n * n * n / 240]
        let lon0 = Double(zone * 6 - 183) * .pi / 180
        let phi = lat * .pi / 180
        let lambda = lon * .pi / 180 - lon0
        let c = 2 * n.squareRoot() / (1 + n)
        let t = sinh(atanh(sin(phi)) - c * atanh(c * sin(phi)))
        let xi = atan2(t, cos(lambda))
        let eta = atanh(sin(lambda) / (1 + t * t).squareRoot())
        var e = eta
        var nn = xi
        for j in 1...3 {
            let k = 2 * Double(j)
            e += alpha[j - 1] * cos(k * xi) * sinh(k * eta)
            nn += alpha[j - 1] * sin(k * xi) * cosh(k * eta)
        }
        return (500_000 + k0 * bigA * e, (south ? 10_000_000 : 0) + k0 * bigA * nn)
    }
}

func format6(_ value: Double) -> String { String(format: "%.6f", value) }
func format2(_ value: Double) -> String { String(format: "%.2f", value) }
