import ConvoyCore
import ConvoyReasoning
import Testing

/// `|a − b| ≤ tolerance · max(|a|, |b|)`.
func isRelativelyClose(_ a: Double, _ b: Double, _ tolerance: Double = 1e-12) -> Bool {
    abs(a - b) <= tolerance * max(abs(a), abs(b))
}

func model(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ModelProfile {
    try #require(ModelProfile.catalog[name], sourceLocation: sourceLocation)
}

func device(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> DeviceProfile {
    try #require(DeviceProfile.catalog[name], sourceLocation: sourceLocation)
}

/// The job of an admission, recording an issue when it is not `.admitted`.
func admittedJob(_ admission: ComputeServer.Admission, sourceLocation: SourceLocation = #_sourceLocation) -> ComputeServer.Job? {
    guard case .admitted(let job) = admission else {
        Issue.record("expected an admission, got \(admission)", sourceLocation: sourceLocation)
        return nil
    }
    return job
}
