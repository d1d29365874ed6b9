/// A FIFO transmission resource (a radio share, a wire): one message is serialised at a time, in the
/// order the messages are handed to it.
///
/// A message handed over at `arrival` starts when the resource is free,
/// `start = max(arrival, busyUntil)`, occupies it for its serialisation time `duration`
/// (bits / rate, seconds), and finishes at `finish = start + duration`; `busyUntil` becomes `finish`.
/// Times are emulated seconds.
public struct TransmissionQueue: Sendable, Equatable {
    /// Emulated time at which the last message handed over finishes; `-infinity` when nothing was
    /// ever sent.
    public var busyUntil: Double

    public init(busyUntil: Double = -.infinity) {
        self.busyUntil = busyUntil
    }

    /// Queues a message that arrives at `arrival` and needs `duration` seconds of the resource.
    @discardableResult
    public mutating func transmit(arrival: Double, duration: Double) -> (start: Double, finish: Double) {
        precondition(duration >= 0, "a transmission cannot last a negative time")
        let start = max(arrival, busyUntil)
        let finish = start + duration
        busyUntil = finish
        return (start, finish)
    }

    /// Seconds a message arriving at `now` would wait before it starts (0 when the resource is free).
    public func backlog(now: Double) -> Double { max(0, busyUntil - now) }
}
