// A watched, cached catalog of the vector directory: each NAME.gguf / NAME.json loaded once per
// file version, kept current by DirectoryWatcher, the last good value kept while a file is bad.
import Foundation
import Glibc
import RepengEngine
import Synchronization

/// Identity and content stamp of a (resolved, regular) file: when any field differs the file is
/// considered changed and loaded again.
public struct VectorFileSignature: Sendable, Hashable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    /// Modification time, nanoseconds since the epoch.
    public var modifiedNs: Int64
    /// Status-change time, nanoseconds since the epoch (catches rewrites that restore mtime).
    public var changedNs: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = UInt64(max(0, st.st_size))
        modifiedNs = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
        changedNs = Int64(st.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_ctim.tv_nsec)
    }

    public var description: String { "dev \(device) inode \(inode) size \(size) mtime \(modifiedNs)" }
}

/// What is wrong with a name of the catalog.
public enum VectorCatalogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a valid vector name.
    case invalidName(String)
    /// No NAME.gguf or NAME.json in the directory.
    case notFound(name: String, directory: String)
    /// The loader rejected the file.
    case invalid(file: String, reason: String)
    /// The file is larger than the catalog's limit; it was not read.
    case tooLarge(file: String, size: UInt64, limit: UInt64)
    /// A symlink whose target lies outside the directory; it was not read.
    case outsideDirectory(file: String, target: String)
    /// The file could not be examined or opened.
    case unreadable(file: String, reason: String)
    /// The file kept changing while it was being read.
    case unstable(file: String)
    /// `install` was given a path that is not NAME.gguf / NAME.json in the catalog's directory.
    case notInDirectory(path: String, directory: String)

    public var description: String {
        switch self {
        case .invalidName(let n):
            return "'\(n)' is not a valid vector name (1-64 characters of A-Z a-z 0-9 _ . -, not starting with '.')"
        case let .notFound(n, d):
            return "no vector named '\(n)' in \(d) (expected \(n).gguf or \(n).json)"
        case let .invalid(f, r): return "\(f): invalid (\(r))"
        case let .tooLarge(f, s, l): return "\(f): \(s) bytes, more than the limit of \(l) bytes; not read"
        case let .outsideDirectory(f, t):
            return "\(f): symlink resolves to \(t), outside the vector directory; refused"
        case let .unreadable(f, r): return "\(f): cannot read (\(r))"
        case .unstable(let f): return "\(f): kept changing while being read; will retry on its next change"
        case let .notInDirectory(p, d): return "\(p) is not a NAME.gguf or NAME.json file in \(d)"
        }
    }
}

/// Vector names, file names and the files the catalog ignores.
private enum CatalogNames {
    /// The daemon's vector name rule (`VectorName`): `[A-Za-z0-9_.-]{1,64}`, not starting with `.`.
    static func isValid(_ name: String) -> Bool { VectorName.isValid(name) }

    static let extensions = ["gguf", "json"]

    /// The vector name of a directory entry, or nil when the entry is not a vector file.
    static func vectorName(ofFile file: String) -> String? {
        if isEditorOrTemp(file) { return nil }
        for ext in extensions where file.hasSuffix("." + ext) {
            let name = String(file.dropLast(ext.count + 1))
            return isValid(name) ? name : nil
        }
        return nil
    }

    /// Editor backups, swap and probe files, and temp files: never vectors, never a reason to rescan.
    static func isEditorOrTemp(_ file: String) -> Bool {
        file.hasPrefix(".repengd-tmp-") || file.hasSuffix("~") || file.hasSuffix(".swp") || file.hasSuffix(".swx")
            || file.hasSuffix(".swo") || file == "4913"
    }
}

/// A thread-safe catalog of the values loaded from the vector directory, kept current by a
/// `DirectoryWatcher`.
///
/// Per name it keeps the last good value (never replaced by an invalid, oversized, refused or
/// half-read file), its version (per name, bumped whenever a new good value is installed, never
/// reused even after the name is removed), the file it came from and that file's signature, and
/// the current error when the newest file is bad. NAME.gguf wins over NAME.json. Symlinks are
/// followed only when their target is inside the directory. Dotfiles, editor backups/swap files,
/// vim's `4913` probe, the daemon's temp files, non-regular files and anything not `.gguf` /
/// `.json` with a valid name are ignored. A change to a dot-entry or other entry that is (or was)
/// a directory or symlink, such as a Kubernetes ConfigMap's `..data` swap, triggers a rescan;
/// rescans compare signatures and load only what changed.
///
/// Loading happens on the watcher's thread (or the caller of `start`, `rescan`, `install`), one
/// file at a time; readers (`value`, `entries`) never wait for a load.
public final class VectorCatalog<Value: Sendable>: Sendable {
    /// One name as ListVectors / Status report it.
    public struct Entry: Sendable {
        /// The vector name.
        public let name: String
        /// The file now representing the name in the directory (NAME.gguf or NAME.json).
        public let file: String
        /// That file's size in bytes (0 when it could not be examined).
        public let size: UInt64
        /// Version of `value`; 0 when there is none.
        public let version: Int
        /// The last good value, if any.
        public let value: Value?
        /// The file `value` was loaded from (may differ from `file` only when `file` is bad).
        public let valueFile: String?
        /// Why the newest file is not in use; nil when `value` is current.
        public let error: VectorCatalogError?
    }

