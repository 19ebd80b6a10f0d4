// The two systemd protocols the daemon speaks, written from their documentation (sd_notify(3),
// sd_listen_fds(3)): service notifications over the datagram socket in $NOTIFY_SOCKET
// (READY=1, STATUS=, STOPPING=1, WATCHDOG=1) and listening sockets passed by socket activation
// ($LISTEN_PID, $LISTEN_FDS, starting at descriptor 3).
import Foundation

/// Sends service notifications to the service manager, when it asked for them.
public final class SystemdNotifier: Sendable {
    /// The notification socket's address (a path, or `@name` for the abstract namespace).
    public let socketPath: String?
    /// The watchdog interval the manager expects pings within, when the watchdog is on.
    public let watchdogInterval: Double?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment env: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        let path = env["NOTIFY_SOCKET"].flatMap { p -> String? in
            guard let first = p.first, first == "/" || first == "@", p.utf8.count < 108 else { return nil }
            return p
        }
        socketPath = path
        var interval: Double?
        if let usec = env["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 {
            // WATCHDOG_PID, when set, names the process the watchdog is meant for.
            if let p = env["WATCHDOG_PID"], !p.isEmpty {
                if Int32(p) == pid { interval = Double(usec) / 1e6 }
            } else {
                interval = Double(usec) / 1e6
            }
        }
        watchdogInterval = path == nil ? nil : interval
    }

    /// Whether a service manager listens.
    public var isEnabled: Bool { socketPath != nil }

    /// Sends `READY=1` (with a status line).
    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// Sends a `STATUS=` line.
    public func status(_ text: String) { send("STATUS=\(text)") }

    /// Sends `STOPPING=1` (with a status line).
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(status)") }

    /// Sends `WATCHDOG=1`.
    public func watchdog() { send("WATCHDOG=1") }

    /// Sends one datagram; returns whether it was sent. Failures are not fatal: the manager
    /// may be gone (e.g. during shutdown).
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let path = socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            buf.copyBytes(from: bytes)
            if bytes.first == UInt8(ascii: "@") { buf[0] = 0 }  // abstract namespace
        }
        // Abstract addresses have no terminating NUL: the length says where the name ends.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == UInt8(ascii: "@") ? 0 : 1))
        let payload = Array(message.utf8)
        let n = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return n == payload.count
    }
}

/// Why a socket passed by the service manager cannot be used.
public enum SocketActivationError: Error, CustomStringConvertible, Sendable, Equatable {
    case tooMany(Int)
    case notAUnixStreamListener(fd: Int32, reason: String)

    public var description: String {
        switch self {
        case .tooMany(let n):
            return "socket activation passed \(n) sockets; repengd serves exactly one (one ListenStream= in repengd.socket)"
        case let .notAUnixStreamListener(fd, r):
            return "descriptor \(fd) passed by socket activation is not a listening Unix stream socket: \(r)"
        }
    }
}

/// Socket activation (sd_listen_fds(3)): the listening socket passed by the service manager.
public enum SocketActivation {
    /// The first passed descriptor (SD_LISTEN_FDS_START).
    public static let firstDescriptor: Int32 = 3

    /// The passed listening socket and its path, or nil when none was passed to this process.
    /// Clears the `LISTEN_*` variables so child processes do not take them as theirs.
    public static func listeningSocket(environment env: [String: String] = ProcessInfo.processInfo.environment,
                                       pid: Int32 = getpid()) throws -> (fd: Int32, path: String)? {
        guard let p = env["LISTEN_PID"], Int32(p) == pid, let n = env["LISTEN_FDS"].flatMap(Int.init), n > 0 else {
            return nil
        }
        for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(k) }
        guard n == 1 else { throw SocketActivationError.tooMany(n) }
        let fd = firstDescriptor
        func option(_ name: Int32) -> Int32? {
            var v: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &v, &len) == 0 ? v : nil
        }
        guard let type = option(SO_TYPE) else {
            throw SocketActivationError.notAUnixStreamListener(fd: fd, reason: String(cString: strerror(errno)))
        }
        guard type == Int32(SOCK_STREAM.rawValue) else {
            throw SocketActivationError.notAUnixStreamListener(fd: fd, reason: "not a stream socket (use ListenStream=)")
        }
        guard option(SO_ACCEPTCONN) == 1 else {
            throw SocketActivationError.notAUnixStreamListener(fd: fd, reason: "not listening (use Accept=no)")
        }
        var addr = sockaddr_un()
        var len = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0, addr.sun_family == sa_family_t(AF_UNIX) else {
            throw SocketActivationError.notAUnixStreamListener(fd: fd, reason: "not a Unix domain socket")
        }
        let path = withUnsafeBytes(of: addr.sun_path) { buf -> String in
            let bytes = buf.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
        guard !path.isEmpty else {
            throw SocketActivationError.notAUnixStreamListener(fd: fd, reason: "an abstract or unnamed socket; use a path")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return (fd, path)
    }
}
