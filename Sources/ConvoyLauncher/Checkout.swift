import Foundation

/// Finds a file of the Convoy checkout (the bundled scenario, `tools/plot`, `tools/trainer`):
/// under `$CONVOY_HOME`, the working directory, then the binary's directory and its parents.
public enum Checkout {
    public static func locate(_ relative: String, executable: String) -> String? {
        var roots: [URL] = []
        if let home = ProcessInfo.processInfo.environment["CONVOY_HOME"] { roots.append(URL(fileURLWithPath: home)) }
        roots.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<6 {
            roots.append(dir)
            dir = dir.deletingLastPathComponent()
        }
        return roots.map { $0.appendingPathComponent(relative).path }.first { FileManager.default.fileExists(atPath: $0) }
    }
}