    /// The directory, absolute.
    public let directory: String
    /// Larger files are not read.
    public let maxFileBytes: UInt64
    /// The watcher behind the catalog (exposed for tests and status).
    let watcher: DirectoryWatcher

    private enum Loader: Sendable {
        case bytes(@Sendable (_ bytes: [UInt8], _ file: String) throws -> Value)
        case path(@Sendable (_ path: String) throws -> Value)
    }

    private let loader: Loader
    private let onChange: (@Sendable (String) -> Void)?
    private let state = Mutex(State())
    /// Serializes scans, loads and installs.
    private let work = Mutex(Work())
    /// Retries of a name whose file changed while it was read, before reporting it unstable.
    private static var maxRetries: Int { 20 }

    private struct Record: Sendable {
        var file: String
        var size: UInt64
        /// Signature of the newest content examined (good or bad); nil when not examinable.
        var signature: VectorFileSignature?
        var value: Value?
        var valueFile: String?
        var valueSignature: VectorFileSignature?
        var version: Int
        var error: VectorCatalogError?
    }

    private struct State: Sendable {
        var records: [String: Record] = [:]
        /// Highest version ever given to each name, kept after removal.
        var lastVersion: [String: Int] = [:]
        var generation = 0
        var loads = 0
    }

    private struct Work: Sendable {
        var retries: [String: Int] = [:]
        /// Names whose file is a symlink: refreshed on every change, since their target's
        /// events show up under another name (or not at all).
        var symlinked: Set<String> = []
    }

    /// A catalog whose loader gets the file's bytes, read by the catalog from one consistent
    /// snapshot of the file (preferred: the file is never mapped, so truncation by another
    /// process while loading cannot fault). `file` is the entry's file name, for messages.
    public init(directory: String, maxFileBytes: Int, options: DirectoryWatcher.Options = .init(periodicRescan: .seconds(60)),
                onChange: (@Sendable (String) -> Void)? = nil,
                load: @escaping @Sendable (_ bytes: [UInt8], _ file: String) throws -> Value) {
        self.watcher = DirectoryWatcher(directory: directory, options: options)
        self.directory = watcher.directory
        self.maxFileBytes = UInt64(max(0, maxFileBytes))
        self.loader = .bytes(load)
        self.onChange = onChange
    }

    /// A catalog whose loader reads the file itself from `path` (the symlink-resolved path of a
    /// regular file inside the directory). The catalog holds the file open and re-checks its
    /// signature after loading; the loader should not map the file (a concurrent truncation
    /// would fault).
    public init(directory: String, maxFileBytes: Int, options: DirectoryWatcher.Options = .init(periodicRescan: .seconds(60)),
                onChange: (@Sendable (String) -> Void)? = nil,
                loadPath: @escaping @Sendable (_ path: String) throws -> Value) {
        self.watcher = DirectoryWatcher(directory: directory, options: options)
        self.directory = watcher.directory
        self.maxFileBytes = UInt64(max(0, maxFileBytes))
        self.loader = .path(loadPath)
        self.onChange = onChange
    }

    deinit { watcher.stop() }

    // MARK: - Public API

    /// Starts watching, then scans the whole directory before returning. A missing directory is
    /// not an error: it is empty until it appears.
    public func start() throws(DirectoryWatcherError) {
        try work.withLock { (w: inout Work) throws(DirectoryWatcherError) in
            try watcher.start { [weak self] change in self?.apply(change) }
            scanAll(&w)
            state.withLock { $0.generation += 1 }
        }
    }

    /// Stops watching; the catalog keeps serving what it has.
    public func stop() { watcher.stop() }

    /// Compares the whole directory with the catalog now (synchronously).
    public func rescan() {
        work.withLock { w in
            scanAll(&w)
            state.withLock { $0.generation += 1 }
        }
    }

