import ConvoyCore

/// A command from `convoy fail` / `convoy recover` to a running launcher (JSON payload of a
/// `control` message on the launcher's control socket).

public struct ControlCommand: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable { case fail, recover }
    public var action: Action
    public var node: String
    /// fail only; nil means crash.
    public var mode: FaultMode?
    /// Emulated seconds until automatic recovery; nil = until `convoy recover`.
    public var duration: Double?
    /// degrade only: extra loss probability and extra latency in seconds.
    public var loss: Double?
    public var latency: Double?

    public init(action: Action, node: String, mode: FaultMode? = nil, duration: Double? = nil, loss: Double? = nil, latency: Double? = nil) {
        self.action = action
        self.node = node
        self.mode = mode
        self.duration = duration
        self.loss = loss
        self.latency = latency
    }
}

/// The launcher's answer to a `ControlCommand`.
public struct ControlReply: Codable, Sendable, Equatable {
    public var ok: Bool
    public var message: String

    public init(ok: Bool, message: String) {
        self.ok = ok
        self.message = message
    }
}
