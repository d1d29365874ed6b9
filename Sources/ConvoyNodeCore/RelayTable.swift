import ConvoyWire

/// Attempts a node passed on to another node and must answer for: an RSU or edge server forwarding
/// to its next hop, a vehicle relaying a neighbour's request to its RSU. One mechanism for both:
/// the reply goes back to the client that sent the attempt, a cancel follows it to the hop, and
/// when the hop dies every attempt relayed to it is refused back at once so the clients fail over
/// without waiting for a time-out.
public struct RelayTable<Client: Sendable & Equatable>: Sendable {
    public struct Entry: Sendable, Equatable {
        public var client: Client
        /// The request as the client sent it.
        public var request: InferenceRequest
        public var hop: String
    }

    private var entries: [AttemptKey: Entry] = [:]

    public init() {}

    public var count: Int { entries.count }

    public mutating func relayed(_ request: InferenceRequest, from client: Client, to hop: String) {
        entries[AttemptKey(request.requestID, Int(request.attempt))] = Entry(client: client, request: request, hop: hop)
    }

    /// The entry a reply from the hop answers (removed); nil if it answers nothing relayed.
    public mutating func replied(_ reply: InferenceReply) -> Entry? {
        entries.removeValue(forKey: AttemptKey(reply.requestID, Int(reply.attempt)))
    }

    /// The entry the client withdraws (removed): the cancel goes on to its hop.
    public mutating func withdrawn(requestID: String, attempt: Int) -> Entry? {
        entries.removeValue(forKey: AttemptKey(requestID, attempt))
    }

    /// Every entry relayed to `hop` (removed), in request order.
    public mutating func hopLost(_ hop: String) -> [Entry] {
        let lost = entries.filter { $0.value.hop == hop }.sorted { $0.key < $1.key }
        for (key, _) in lost { entries[key] = nil }
        return lost.map(\.value)
    }

    /// A refusal for an entry whose hop is lost: `failed`, served by `node`, with `detail`.
    public static func refusal(_ entry: Entry, by node: String, route: [String], detail: String) -> InferenceReply {
        InferenceReply(requestID: entry.request.requestID, attempt: entry.request.attempt, status: .failed, servedBy: node,
                       route: route, detail: detail)
    }
}
