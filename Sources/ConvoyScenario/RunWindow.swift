import ConvoyCore
import Foundation

/// Where in the trace a run starts (scenario `start:`, `convoy launch --start`).
public enum TraceStart: Sendable, Equatable, Codable {
    /// At this trace time (seconds).
    case at(Double)
    /// At the trace's first sample: skips a SUMO warm-up with no vehicles.
    case firstSample

    /// `first` or a number of seconds.
    public init?(text: String) {
        if text == "first" {
            self = .firstSample
        } else if let t = Double(text), t.isFinite, abs(t) <= 1e9 {
            self = .at(t)
        } else {
            return nil
        }
    }
}

/// The part of a trace a run replays, decided before anything starts: trace time `offset` is the
/// run's t = 0, and the run lasts `duration` emulated seconds. Vehicles present in
/// `[offset, offset + duration)` take part; everything a user would otherwise only notice
/// afterwards (an empty window, idle seconds before the first vehicle, faults that cannot fire)
/// is an error or a warning here.
public struct RunWindow: Sendable, Equatable {
    /// One vehicle's presence in the trace (trace seconds).
    public struct Span: Sendable, Equatable {
        public var id: String
        public var start: Double
        public var end: Double
        public init(id: String, start: Double, end: Double) {
            self.id = id
            self.start = start
            self.end = end
        }
    }

    /// Trace time of the run's t = 0.
    public var offset: Double
    /// Emulated seconds the run lasts.
    public var duration: Double
    /// Ids of the vehicles on the road at some time of the window, in trace order.
    public var vehicles: [String]
    /// Things the user should know that do not stop the run.
    public var warnings: [String]

    /// Plans the window of a run of `spans` (the trace's vehicles; not empty).
    ///
    /// - Parameters:
    ///   - start: where the run starts in the trace (default: trace time 0).
    ///   - duration: emulated seconds asked for (`--duration` or the scenario's); nil = to the trace's end.
    ///   - faults: the scenario's faults (their `at` is run time).
    /// - Throws: `InputError` (naming `trace`) when no vehicle is on the road in the window, or when
    ///   the trace ends before `start`.
    public static func plan(spans: [Span], start: TraceStart?, duration: Double?, faults: [FaultSpec], trace: String) throws -> RunWindow {
        let first = spans.map(\.start).min() ?? 0
        let last = spans.map(\.end).max() ?? 0
        let span = "the trace's vehicles appear from t = \(format(first)) s to t = \(format(last)) s"
        let offset: Double
        switch start ?? .at(0) {
        case .firstSample: offset = first
        case .at(let t): offset = t
        }
        let length = duration ?? (last - offset)
        guard length > 0 else {
            throw InputError(file: trace, field: "start", "the run would start at t = \(format(offset)) s, after the trace ends; \(span)")
        }
        let end = offset + length
        let vehicles = spans.filter { $0.start < end && $0.end >= offset }.map(\.id)
        guard !vehicles.isEmpty else {
            throw InputError(file: trace, field: "start",
                             "no vehicle is on the road in the run's window (t = \(format(offset)) to \(format(end)) s of the trace); "
                             + "\(span). Use --start first (or `start: first` in the scenario), or --start \(format(first))")
        }
        var warnings: [String] = []
        if first > offset + 1 {
            warnings.append("no vehicle appears before t = \(format(first - offset)) s of the run (the trace's first sample is at "
                            + "\(format(first)) s); use --start first to skip the empty seconds")
        }
        for fault in faults where fault.at >= length {
            warnings.append("the fault at t = \(format(fault.at)) s (\(fault.mode.rawValue) \(fault.node)) lies outside the run's "
                            + "0–\(format(length)) s and will not fire")
        }
        return RunWindow(offset: offset, duration: length, vehicles: vehicles, warnings: warnings)
    }

    private static func format(_ t: Double) -> String {
        t == t.rounded() && abs(t) < 1e15 ? String(Int64(t)) : String(format: "%.3f", t)
    }
}
