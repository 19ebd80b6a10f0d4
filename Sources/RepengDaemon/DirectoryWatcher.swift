// Watches one directory with Linux inotify(7), following the directory itself through its parent,
// and reports debounced changes: which entries changed, or that everything needs a rescan.
import Foundation
import Glibc
import Synchronization

/// Why a `DirectoryWatcher` could not start.
public enum DirectoryWatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call the watcher needs failed (for instance no file descriptors left).
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case let .system(op, e):
            return "cannot watch directory: \(op) failed: \(String(cString: strerror(e)))"
        }
    }
}

/// Watches `directory` for changes to its entries and reports them, debounced, to a callback
/// on its own thread.
///
/// The directory is watched together with its parent, so that the directory being deleted and
/// re-created, renamed away and back, or (when the path is a symlink) the symlink being replaced,
/// is followed: the watch is re-established on the new directory and a full rescan is reported.
/// A directory that does not exist yet is waited for. The directory path is deliberately
/// followed when it is a symlink (no `IN_DONT_FOLLOW`); both watches use `IN_ONLYDIR`.
///
/// Events are coalesced until the directory has been quiet for `Options.debounce` (at most
/// `Options.maxDelay`). An entry that looks like it is still being written (created empty, or
/// modified, and not yet closed) is held back until its writer closes it, for at most
/// `Options.writeHold`. When inotify is unavailable the watcher falls back to periodic rescans.
public final class DirectoryWatcher: Sendable {
    /// What happened to one entry since the last report.
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// The entry was created.
        public static let created = Events(rawValue: 1 << 0)
        /// A writer closed the file.
        public static let written = Events(rawValue: 1 << 1)
        /// The file's contents were modified.
        public static let modified = Events(rawValue: 1 << 2)
        /// The entry was renamed into the directory (or over an existing entry).
        public static let movedIn = Events(rawValue: 1 << 3)
        /// The entry was renamed out of the directory.
        public static let movedOut = Events(rawValue: 1 << 4)
        /// The entry was deleted.
        public static let deleted = Events(rawValue: 1 << 5)
        /// Permissions, timestamps or link count changed.
        public static let attributes = Events(rawValue: 1 << 6)
        /// The entry is (or was) a directory.
        public static let directory = Events(rawValue: 1 << 7)
        /// Asked for with `recheck(_:)`.
        public static let requested = Events(rawValue: 1 << 8)
    }

    /// Why a full rescan is reported.
    public enum RescanReason: Sendable, Equatable, CustomStringConvertible {
        /// The kernel's event queue overflowed; events were lost.
        case overflow
        /// The directory (or its parent) was deleted, moved, re-created or replaced.
        case directoryReplaced
        /// The directory did not exist or could not be watched, and now can be.
        case directoryAppeared
        /// The directory's own attributes (such as permissions) changed.
        case directoryAttributes
        /// The periodic safety rescan (`Options.periodicRescan`).
        case periodic
        /// Events cannot be watched; the directory is polled instead.
        case polling(String)
        /// Asked for with `requestRescan()`.
        case requested

        public var description: String {
            switch self {
            case .overflow: return "the inotify event queue overflowed"
            case .directoryReplaced: return "the directory was deleted, moved or replaced"
            case .directoryAppeared: return "the directory appeared"
            case .directoryAttributes: return "the directory's attributes changed"
            case .periodic: return "periodic rescan"
            case .polling(let why): return "polling (\(why))"
            case .requested: return "rescan requested"
            }
        }
    }

    /// One debounced report.
    public enum Change: Sendable, Equatable {
        /// These entries of the directory (file names, not paths) changed.
        case entries([String: Events])
        /// Anything may have changed; compare the whole directory.
        case rescan(RescanReason)
    }

    /// Timing of the watcher.
    public struct Options: Sendable {
        /// Quiet period after the last event before changes are reported.
        public var debounce: Duration
        /// Longest a change waits while events keep arriving.
        public var maxDelay: Duration
        /// Longest an entry that is still being written is held back.
        public var writeHold: Duration
        /// How often a missing directory or parent watch is retried.
        public var retryInterval: Duration
        /// How often the directory is rescanned when inotify is unavailable.
        public var pollInterval: Duration
        /// A safety rescan this often even when nothing was reported; nil for none.
        public var periodicRescan: Duration?

        public init(debounce: Duration = .milliseconds(75), maxDelay: Duration = .seconds(1),
                    writeHold: Duration = .seconds(2), retryInterval: Duration = .milliseconds(500),
                    pollInterval: Duration = .seconds(2), periodicRescan: Duration? = nil) {
            self.debounce = debounce
            self.maxDelay = maxDelay
            self.writeHold = writeHold
            self.retryInterval = retryInterval
            self.pollInterval = pollInterval
            self.periodicRescan = periodicRescan
        }
    }

    /// The watched directory as an absolute path (`.` and `..` resolved lexically).
    public let directory: String
    /// Timing.
    public let options: Options
    private let parentPath: String
    private let baseName: String
    private let shared = Mutex(Shared())

    /// State shared between the watcher thread and callers.
    private struct Shared: Sendable {
        var running = false
        var stopping = false
        var paused = false
        var processing = false
        var pendingCount = 0
        var injected: [String: Events] = [:]
        var injectedRescan: RescanReason?
        var inotifyFD: Int32 = -1
        var wakeWrite: Int32 = -1
        var thread: pthread_t?
        var exited: DispatchSemaphore?
        var pollingReason: String?
    }

    /// Creates a watcher for `directory` (relative paths are taken from the current directory).
    /// Nothing is watched until `start(onChange:)`.
    public init(directory: String, options: Options = Options()) {
        let parts = Self.normalizedComponents(directory)
        self.directory = "/" + parts.joined(separator: "/")
        self.parentPath = "/" + parts.dropLast().joined(separator: "/")
        self.baseName = parts.last ?? ""
        self.options = options
    }

    /// Absolute, with `.`, `..`, empty components and trailing slashes removed.
    private static func normalizedComponents(_ path: String) -> [String] {
        var full = path
        if !full.hasPrefix("/") { full = FileManager.default.currentDirectoryPath + "/" + full }
        var out: [String] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { _ = out.popLast(); continue }
            out.append(String(part))
        }
        return out
    }

    deinit { stop() }

    /// Starts watching: the watches are in place when this returns, so any change made after it
    /// is reported. `onChange` runs on the watcher's thread, one report at a time. Starting a
    /// running watcher does nothing. Throws only when the wake-up pipe cannot be created; when
    /// inotify itself is unavailable the watcher polls (see `pollingReason`).
    public func start(onChange: @escaping @Sendable (Change) -> Void) throws(DirectoryWatcherError) {
        if shared.withLock({ $0.running }) { return }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw .system(operation: "pipe", errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        let now = ContinuousClock.now
        let ifd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        var loop = Loop(ifd: ifd, wakeRead: fds[0])
        var polling: String?
        if ifd < 0 {
            polling = "inotify unavailable: \(String(cString: strerror(errno)))"
            loop.nextPeriodic = now + options.pollInterval
        } else {
            _ = establish(&loop)
            if let every = options.periodicRescan { loop.nextPeriodic = now + every }
        }
        if loop.needsRetry { loop.nextRetry = now + options.retryInterval }
        let exited = DispatchSemaphore(value: 0)
        let started = shared.withLock { s -> Bool in
            guard !s.running else { return false }
            s = Shared()
            s.running = true
            s.inotifyFD = ifd
            s.wakeWrite = fds[1]
            s.exited = exited
            s.pollingReason = polling
            return true
        }
        guard started else {
            if ifd >= 0 { close(ifd) }
            close(fds[0])
            close(fds[1])
            return
        }
        let initial = loop
        let thread = Thread { [self] in self.run(initial, onChange, exited) }
        thread.name = "directory-watcher"
        thread.start()
    }

    /// Stops watching and waits for the thread to finish (unless called from `onChange` itself,
    /// in which case the thread finishes right after the callback returns). Idempotent.
    public func stop() {
        let wait: DispatchSemaphore? = shared.withLock { s in
            guard s.running else { return nil }
            s.stopping = true
            Self.wake(s.wakeWrite)
            if let t = s.thread, pthread_equal(t, pthread_self()) != 0 { return nil }
            return s.exited
        }
        if let wait {
            wait.wait()
            wait.signal()
        }
    }

    /// Reports `names` again (with `.requested`) after the usual quiet period, for instance to
    /// retry a file that changed while it was being read.
    public func recheck(_ names: some Sequence<String>) {
        shared.withLock { s in
            guard s.running else { return }
            for n in names { s.injected[n, default: []].insert(.requested) }
            Self.wake(s.wakeWrite)
        }
    }

    /// Reports a full rescan after the usual quiet period.
    public func requestRescan() {
        shared.withLock { s in
            guard s.running else { return }
            if s.injectedRescan == nil { s.injectedRescan = .requested }
            Self.wake(s.wakeWrite)
        }
    }

    /// Why the watcher polls instead of using inotify; nil when it uses inotify (or is stopped).
    public var pollingReason: String? { shared.withLock { $0.pollingReason } }

    /// Whether the watcher thread is running.
    public var isRunning: Bool { shared.withLock { $0.running } }

    /// Waits until every event already queued by the kernel has been read, debounced and
    /// delivered, and no callback is running. Returns false on timeout. Changes made by this
    /// process before the call are queued synchronously by the kernel, so after it returns true
    /// they have been handled. (A stopped watcher is idle.)
    public func waitForIdle(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let idle = shared.withLock { s -> Bool in
                guard s.running else { return true }
                if s.processing || s.pendingCount > 0 || !s.injected.isEmpty || s.injectedRescan != nil { return false }
                if s.inotifyFD >= 0 {
                    var p = pollfd(fd: s.inotifyFD, events: Int16(POLLIN), revents: 0)
                    if poll(&p, 1, 0) > 0, p.revents & Int16(POLLIN) != 0 { return false }
                }
                return true
            }
            if idle { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(2_000)
        }
    }

    /// Test hook: while paused the watcher does not read the inotify queue (so it can be made to
    /// overflow); pending reports are still delivered.
    func setReadingPaused(_ paused: Bool) {
        shared.withLock { s in
            s.paused = paused
            Self.wake(s.wakeWrite)
        }
    }

    private static func wake(_ fd: Int32) {
        guard fd >= 0 else { return }
        var b: UInt8 = 1
        _ = write(fd, &b, 1)
    }

    // MARK: - The watcher thread

    private static let dirMask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE
        | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD)
    private static let parentMask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD)
    private static let selfGone = UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)

    /// State owned by the watcher thread.
    private struct Loop: Sendable {
        let ifd: Int32
        let wakeRead: Int32
        var dirWd: Int32?
        var parentWd: Int32?
        var dirErrno: Int32 = 0
        var pending: [String: Events] = [:]
        /// Entries still being written, with when that was first seen.
        var held: [String: ContinuousClock.Instant] = [:]
        var rescan: RescanReason?
        var firstEvent: ContinuousClock.Instant?
        var lastEvent: ContinuousClock.Instant?
        var nextRetry: ContinuousClock.Instant?
        var nextPeriodic: ContinuousClock.Instant?

        init(ifd: Int32, wakeRead: Int32) {
            self.ifd = ifd
            self.wakeRead = wakeRead
        }

        var needsRetry: Bool { ifd >= 0 && (dirWd == nil || parentWd == nil) }

        mutating func note(_ name: String, _ events: Events, _ now: ContinuousClock.Instant) {
            pending[name, default: []].formUnion(events)
            touch(now)
        }

        mutating func requestRescan(_ reason: RescanReason, _ now: ContinuousClock.Instant) {
            if rescan == nil || rescan == .periodic { rescan = reason }
            touch(now)
        }

        mutating func touch(_ now: ContinuousClock.Instant) {
            lastEvent = now
            if firstEvent == nil { firstEvent = now }
        }
    }

    private func run(_ initial: Loop, _ handler: @Sendable (Change) -> Void, _ exited: DispatchSemaphore) {
        shared.withLock { $0.thread = pthread_self() }
        var l = initial
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var now = ContinuousClock.now
            let (stopping, paused) = shared.withLock { s -> (Bool, Bool) in
                if s.stopping { return (true, false) }
                for (n, e) in s.injected { l.note(n, e, now) }
                s.injected = [:]
                if let r = s.injectedRescan { l.requestRescan(r, now) }
                s.injectedRescan = nil
                s.pendingCount = l.pending.count + (l.rescan == nil ? 0 : 1)
                return (false, s.paused)
            }
            if stopping { break }

            var fds = [pollfd(fd: l.wakeRead, events: Int16(POLLIN), revents: 0)]
            if l.ifd >= 0, !paused { fds.append(pollfd(fd: l.ifd, events: Int16(POLLIN), revents: 0)) }
            let timeout = timeoutMs(l, now)
            let r = poll(&fds, nfds_t(fds.count), timeout)
            if r < 0, errno != EINTR { usleep(10_000) }
            if fds[0].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 64)
                while read(l.wakeRead, &sink, sink.count) > 0 {}
            }
            now = ContinuousClock.now
            if fds.count > 1, fds[1].revents != 0 {
                shared.withLock { $0.processing = true }
                readEvents(&l, &buffer, now)
            }
            if l.needsRetry, let at = l.nextRetry, now >= at { retryWatches(&l, now) }
            if l.needsRetry { if l.nextRetry == nil { l.nextRetry = now + options.retryInterval } } else { l.nextRetry = nil }
            if let at = l.nextPeriodic, now >= at {
                if l.ifd < 0 {
                    l.requestRescan(.polling(shared.withLock { $0.pollingReason } ?? "inotify unavailable"), now)
                    l.nextPeriodic = now + options.pollInterval
                } else {
                    // The directory path may lead elsewhere now without any event reaching us
                    // (an ancestor above the parent was renamed): re-check the watch too.
                    if l.dirWd != nil, establish(&l, parentToo: true) { l.requestRescan(.directoryReplaced, now) }
                    if l.rescan == nil { l.rescan = .periodic }
                    if l.firstEvent == nil { l.firstEvent = now }
                    l.nextPeriodic = options.periodicRescan.map { now + $0 }
                }
            }
            let due = takeDue(&l, now)
            if !due.isEmpty {
                shared.withLock { $0.processing = true }
                for change in due { handler(change) }
            }
            shared.withLock { s in
                s.processing = false
                s.pendingCount = l.pending.count + (l.rescan == nil ? 0 : 1)
            }
        }
        shared.withLock { s in
            s.running = false
            s.stopping = false
            s.thread = nil
            s.inotifyFD = -1
            if s.wakeWrite >= 0 { close(s.wakeWrite) }
            s.wakeWrite = -1
            s.exited = nil
            s.pollingReason = nil
            if l.ifd >= 0 { close(l.ifd) }
            close(l.wakeRead)
        }
        exited.signal()
    }

    /// Milliseconds until the next deadline; -1 for none.
    private func timeoutMs(_ l: Loop, _ now: ContinuousClock.Instant) -> Int32 {
        var deadline: ContinuousClock.Instant?
        func consider(_ t: ContinuousClock.Instant?) {
            guard let t else { return }
            if let d = deadline { deadline = min(d, t) } else { deadline = t }
        }
        if l.rescan != nil || l.pending.keys.contains(where: { l.held[$0] == nil }) {
            consider((l.lastEvent ?? now) + options.debounce)
            consider((l.firstEvent ?? now) + options.maxDelay)
        }
        for t in l.held.values { consider(t + options.writeHold) }
        if l.needsRetry { consider(l.nextRetry ?? now) }
        consider(l.nextPeriodic)
        guard let deadline else { return -1 }
        let wait = deadline - now
        if wait <= .zero { return 0 }
        let (s, atto) = wait.components
        let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }

    /// Adds the parent watch if missing (re-adds it by path with `parentToo`) and re-adds the
    /// directory watch by path; returns whether the directory watch changed.
    @discardableResult
    private func establish(_ l: inout Loop, parentToo: Bool = false) -> Bool {
        guard l.ifd >= 0 else { return false }
        if l.parentWd == nil || parentToo {
            let w = inotify_add_watch(l.ifd, parentPath, Self.parentMask)
            let new: Int32? = w >= 0 ? w : nil
            if let old = l.parentWd, old != new, old != l.dirWd { _ = inotify_rm_watch(l.ifd, old) }
            l.parentWd = new
        }
        let w = inotify_add_watch(l.ifd, directory, Self.dirMask)
        let err = errno
        let new: Int32? = w >= 0 ? w : nil
        if let old = l.dirWd, old != new, old != l.parentWd { _ = inotify_rm_watch(l.ifd, old) }
        let changed = new != l.dirWd
        l.dirWd = new
        l.dirErrno = new == nil ? err : 0
        return changed
    }

    private func retryWatches(_ l: inout Loop, _ now: ContinuousClock.Instant) {
        let had = l.dirWd != nil
        establish(&l)
        if !had, l.dirWd != nil {
            l.requestRescan(.directoryAppeared, now)
        } else if l.dirWd == nil, l.dirErrno == ENOSPC || l.dirErrno == ENOMEM {
            // The directory exists but the watch limit is reached: poll it.
            l.requestRescan(.polling("cannot add an inotify watch: \(String(cString: strerror(l.dirErrno)))"), now)
        }
        l.nextRetry = l.needsRetry ? now + options.retryInterval : nil
    }

    private func readEvents(_ l: inout Loop, _ buffer: inout [UInt8], _ now: ContinuousClock.Instant) {
        for _ in 0 ..< 64 {
            let n = buffer.withUnsafeMutableBytes { read(l.ifd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            var events: [(Int32, UInt32, String)] = []
            buffer.withUnsafeBytes { raw in
                var off = 0
                while off + 16 <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: off, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: off + 4, as: UInt32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: off + 12, as: UInt32.self))
                    let start = off + 16
                    guard len >= 0, start + len <= n else { break }
                    var end = start
                    while end < start + len, raw[end] != 0 { end += 1 }
                    let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[start ..< end]), as: UTF8.self)
                    events.append((wd, mask, name))
                    off = start + len
                }
            }
            for (wd, mask, name) in events { handle(wd: wd, mask: mask, name: name, &l, now) }
        }
    }

    private func handle(wd: Int32, mask: UInt32, name: String, _ l: inout Loop, _ now: ContinuousClock.Instant) {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 {
            // Events were lost; the directory may even have been replaced meanwhile.
            establish(&l)
            l.held.removeAll()
            l.requestRescan(.overflow, now)
            return
        }
        if let d = l.dirWd, wd == d {
            if name.isEmpty {
                if mask & UInt32(IN_IGNORED) != 0 {
                    // The kernel dropped the watch (directory deleted or unmounted).
                    l.dirWd = nil
                    establish(&l)
                    l.held.removeAll()
                    l.requestRescan(.directoryReplaced, now)
                } else if mask & Self.selfGone != 0 {
                    establish(&l)
                    l.held.removeAll()
                    l.requestRescan(.directoryReplaced, now)
                } else if mask & UInt32(IN_ATTRIB) != 0 {
                    l.requestRescan(.directoryAttributes, now)
                }
            } else {
                noteEntry(name, mask, &l, now)
            }
        }
        if let p = l.parentWd, wd == p {
            if name.isEmpty {
                if mask & UInt32(IN_IGNORED) != 0 || mask & Self.selfGone != 0 {
                    // The parent itself went away: our path no longer leads where it did.
                    if mask & UInt32(IN_IGNORED) == 0, p != l.dirWd { _ = inotify_rm_watch(l.ifd, p) }
                    l.parentWd = nil
                    if l.dirWd == p { l.dirWd = nil }
                    establish(&l)
                    l.held.removeAll()
                    l.requestRescan(.directoryReplaced, now)
                }
            } else if name == baseName {
                establish(&l)
                l.held.removeAll()
                l.requestRescan(.directoryReplaced, now)
            }
        }
    }

    private func noteEntry(_ name: String, _ mask: UInt32, _ l: inout Loop, _ now: ContinuousClock.Instant) {
        var e: Events = []
        if mask & UInt32(IN_ISDIR) != 0 { e.insert(.directory) }
        if mask & UInt32(IN_CREATE) != 0 {
            e.insert(.created)
            if mask & UInt32(IN_ISDIR) == 0 {
                // A file created empty is most likely being written by an open(O_CREAT) writer.
                var st = stat()
                if lstat(directory + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size == 0,
                   l.held[name] == nil {
                    l.held[name] = now
                }
            }
        }
        if mask & UInt32(IN_MODIFY) != 0 {
            e.insert(.modified)
            if l.held[name] == nil { l.held[name] = now }
        }
        if mask & UInt32(IN_ATTRIB) != 0 { e.insert(.attributes) }
        if mask & UInt32(IN_CLOSE_WRITE) != 0 { e.insert(.written); l.held[name] = nil }
        if mask & UInt32(IN_MOVED_TO) != 0 { e.insert(.movedIn); l.held[name] = nil }
        if mask & UInt32(IN_MOVED_FROM) != 0 { e.insert(.movedOut); l.held[name] = nil }
        if mask & UInt32(IN_DELETE) != 0 { e.insert(.deleted); l.held[name] = nil }
        l.note(name, e, now)
    }

    /// The reports that are due now.
    private func takeDue(_ l: inout Loop, _ now: ContinuousClock.Instant) -> [Change] {
        let quiet: Bool
        if let last = l.lastEvent, let first = l.firstEvent {
            quiet = now >= last + options.debounce || now >= first + options.maxDelay
        } else {
            quiet = true
        }
        if let reason = l.rescan {
            guard quiet else { return [] }
            l.rescan = nil
            l.pending.removeAll()
            l.held.removeAll()
            l.firstEvent = nil
            return [.rescan(reason)]
        }
        guard !l.pending.isEmpty else { return [] }
        var holdExpired = false
        for (name, since) in l.held where now >= since + options.writeHold {
            l.held[name] = nil
            holdExpired = true
        }
        guard quiet || holdExpired else { return [] }
        var ready: [String: Events] = [:]
        for (name, e) in l.pending where l.held[name] == nil { ready[name] = e }
        guard !ready.isEmpty else { return [] }
        for name in ready.keys { l.pending[name] = nil }
        l.firstEvent = nil
        return [.entries(ready)]
    }
}
