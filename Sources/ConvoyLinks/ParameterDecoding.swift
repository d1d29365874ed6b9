extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent (or null).
    func decode<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }

    /// Throws a `DecodingError.dataCorrupted` pointing at `key` when `condition` is false.
    func require(_ condition: Bool, _ key: Key, _ message: @autoclosure () -> String) throws {
        if !condition {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: message())
        }
    }
}
