import ConvoyCore

/// The cell a vehicle would use now (its best RSU, else the macro cell), as a state machine that
/// reports attach (none → cell), detach (cell → none) and handover (cell → other cell).
public struct ServingCell: Sendable, Equatable {
    public enum Change: String, Sendable, Equatable {
        case attach, detach, handover
    }

    public private(set) var cell: String?

    public init() {}

    /// Moves to `cell`; returns what happened, nil if it is the same cell.
    public mutating func update(to cell: String?) -> (change: Change, from: String?)? {
        guard cell != self.cell else { return nil }
        let change: Change = self.cell == nil ? .attach : cell == nil ? .detach : .handover
        defer { self.cell = cell }
        return (change, self.cell)
    }
}