    /// The current good value of `name`, its version and the file it came from. Throws
    /// `.notFound` when the directory has no file for it, or the file's error when no good value
    /// exists (an older good value keeps being returned while a newer file is bad).
    public func value(named name: String) throws(VectorCatalogError) -> (value: Value, version: Int, file: String) {
        guard CatalogNames.isValid(name) else { throw .invalidName(name) }
        let r = state.withLock { $0.records[name] }
        guard let r else { throw .notFound(name: name, directory: directory) }
        guard let v = r.value, let f = r.valueFile else {
            throw r.error ?? .notFound(name: name, directory: directory)
        }
        return (v, r.version, f)
    }

    /// The entry of `name`, if the directory has a file for it.
    public func entry(named name: String) -> Entry? {
        state.withLock { s in s.records[name].map { Self.entry(name, $0) } }
    }

    /// Every name, sorted.
    public func entries() -> [Entry] {
        state.withLock { s in s.records.sorted { $0.key < $1.key }.map { Self.entry($0.key, $0.value) } }
    }

    /// Registers `value` as the content of the file at `path` (NAME.gguf or NAME.json in the
    /// directory), just written by this process, with the file's current signature, so the
    /// watcher's events for that write do not load it again. Returns the version now serving,
    /// or nil when `path` is not (or no longer) the file representing `name`; then the name is
    /// refreshed from the directory as usual.
    @discardableResult
    public func install(name: String, value: Value, path: String) throws(VectorCatalogError) -> Int? {
        guard CatalogNames.isValid(name) else { throw .invalidName(name) }
        let url = URL(fileURLWithPath: path)
        let file = url.lastPathComponent
        guard CatalogNames.vectorName(ofFile: file) == name,
              Self.realPath(url.deletingLastPathComponent().path) == Self.realPath(directory) else {
            throw .notInDirectory(path: path, directory: directory)
        }
        return work.withLock { w -> Int? in
            w.retries[name] = nil
            guard case let .file(current, resolved, sig) = resolve(name, realDirectory: Self.realPath(directory)),
                  current == file else {
                refresh(name, realDirectory: Self.realPath(directory), &w)
                return nil
            }
            if resolved == directory + "/" + file { w.symlinked.remove(name) } else { w.symlinked.insert(name) }
            let version = state.withLock { s -> Int? in
                if let r = s.records[name], r.valueFile == file, r.valueSignature == sig, r.error == nil {
                    return r.version
                }
                return nil
            }
            if let version { return version }
            let v = installValue(name, file: file, signature: sig, value: value)
            onChange?("installed \(name) (v\(v)) from \(file)")
            return v
        }
    }

    /// Waits until every change already made to the directory has been handled (see
    /// `DirectoryWatcher.waitForIdle`); false on timeout.
    public func waitForIdle(timeout: Duration) -> Bool { watcher.waitForIdle(timeout: timeout) }

    /// Bumped after every scan or batch of changes handled.
    public var generation: Int { state.withLock { $0.generation } }

    /// Files read so far (for tests).
    var loadCount: Int { state.withLock { $0.loads } }

    // MARK: - Applying changes

    private static func entry(_ name: String, _ r: Record) -> Entry {
        Entry(name: name, file: r.file, size: r.size, version: r.value == nil ? 0 : r.version, value: r.value,
              valueFile: r.valueFile, error: r.error)
    }

    private func apply(_ change: DirectoryWatcher.Change) {
        work.withLock { w in
            switch change {
            case .rescan(let reason):
                switch reason {
                case .periodic, .polling, .requested: break
                default: onChange?("rescanning \(directory): \(reason)")
                }
                scanAll(&w)
            case .entries(let changed):
                let realDir = Self.realPath(directory)
                var names = Set<String>()
                var needRescan = false
                for (file, events) in changed {
                    if let name = CatalogNames.vectorName(ofFile: file) {
                        names.insert(name)
                    } else if !CatalogNames.isEditorOrTemp(file), !needRescan {
                        needRescan = events.contains(.directory) || Self.isIndirection(directory + "/" + file)
                    }
                }
                if needRescan {
                    scanAll(&w)
                } else {
                    names.formUnion(w.symlinked)
                    for name in names.sorted() { refresh(name, realDirectory: realDir, &w) }
                }
            }
            state.withLock { $0.generation += 1 }
        }
    }

