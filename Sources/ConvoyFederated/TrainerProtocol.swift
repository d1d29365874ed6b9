import Foundation

/// A request to the trainer process (tools/fedtune/trainer.py; protocol in tools/fedtune/README.md):
/// a JSON header frame and, for training and evaluation, the adapter's bytes as a second frame.
public enum TrainerRequest: Sendable, Equatable {
    /// The model, the adapter's layout and the initial adapter every client starts from.
    case hello(id: UInt64)
    /// Local training of `client` on its private shard, from `adapter`.
    case train(id: UInt64, client: String, adapter: Adapter, steps: Int, batch: Int, learningRate: Double, seed: UInt64)
    /// Held-out loss of `adapter` on each of `domains`.
    case evaluate(id: UInt64, adapter: Adapter, domains: [String])

    public var id: UInt64 {
        switch self {
        case .hello(let id), .train(let id, _, _, _, _, _, _), .evaluate(let id, _, _): id
        }
    }

    /// The frames to send (a DEALER; the trainer's ROUTER adds and strips the identity).
    public var frames: [[UInt8]] {
        var header: [String: Any] = ["id": String(id)]
        var payload: [UInt8]?
        switch self {
        case .hello:
            header["op"] = "hello"
        case .train(_, let client, let adapter, let steps, let batch, let rate, let seed):
            header.merge(["op": "train", "client": client, "steps": steps, "batch": batch, "lr": rate, "seed": seed]) { $1 }
            payload = adapter.bytes
        case .evaluate(_, let adapter, let domains):
            header.merge(["op": "eval", "domains": domains]) { $1 }
            payload = adapter.bytes
        }
        let json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data()
        return [Array(json)] + (payload.map { [$0] } ?? [])
    }
}

/// The trainer's answer: the header's fields and the adapter frame, if any.
public struct TrainerReply: Sendable, Equatable {
    public var id: UInt64
    public var error: String?
    public var adapter: Adapter?
    public var parameters: Int?
    public var samples: Int
    public var loss: Double
    public var wallSeconds: Double
    /// Evaluation: loss per domain.
    public var losses: [String: Double]

    public init(id: UInt64, error: String? = nil, adapter: Adapter? = nil, parameters: Int? = nil, samples: Int = 0, loss: Double = 0,
                wallSeconds: Double = 0, losses: [String: Double] = [:]) {
        self.id = id
        self.error = error
        self.adapter = adapter
        self.parameters = parameters
        self.samples = samples
        self.loss = loss
        self.wallSeconds = wallSeconds
        self.losses = losses
    }

    /// Decodes a reply; nil for frames that are not one (counted and dropped by the caller).
    public static func decode(_ frames: [[UInt8]]) -> TrainerReply? {
        guard let first = frames.first, frames.count <= 2,
              let header = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any],
              let idText = header["id"] as? String, let id = UInt64(idText) else { return nil }
        var reply = TrainerReply(id: id)
        if header["ok"] as? Bool != true {
            reply.error = header["error"] as? String ?? "the trainer refused the request"
            return reply
        }
        if frames.count == 2 {
            guard let adapter = Adapter(bytes: frames[1]) else { return nil }
            reply.adapter = adapter
        }
        reply.parameters = header["parameters"] as? Int
        reply.samples = header["samples"] as? Int ?? 0
        reply.loss = (header["loss"] as? NSNumber)?.doubleValue ?? 0
        reply.wallSeconds = (header["wall_s"] as? NSNumber)?.doubleValue ?? 0
        if let perDomain = header["per_domain"] as? [String: Any] {
            for (domain, value) in perDomain {
                if let fields = value as? [String: Any], let loss = (fields["loss"] as? NSNumber)?.doubleValue { reply.losses[domain] = loss }
            }
        }
        if let parameters = reply.parameters, let adapter = reply.adapter, adapter.count != parameters {
            reply.error = "the trainer sent \(adapter.count) parameters, announced \(parameters)"
        }
        return reply
    }
}
