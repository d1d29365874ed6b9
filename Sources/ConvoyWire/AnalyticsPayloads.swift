/// Federated analytics towards the aggregator (PROTOCOL.md, "Federated analytics"): one vehicle's
/// answer to the road-cell query, computed on board from its own trajectory. Forwarded hop by hop
/// like a request (each hop appends itself to `route`).
public struct AnalyticsReport: WirePayload {
    public static let kind = MessageKind.analyticsUp
    /// Cells in one answer, at most.
    public static let maxCells = 65_535

    /// One road cell the vehicle was in during the window, and its mean speed there (m/s).
    public struct Cell: Sendable, Equatable {
        public var x: Int32
        public var y: Int32
        public var meanSpeed: Double

        public init(x: Int32, y: Int32, meanSpeed: Double) {
            self.x = x
            self.y = y
            self.meanSpeed = meanSpeed
        }
    }

    public var vehicleID: String
    public var route: [String]
    public var cells: [Cell]

    public init(vehicleID: String, route: [String] = [], cells: [Cell]) {
        self.vehicleID = vehicleID
        self.route = route
        self.cells = cells
    }

    public func encode(into w: inout ByteWriter) {
        w.string(vehicleID)
        w.strings(route)
        w.u16(UInt16(clamping: cells.count))
        for cell in cells.prefix(Self.maxCells) {
            w.u32(UInt32(bitPattern: cell.x))
            w.u32(UInt32(bitPattern: cell.y))
            w.f64(cell.meanSpeed)
        }
    }

    public init(from r: inout ByteReader) throws(DecodeError) {
        vehicleID = try r.string()
        route = try r.strings()
        let n = Int(try r.u16())
        var cells: [Cell] = []
        cells.reserveCapacity(n)
        for _ in 0..<n {
            let cell = Cell(x: Int32(bitPattern: try r.u32()), y: Int32(bitPattern: try r.u32()), meanSpeed: try r.f64())
            guard cell.meanSpeed.isFinite, cell.meanSpeed >= 0 else { throw .invalid("speed \(cell.meanSpeed)") }
            cells.append(cell)
        }
        self.cells = cells
    }
}

/// The aggregator's receipt of a vehicle's answer, routed back by vehicle id the way the answer came.
public struct AnalyticsAck: WirePayload {
    public static let kind = MessageKind.analyticsAck
    public var vehicleID: String

    public init(vehicleID: String) { self.vehicleID = vehicleID }

    public func encode(into w: inout ByteWriter) { w.string(vehicleID) }

    public init(from r: inout ByteReader) throws(DecodeError) { vehicleID = try r.string() }
}