    /// Whether a non-vector entry may redirect vector files: a directory, a symlink, or gone
    /// (it may have been either).
    private static func isIndirection(_ path: String) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0 else { return true }
        let type = st.st_mode & S_IFMT
        return type == S_IFDIR || type == S_IFLNK
    }

    private func scanAll(_ w: inout Work) {
        let realDir = Self.realPath(directory)
        var names = Set(state.withLock { Array($0.records.keys) })
        for file in Self.listDirectory(directory) {
            if let name = CatalogNames.vectorName(ofFile: file) { names.insert(name) }
        }
        for name in names.sorted() { refresh(name, realDirectory: realDir, &w) }
    }

    /// Entry names of `dir` that are valid UTF-8; empty when it cannot be read.
    private static func listDirectory(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        // The name is read in place, within the record's length: a record is only as long as its
        // name needs (d_reclen), so copying the whole 256-byte d_name field can read past the end of
        // the directory buffer.
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name) ?? 19
        while let ent = readdir(d) {
            let available = Int(ent.pointee.d_reclen) - nameOffset
            guard available > 0 else { continue }
            let start = UnsafeRawPointer(ent) + nameOffset
            let length = strnlen(start.assumingMemoryBound(to: CChar.self), available)
            guard length < available else { continue }
            let name = String(validating: UnsafeRawBufferPointer(start: start, count: length), as: UTF8.self)
            if let name, name != ".", name != ".." { out.append(name) }
        }
        return out
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    private enum Resolution {
        case absent
        case problem(file: String, size: UInt64, signature: VectorFileSignature?, error: VectorCatalogError)
        case file(file: String, resolved: String, signature: VectorFileSignature)
    }

    /// The file representing `name` now: the first of NAME.gguf, NAME.json that is a regular
    /// file or a symlink to one (dangling symlinks, directories, fifos, sockets are skipped).
    private func resolve(_ name: String, realDirectory: String?) -> Resolution {
        for ext in CatalogNames.extensions {
            let file = name + "." + ext
            let path = directory + "/" + file
            var st = stat()
            if lstat(path, &st) != 0 {
                let e = errno
                if e == ENOENT || e == ENOTDIR { continue }
                return .problem(file: file, size: 0, signature: nil,
                                error: .unreadable(file: file, reason: String(cString: strerror(e))))
            }
            var resolved = path
            if st.st_mode & S_IFMT == S_IFLNK {
                guard let target = Self.realPath(path) else { continue }
                let root = realDirectory ?? directory
                let inside = root == "/" ? target.hasPrefix("/") : target.hasPrefix(root + "/")
                guard inside else {
                    return .problem(file: file, size: 0, signature: nil,
                                    error: .outsideDirectory(file: file, target: quoted(target)))
                }
                guard stat(target, &st) == 0 else { continue }
                resolved = target
            }
            guard st.st_mode & S_IFMT == S_IFREG else { continue }
            let sig = VectorFileSignature(st)
            if sig.size > maxFileBytes {
                return .problem(file: file, size: sig.size, signature: sig,
                                error: .tooLarge(file: file, size: sig.size, limit: maxFileBytes))
            }
            return .file(file: file, resolved: resolved, signature: sig)
        }
        return .absent
    }

    private enum LoadOutcome {
        case loaded(Value)
        case failed(VectorCatalogError)
        /// Out of descriptors or memory for now: reported, and tried again a second later.
        case transient(VectorCatalogError)
        /// The file changed or vanished while it was read: retry later.
        case moved
    }

    /// Brings `name` in line with the directory.
    private func refresh(_ name: String, realDirectory: String?, _ w: inout Work) {
        let current = state.withLock { $0.records[name] }
        let resolution = resolve(name, realDirectory: realDirectory)
        switch resolution {
        case let .file(file, resolved, _) where resolved != directory + "/" + file: w.symlinked.insert(name)
        case .problem(_, _, _, .outsideDirectory): w.symlinked.insert(name)
        default: w.symlinked.remove(name)
        }
        switch resolution {
        case .absent:
            w.retries[name] = nil
            if current != nil {
                state.withLock { _ = $0.records.removeValue(forKey: name) }
                onChange?("removed \(name)")
            }
        case let .problem(file, size, sig, error):
            w.retries[name] = nil
            setProblem(name, file: file, size: size, signature: sig, error: error)
        case let .file(file, resolved, sig):
            if let current, current.file == file, current.signature == sig { return }
            if let current, current.valueFile == file, current.valueSignature == sig {
                // Back to the file the serving value came from (a shadowing bad file went away).
                state.withLock { s in
                    s.records[name]?.file = file
                    s.records[name]?.size = sig.size
                    s.records[name]?.signature = sig
                    s.records[name]?.error = nil
                }
                onChange?("\(name): back to version \(current.version) from \(file)")
                return
            }
            state.withLock { $0.loads += 1 }
            var outcome = load(file: file, resolved: resolved, signature: sig)
            if case .loaded = outcome {
                // The name must still lead to the file that was read (a symlink may have been swapped).
                var same = false
                if case let .file(f2, _, sig2) = resolve(name, realDirectory: Self.realPath(directory)) {
                    same = f2 == file && sig2 == sig
                }
                if !same { outcome = .moved }
            }
            switch outcome {
            case .moved:
                break
            case .failed(let error):
                w.retries[name] = nil
                setProblem(name, file: file, size: sig.size, signature: sig, error: error)
                return
            case .transient(let error):
                w.retries[name] = nil
                // No signature: the recheck loads the file again even if it did not change.
                setProblem(name, file: file, size: sig.size, signature: nil, error: error)
                let watcher = self.watcher
                DispatchQueue.global().asyncAfter(deadline: .now() + 1) { watcher.recheck([file]) }
                return
            case .loaded(let value):
                w.retries[name] = nil
                let v = installValue(name, file: file, signature: sig, value: value)
                onChange?("loaded \(name) (v\(v)) from \(file)")
                return
            }
            // Changed while being read: look again after the next quiet period.
            let n = (w.retries[name] ?? 0) + 1
            if n > Self.maxRetries {
                w.retries[name] = nil
                setProblem(name, file: file, size: sig.size, signature: sig, error: .unstable(file: file))
            } else {
                w.retries[name] = n
                watcher.recheck([file])
            }
        }
    }

    private func installValue(_ name: String, file: String, signature: VectorFileSignature, value: Value) -> Int {
        state.withLock { s in
            let v = (s.lastVersion[name] ?? 0) + 1
            s.lastVersion[name] = v
            s.records[name] = Record(file: file, size: signature.size, signature: signature, value: value,
                                     valueFile: file, valueSignature: signature, version: v, error: nil)
            return v
        }
    }

    /// Records `error` for the newest file of `name`; the last good value of the name (if any)
    /// keeps serving.
    private func setProblem(_ name: String, file: String, size: UInt64, signature: VectorFileSignature?,
                            error: VectorCatalogError) {
        let (changed, kept) = state.withLock { s -> (Bool, (Int, String)?) in
            var r = s.records[name] ?? Record(file: file, size: size, signature: nil, value: nil, valueFile: nil,
                                              valueSignature: nil, version: 0, error: nil)
            let changed = r.error != error || r.file != file
            r.file = file
            r.size = size
            r.signature = signature
            r.error = error
            s.records[name] = r
            guard r.value != nil, let from = r.valueFile else { return (changed, nil) }
            return (changed, (r.version, from))
        }
        guard changed else { return }
        if let kept {
            onChange?("\(error); keeping version \(kept.0)" + (kept.1 == file ? "" : " from \(kept.1)"))
        } else {
            onChange?("\(error)")
        }
    }

    /// Reads or loads the file, making sure what was loaded is exactly the file with `signature`.
    private func load(file: String, resolved: String, signature: VectorFileSignature) -> LoadOutcome {
        // O_NONBLOCK: a fifo swapped in meanwhile must not block the open; O_NOFOLLOW: nor a symlink.
        let fd = open(resolved, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR || e == ELOOP { return .moved }
            let error = VectorCatalogError.unreadable(file: file, reason: String(cString: strerror(e)))
            if e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN || e == EINTR { return .transient(error) }
            return .failed(error)
        }
        defer { close(fd) }
        func same() -> Bool {
            var st = stat()
            return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && VectorFileSignature(st) == signature
        }
        guard same() else { return .moved }
        let value: Value
        do {
            switch loader {
            case .bytes(let load):
                guard let size = Int(exactly: signature.size) else { return .moved }
                var bytes = [UInt8](repeating: 0, count: size + 1)
                var total = 0
                while total < bytes.count {
                    let n = bytes.withUnsafeMutableBytes { buf in
                        read(fd, buf.baseAddress.map { $0 + total }, buf.count - total)
                    }
                    if n < 0 {
                        if errno == EINTR { continue }
                        return .failed(.unreadable(file: file, reason: String(cString: strerror(errno))))
                    }
                    if n == 0 { break }
                    total += n
                }
                guard total == size, same() else { return .moved }
                bytes.removeLast()
                value = try load(bytes, file)
            case .path(let load):
                value = try load(resolved)
            }
        } catch {
            guard same() else { return .moved }
            var reason = "\(error)"
            if reason.count > 500 { reason = String(reason.prefix(500)) + "…" }
            return .failed(.invalid(file: file, reason: reason))
        }
        guard same() else { return .moved }
        return .loaded(value)
    }
}
