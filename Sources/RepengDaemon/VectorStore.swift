// Control vectors by name in the vector directory: NAME.gguf or NAME.json, names validated,
// kept loaded and current by a watched catalog, written durably.
import Foundation
import RepengEngine
import RepengSteering

/// Vector and model names: `[A-Za-z0-9_.-]{1,64}`, not `.` or `..`, never a path.
public enum VectorName {
    public static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name != ".", name != "..", !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2E || c == 0x2D
        }
    }

    /// Throws `DaemonError.invalidName` unless valid.
    static func check(_ name: String, what: String = "vector name") throws {
        guard isValid(name) else { throw DaemonError.invalidName(what: what, name: name) }
    }
}

/// One name of the directory as ListVectors reports it.
public struct VectorListing: Sendable {
    public var name: String
    public var file: String
    public var sizeBytes: UInt64
    /// The version in use (nil when no version of the file has loaded).
    public var vector: ControlVector?
    /// Increases each time a new good version is loaded; 0 when none.
    public var version: Int
    /// Why the newest file does not load (the previous good version, if any, keeps serving).
    public var error: String?
}

/// The vector directory: a watched catalog (inotify) of the last good version of every
/// NAME.gguf / NAME.json, and durable writes of trained vectors.
public final class VectorStore: Sendable {
    public let directory: String
    /// Largest vector file read.
    public static let maxFileBytes = 64 << 20
    let catalog: VectorCatalog<ControlVector>

    /// A store of `directory`; `log` receives one line per change (loaded, invalid, removed).
    public init(directory: String, log: (@Sendable (String) -> Void)? = nil) {
        self.directory = directory
        catalog = VectorCatalog(directory: directory, maxFileBytes: Self.maxFileBytes, onChange: log) { bytes, _ in
            // One consistent copy of the file: a concurrent truncation cannot reach the parser.
            if bytes.starts(with: Array("GGUF".utf8)) { return try ControlVector(ggufBytes: bytes) }
            return try ControlVector(jsonData: Data(bytes))
        }
    }

    /// Scans the directory and starts watching it.
    public func start() throws {
        do { try catalog.start() } catch {
            throw DaemonError.internalFailure("cannot watch vector directory \(directory): \(error)")
        }
    }

    /// Stops watching.
    public func stop() { catalog.stop() }

    /// Vector `name` as last loaded, with its version: `.unknownVector` when no file exists,
    /// `.unusableVector` when no version of it loads.
    public func loadVersioned(_ name: String) throws -> (vector: ControlVector, version: Int) {
        try VectorName.check(name)
        do {
            let v = try catalog.value(named: name)
            return (v.value, v.version)
        } catch {
            switch error {
            case .invalidName: throw DaemonError.invalidName(what: "vector name", name: name)
            case .notFound: throw DaemonError.unknownVector(name: name, directory: directory)
            default: throw DaemonError.unusableVector(name: name, reason: error.description)
            }
        }
    }

    /// Vector `name` as last loaded (see `loadVersioned`).
    public func load(_ name: String) throws -> ControlVector { try loadVersioned(name).vector }

    /// The version of `name` in use now (0 when none).
    public func version(of name: String) -> Int { catalog.entry(named: name)?.version ?? 0 }

    /// Every vector name of the directory, sorted.
    public func list() -> [VectorListing] {
        catalog.entries().map { e in
            VectorListing(name: e.name, file: e.valueFile ?? e.file, sizeBytes: e.size, vector: e.value, version: e.version,
                          error: e.error?.description)
        }
    }

    /// Writes `vector` as NAME.gguf durably and makes it the name's current version (the
    /// watcher then sees an unchanged file and does not load it again); refuses to replace an
    /// existing NAME.gguf (or a NAME.json, which the new file would shadow) unless `overwrite`.
    public func save(_ vector: ControlVector, as name: String, overwrite: Bool) throws -> String {
        try VectorName.check(name)
        let p = directory + "/" + name + ".gguf"
        if !overwrite, try exists(name) { throw DaemonError.vectorExists(name: name) }
        let bytes: [UInt8]
        do { bytes = try vector.ggufBytes() } catch { throw DaemonError.invalidArgument("cannot save vector '\(name)': \(error)") }
        do {
            try DurableFile.write(bytes, to: p, replace: overwrite)
        } catch DurableFileError.exists {
            throw DaemonError.vectorExists(name: name)
        }
        _ = try? catalog.install(name: name, value: vector, path: p)
        return p
    }

    /// Whether NAME.gguf or NAME.json exists on disk now.
    public func exists(_ name: String) throws -> Bool {
        try VectorName.check(name)
        for ext in ["gguf", "json"] {
            var st = stat()
            if lstat(directory + "/" + name + "." + ext, &st) == 0 { return true }
        }
        return false
    }
}
