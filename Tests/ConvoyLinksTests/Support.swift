import ConvoyCore
import ConvoyLinks
import Testing

/// `|a − b| ≤ tolerance`.
func isClose(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool { abs(a - b) <= tolerance }

/// The delivery time of `outcome`, recording an issue when it is not a delivery.
func deliveryTime(_ outcome: LinkOutcome, sourceLocation: SourceLocation = #_sourceLocation) -> Double {
    guard case .deliver(let at) = outcome else {
        Issue.record("expected a delivery, got \(outcome)", sourceLocation: sourceLocation)
        return .nan
    }
    return at
}

/// Fraction of `draws` outcomes that are `.lost`.
func lossFraction(draws: Int, _ body: (inout SeededGenerator) -> LinkOutcome) -> Double {
    var rng = SeededGenerator(seed: 42, label: "loss")
    var lost = 0
    for _ in 0..<draws where body(&rng) == .lost { lost += 1 }
    return Double(lost) / Double(draws)
}

/// Whether an observed loss fraction is within 4 standard errors of `p` over `draws` trials.
func withinFourSigma(_ observed: Double, p: Double, draws: Int) -> Bool {
    abs(observed - p) < 4 * (p * (1 - p) / Double(draws)).squareRoot()
}

let c = Propagation.speedOfLight
