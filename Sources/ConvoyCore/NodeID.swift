/// What a node id (vehicle, RSU, edge server, cloud) may be, checked where ids are loaded (map,
/// trace) so that a bad one stops the launch with file, line and field instead of breaking a node
/// after the start.
public enum NodeID {
    /// The wire carries a sender id of at most this many UTF-8 bytes (`Envelope`), and an
    /// infrastructure node's ipc:// endpoint name must fit a Unix socket path.
    public static let maxBytes = 64

    /// Why `id` cannot be a node id, or nil when it can.
    public static func problem(with id: String) -> String? {
        if id.isEmpty { return "a node id must not be empty" }
        if id.utf8.count > maxBytes {
            return "node id '\(excerpt(id))' is \(id.utf8.count) bytes; ids are at most \(maxBytes) bytes (the wire's sender limit)"
        }
        if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "node id '\(excerpt(id))' contains a control character"
        }
        return nil
    }

    /// `id` as a file or endpoint name: characters other than ASCII letters, digits and `-`
    /// become `_`. Two infrastructure ids with the same file name are refused by the map.
    public static func fileName(of id: String) -> String {
        String(id.unicodeScalars.map { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") ? Character($0) : "_" })
    }

    /// At most `limit` characters of `text`, with "…" when cut: for quoting user input in errors.
    public static func excerpt(_ text: String, limit: Int = 40) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}
