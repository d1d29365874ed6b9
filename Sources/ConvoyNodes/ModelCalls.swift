import ConvoyModelServers
import ConvoyReasoning
import ConvoyScenario

/// The calls a node makes to its real model server (a compute with `backend:`): each runs in a
/// task of its own; its end comes back to the node as an event, unless it was aborted. Owned by
/// one node actor.
final class ModelCalls {
    private let client: OpenAIClient
    private var calls: [String: Task<Void, Never>] = [:]

    /// Nil when the compute has no real model server.
    init?(_ spec: ComputeSpec?) {
        guard let backend = spec?.backend else { return nil }
        client = OpenAIClient(spec: backend)
    }

    /// Makes or stops a call; `ended` is handed the result of a call that was not aborted.
    func carryOut(_ command: ComputeCommand, ended: @escaping @Sendable (ModelCallResult) async -> Void) {
        switch command {
        case .run(let call):
            calls[call.requestID]?.cancel()
            let client = client
            calls[call.requestID] = Task {
                let result = await client.run(call)
                if !Task.isCancelled { await ended(result) }
            }
        case .abort(let requestID):
            calls.removeValue(forKey: requestID)?.cancel()
        }
    }

    /// Whether `result`'s call is still wanted (it is then forgotten).
    func take(_ result: ModelCallResult) -> Bool { calls.removeValue(forKey: result.requestID) != nil }

    func abortAll() {
        for task in calls.values { task.cancel() }
        calls = [:]
    }
}
