// Crash-safe file writes: temp file in the same directory, fsync, rename (or link when the
// target must not be replaced), fsync the directory; and the sweep of leftover temp files.
import Foundation

/// Why a durable write failed.
public enum DurableFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The target exists and replacing it was not allowed.
    case exists(path: String)
    /// A system call failed.
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .exists(let p): return "\(p) already exists"
        case let .io(p, op, e): return "\(op) \(p) failed: \(String(cString: strerror(e)))"
        }
    }
}

/// Durable writes and directory helpers.
public enum DurableFile {
    /// Prefix of temp files; files starting with it are leftovers of an interrupted write.
    public static let tempPrefix = ".repengd-tmp-"

    /// Writes `bytes` to `path` so that a crash at any point leaves either the old file (or none)
    /// or the complete new one. With `replace` false an existing file is kept and `.exists` thrown.
    public static func write(_ bytes: [UInt8], to path: String, replace: Bool = true, mode: mode_t = 0o644) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/" + tempPrefix + UUID().uuidString + "-" + url.lastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw DurableFileError.io(path: tmp, operation: "create", errno: errno) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do {
            defer { close(fd) }
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { buf in Glibc.write(fd, buf.baseAddress! + off, bytes.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DurableFileError.io(path: tmp, operation: "write", errno: errno)
                }
                off += n
            }
            guard fsync(fd) == 0 else { throw DurableFileError.io(path: tmp, operation: "fsync", errno: errno) }
        }
        if replace {
            guard rename(tmp, path) == 0 else { throw DurableFileError.io(path: path, operation: "rename to", errno: errno) }
        } else {
            // link() fails with EEXIST instead of replacing: no window where a concurrent writer is lost.
            if link(tmp, path) != 0 {
                let e = errno
                if e == EEXIST { throw DurableFileError.exists(path: path) }
                throw DurableFileError.io(path: path, operation: "link to", errno: e)
            }
            unlink(tmp)
        }
        ok = true
        try syncDirectory(dir)
    }

    /// fsyncs a directory so a rename or unlink in it is durable.
    public static func syncDirectory(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DurableFileError.io(path: dir, operation: "open directory", errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DurableFileError.io(path: dir, operation: "fsync directory", errno: errno) }
    }

    /// Creates `dir` (and parents) with `mode` if missing.
    public static func makeDirectory(_ dir: String, mode: Int = 0o755) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: mode])
        } catch {
            throw DurableFileError.io(path: dir, operation: "create directory", errno: EIO)
        }
    }

    /// Removes leftover temp files of interrupted writes in `dir`; returns their names.
    @discardableResult
    public static func sweepTemporaries(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for n in names where n.hasPrefix(tempPrefix) {
            if unlink(dir + "/" + n) == 0 { removed.append(n) }
        }
        return removed
    }
}
