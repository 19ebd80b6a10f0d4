// Control vectors by name in the vector directory: NAME.gguf or NAME.json, names validated,
// loaded on use, written durably.
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

/// One file of the directory as ListVectors reports it.
public struct VectorListing: Sendable {
    public var name: String
    public var file: String
    public var sizeBytes: UInt64
    public var result: Result<ControlVector, DaemonError>
}

/// The vector directory.
public final class VectorStore: Sendable {
    public let directory: String
    /// Largest vector file read.
    public static let maxFileBytes = 64 << 20

    public init(directory: String) {
        self.directory = directory
    }

    /// The file holding vector `name`: NAME.gguf if present, else NAME.json.
    func path(of name: String) throws -> String? {
        try VectorName.check(name)
        for ext in ["gguf", "json"] {
            let p = directory + "/" + name + "." + ext
            var st = stat()
            if stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { return p }
        }
        return nil
    }

    /// Loads vector `name`; `.unknownVector` when no file exists, `.unusableVector` when it does
    /// not load.
    public func load(_ name: String) throws -> ControlVector {
        guard let p = try path(of: name) else { throw DaemonError.unknownVector(name: name, directory: directory) }
        return try loadFile(p, name: name)
    }

    private func loadFile(_ p: String, name: String) throws -> ControlVector {
        var st = stat()
        guard stat(p, &st) == 0 else { throw DaemonError.unknownVector(name: name, directory: directory) }
        guard st.st_size <= Self.maxFileBytes else {
            throw DaemonError.unusableVector(name: name, reason: "file is \(st.st_size) bytes, more than \(Self.maxFileBytes)")
        }
        do {
            return try ControlVector.load(path: p)
        } catch {
            throw DaemonError.unusableVector(name: name, reason: "\(error)")
        }
    }

    /// Every NAME.gguf / NAME.json with a valid name (dotfiles, temp files and others skipped),
    /// sorted by name; a name with both files lists the GGUF one, which is what `load` uses.
    public func list() -> [VectorListing] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        var out: [VectorListing] = []
        var seen = Set<String>()
        for file in names {
            let url = URL(fileURLWithPath: file)
            let ext = url.pathExtension
            guard ext == "gguf" || ext == "json" else { continue }
            let name = url.deletingPathExtension().lastPathComponent
            guard VectorName.isValid(name) else { continue }
            let p = directory + "/" + file
            var st = stat()
            guard stat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            guard (try? path(of: name)) == p, seen.insert(name).inserted else { continue }
            let result: Result<ControlVector, DaemonError>
            do { result = .success(try loadFile(p, name: name)) } catch let e as DaemonError { result = .failure(e) } catch {
                result = .failure(.unusableVector(name: name, reason: "\(error)"))
            }
            out.append(VectorListing(name: name, file: file, sizeBytes: UInt64(max(0, st.st_size)), result: result))
        }
        return out
    }

    /// Writes `vector` as NAME.gguf durably; refuses to replace an existing NAME.gguf (or a
    /// NAME.json, which the new file would shadow) unless `overwrite`.
    public func save(_ vector: ControlVector, as name: String, overwrite: Bool) throws -> String {
        try VectorName.check(name)
        let p = directory + "/" + name + ".gguf"
        if !overwrite, try path(of: name) != nil { throw DaemonError.vectorExists(name: name) }
        let bytes: [UInt8]
        do { bytes = try vector.ggufBytes() } catch { throw DaemonError.invalidArgument("cannot save vector '\(name)': \(error)") }
        do {
            try DurableFile.write(bytes, to: p, replace: overwrite)
        } catch DurableFileError.exists {
            throw DaemonError.vectorExists(name: name)
        }
        return p
    }

    /// Whether NAME.gguf or NAME.json exists.
    public func exists(_ name: String) throws -> Bool { try path(of: name) != nil }
}
