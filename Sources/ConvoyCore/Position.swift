/// A point in the scenario's local metric frame (metres, x east, y north).
public struct Position: Sendable, Hashable, Codable, CustomStringConvertible {
    public var x: Double
    public var y: Double

    /// The largest |x| or |y| an input may give (metres): far beyond any projected map, and small
    /// enough that grid cells and wire encodings of positions stay exact integers.
    public static let maxCoordinate = 1e9

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }

    /// Euclidean distance in metres.
    public func distance(to other: Position) -> Double {
        let dx = x - other.x
        let dy = y - other.y
        return (dx * dx + dy * dy).squareRoot()
    }

    /// Linear interpolation: `fraction` 0 is `self`, 1 is `other`.
    public func interpolated(to other: Position, fraction: Double) -> Position {
        Position(x: x + (other.x - x) * fraction, y: y + (other.y - y) * fraction)
    }

    public var description: String { "(\(x), \(y))" }
}
