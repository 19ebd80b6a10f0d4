// Builds and runs the daemon: loads the models and control state, binds the Unix socket and
// serves gRPC until a graceful shutdown. `Daemon.start` is what repengd's main and the tests use.
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RepengEngine
import RepengProtocol
import RepengSteering
import Synchronization

/// Why the daemon could not start.
public enum StartupError: Error, CustomStringConvertible, Sendable {
    case socketPathTooLong(String)
    case socketInUse(String)
    case notASocket(String)
    case socket(path: String, operation: String, errno: Int32)
    case model(name: String, path: String, reason: String)
    case directory(path: String, reason: String)
    case activation(reason: String)

    public var description: String {
        switch self {
        case .socketPathTooLong(let p): return "socket path \(p) is longer than 107 bytes; choose a shorter one"
        case .socketInUse(let p): return "another daemon is already listening on \(p); stop it or use another --socket"
        case .notASocket(let p): return "\(p) exists and is not a socket; remove it or use another --socket"
        case let .socket(p, op, e): return "\(op) \(p) failed: \(String(cString: strerror(e)))"
        case let .model(n, p, r): return "cannot load model '\(n)' from \(p): \(r)"
        case let .directory(p, r): return "cannot use directory \(p): \(r)"
        case .activation(let r): return r
        }
    }
}

/// A running daemon.
public final class Daemon: Sendable {
    /// The daemon's version, reported by Status.
    public static let version = "0.1.0"

    public let config: DaemonConfig
    public let registry: ModelRegistry
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let health: HealthState
    let logger: Logger
    let serveTask: Task<Void, any Error>
    let socketInode: UInt
    let counters: DaemonCounters
    /// The watched vector directory.
    public let store: VectorStore
    let notifier: SystemdNotifier
    /// The HTTP API's listeners.
    let http: HTTPFrontEnd
    /// The socket served (the passed one under socket activation).
    public let socketPath: String
    /// The HTTP API's Unix socket.
    public var httpSocketPath: String { http.socketPath }
    /// The playground's URL with its token, when the HTTP API also listens on TCP.
    public var httpURL: String? { http.playgroundURL }
    /// Whether the daemon bound the socket itself (and so removes it at exit).
    let ownsSocket: Bool
    private let serviceLoop = Mutex<Task<Void, Never>?>(nil)

    private init(config: DaemonConfig, registry: ModelRegistry, server: GRPCServer<HTTP2ServerTransport.Posix>,
                 health: HealthState, logger: Logger, socketInode: UInt, counters: DaemonCounters, store: VectorStore,
                 notifier: SystemdNotifier, socketPath: String, ownsSocket: Bool, http: HTTPFrontEnd) {
        self.http = http
        self.counters = counters
        self.store = store
        self.notifier = notifier
        self.socketPath = socketPath
        self.ownsSocket = ownsSocket
        self.config = config
        self.registry = registry
        self.server = server
        self.health = health
        self.logger = logger
        self.socketInode = socketInode
        serveTask = Task { try await server.serve() }
    }

    /// Loads everything `config` names, binds the socket and starts serving. Returns once
    /// the socket accepts connections.
    public static func start(config: DaemonConfig, logger: Logger,
                             notifier: SystemdNotifier = SystemdNotifier(),
                             environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> Daemon {
        if let t = config.threads { BLAS.setThreads(t) }
        raiseDescriptorLimit(logger: logger)
        notifier.status("starting")
        // A listening socket passed by the service manager (socket activation) is used as is.
        let activated: (fd: Int32, path: String)?
        do { activated = try SocketActivation.listeningSocket(environment: environment) } catch {
            throw StartupError.activation(reason: "\(error)")
        }
        for dir in [config.vectorsDir, config.stateDir] {
            do { try DurableFile.makeDirectory(dir, mode: 0o750) } catch {
                throw StartupError.directory(path: dir, reason: "\(error)")
            }
        }
        for swept in DurableFile.sweepTemporaries(in: config.vectorsDir) + DurableFile.sweepTemporaries(in: config.stateDir) {
            logger.notice("removed leftover temp file \(swept)")
        }

        // Refuse early when another daemon serves this socket (before the slow model load).
        if activated == nil, isLive(config.socketPath) { throw StartupError.socketInUse(config.socketPath) }
        let socketGid: gid_t?
        do { socketGid = try config.socketGroup.map(groupID) } catch {
            throw StartupError.directory(path: config.socketPath, reason: "\(error)")
        }

        // Models.
        var hosts: [ModelHost] = []
        for (i, spec) in config.models.enumerated() {
            notifier.status("loading model \(spec.name) (\(i + 1) of \(config.models.count))")
            let t0 = monotonicSeconds()
            let model: any LanguageModel
            // A Hugging Face folder's weights are f32 in memory whatever was asked.
            var isFolder: ObjCBool = false
            let folder = FileManager.default.fileExists(atPath: spec.path, isDirectory: &isFolder) && isFolder.boolValue
            let precision = folder ? .exact : spec.precision ?? config.precision
            do { model = try loadModel(path: spec.path, precision: precision) } catch {
                for h in hosts { h.scheduler.stop(cancelRunning: true) }
                throw StartupError.model(name: spec.name, path: spec.path, reason: "\(error)")
            }
            var resolved = spec
            resolved.precision = precision
            hosts.append(ModelHost(spec: resolved, model: model, limits: config.limits, isDefault: i == 0))
            let mib = Double(model.residentBytes) / 1048576
            logger.info("loaded model \(spec.name) (\(model.config.architecture), \(model.config.blockCount) blocks, hidden \(model.config.hiddenSize), \(precision.rawValue) weights, \(String(format: "%.0f", mib)) MiB resident) from \(spec.path) in \(String(format: "%.2f", monotonicSeconds() - t0)) s")
        }
        let registry = ModelRegistry(hosts: hosts)
        let vectorLogger = logger
        let store = VectorStore(directory: config.vectorsDir) { vectorLogger.info("vectors: \(quoted($0, limit: 600))") }
        do { try store.start() } catch {
            for h in hosts { h.scheduler.stop(cancelRunning: true) }
            throw StartupError.directory(path: config.vectorsDir, reason: "\(error)")
        }

        // Control state from the last run.
        let controlStore = ControlStateStore(stateDir: config.stateDir)
        let resolver = ControlResolver(store: store, limits: config.limits)
        do {
            for (name, spec) in try controlStore.load() {
                guard let host = try? registry.host(name) else {
                    logger.warning("control state names model '\(name)', which is not configured; ignored")
                    continue
                }
                do {
                    let r = try resolver.resolve(spec, model: host.model)
                    try host.setControl(r.prepared == nil ? nil : r) {}
                    logger.info("restored control of \(name): \(spec.terms.map { "\($0.vector)×\($0.coefficient)" }.joined(separator: " + "))")
                } catch {
                    logger.error("cannot restore control of \(name): \(rpcError(error).message); the model starts without control")
                }
            }
        } catch {
            logger.error("\(error); all models start without control")
        }

        // Socket and server.
        let (fd, inode): (Int32, UInt)
        let socketPath = activated?.path ?? config.socketPath
        if let activated {
            (fd, inode) = (activated.fd, 0)
            logger.info("using the listening socket \(activated.path) passed by the service manager")
        } else {
            do { (fd, inode) = try bindSocket(config.socketPath, group: socketGid, logger: logger) } catch {
                for h in hosts { h.scheduler.stop(cancelRunning: true) }
                store.stop()
                throw error
            }
        }
        let health = HealthState()
        let counters = DaemonCounters()
        var served = config
        served.socketPath = socketPath
        let httpInfo = HTTPInfo()
        let service = RepengService(registry: registry, store: store, controlStore: controlStore, config: served,
                                    counters: counters, started: monotonicSeconds(), version: version, http: httpInfo)
        // The HTTP API, over the same service and schedulers.
        let http: HTTPFrontEnd
        do {
            http = try await HTTPFrontEnd.start(api: HTTPAPI(service: service, health: health, logger: logger), config: served,
                                                socketGroup: socketGid, logger: logger)
        } catch {
            for h in hosts { h.scheduler.stop(cancelRunning: true) }
            store.stop()
            close(fd)
            if activated == nil { unlink(socketPath) }
            throw error
        }
        httpInfo.set(socket: http.socketPath, url: http.playgroundURL)
        if let url = http.playgroundURL {
            logger.notice("HTTP API on \(http.socketPath) and \(http.tcpAddress.map { "\($0)" } ?? ""); playground: \(url)")
        } else {
            logger.info("HTTP API on \(http.socketPath) (curl --unix-socket \(http.socketPath) http://localhost/v1/models)")
        }
        let limits = config.limits
        let connections = ConnectionLimiter(limit: limits.maxConnections, maxRequestBytes: limits.maxRequestBytes,
                                            idleSeconds: limits.connectionIdleSeconds)
        let transportConfig = HTTP2ServerTransport.Posix.Config.defaults { c in
            // The stream handler refuses larger messages first, with a status (see ConnectionLimiter).
            c.rpc.maxRequestPayloadSize = limits.maxRequestBytes + 1
            // Advertised, so that clients queue calls past it instead of having the connection
            // closed (HTTP/2 treats exceeding an unadvertised limit as a protocol error).
            c.http2.maxConcurrentStreams = limits.maxConcurrentStreams
            c.connection.maxIdleTime = .milliseconds(Int64(limits.connectionIdleSeconds * 1000))
            c.connection.keepalive.time = .milliseconds(Int64(limits.keepaliveSeconds * 1000))
            c.connection.keepalive.timeout = .seconds(20)
            c.channelDebuggingCallbacks.onAcceptTCPConnection = connections.accepted
            c.channelDebuggingCallbacks.onAcceptHTTP2Stream = connections.installPeerCredentials
        }
        let transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(fd), transportSecurity: .plaintext,
                                                   config: transportConfig)
        let requestLogger = logger
        let interceptor = RequestLogInterceptor(log: { line, ok in
            if ok { requestLogger.info("\(line)") } else { requestLogger.notice("\(line)") }
        }, slowReaderSeconds: limits.slowReaderSeconds)
        var interceptors: [any ServerInterceptor] = [interceptor]
        if let allowed = config.allowedUids {
            interceptors.append(AccessInterceptor(allowed: Set(allowed).union([getuid()])))
        }
        let server = GRPCServer(transport: transport, services: [service, HealthService(state: health)],
                                interceptors: interceptors)
        let daemon = Daemon(config: config, registry: registry, server: server, health: health, logger: logger,
                            socketInode: inode, counters: counters, store: store, notifier: notifier,
                            socketPath: socketPath, ownsSocket: activated == nil, http: http)
        _ = try await transport.listeningAddress
        logger.info("serving \(hosts.map(\.name).joined(separator: ", ")) on \(socketPath) (vectors in \(config.vectorsDir))")
        // Models are resident and the socket accepts calls: tell the service manager.
        notifier.ready(status: daemon.statusLine())
        daemon.startServiceLoop()
        return daemon
    }

    /// Begins a graceful shutdown: no new requests; running ones finish, and are cancelled
    /// once `limits.drainSeconds` have passed.
    public func shutdown() {
        logger.info("shutting down")
        notifier.stopping(status: "draining: no new calls; running ones get \(Int(config.limits.drainSeconds)) s")
        serviceLoop.withLock { $0?.cancel() }
        health.markNotServing()
        server.beginGracefulShutdown()
        let http = self.http
        Task { await http.shutdown() }
        let hosts = registry.hosts
        let drain = config.limits.drainSeconds
        let counters = self.counters
        let t = Thread {
            Thread.sleep(forTimeInterval: drain)
            counters.cancelTrainings.set()
            for h in hosts { h.scheduler.cancelRunning() }
        }
        t.name = "repengd-drain"
        t.start()
    }

    /// Waits until the server has stopped (after `shutdown`), then stops the schedulers and
    /// removes the socket file.
    public func wait() async throws {
        defer {
            for h in registry.hosts { h.scheduler.stop(cancelRunning: true) }
            store.stop()
            var st = stat()
            // Only a socket this daemon bound is removed; a passed one belongs to the manager.
            if ownsSocket, lstat(socketPath, &st) == 0, UInt(st.st_ino) == socketInode { unlink(socketPath) }
            logger.info("stopped")
        }
        try await serveTask.value
        await http.wait()
    }

    /// One line for the service manager's STATUS=.
    func statusLine() -> String {
        var active = 0, queued = 0
        for h in registry.hosts {
            let l = h.scheduler.load
            active += l.active
            queued += l.queued
        }
        return "serving \(registry.hosts.map(\.name).joined(separator: ", ")) on \(socketPath): \(active) generating, \(queued) queued, \(counters.activeTrainings.load(ordering: .relaxed)) training"
    }

    /// Whether the decode threads make progress (the watchdog pings only then).
    func isHealthy(within seconds: Double) -> Bool {
        registry.hosts.allSatisfy { $0.scheduler.isResponsive(within: seconds) }
    }

    /// Under a service manager: STATUS= every few seconds and, when the watchdog is on,
    /// WATCHDOG=1 at half its interval while the decode threads make progress.
    func startServiceLoop() {
        guard notifier.isEnabled else { return }
        let interval = notifier.watchdogInterval
        let period = min(5, (interval ?? 10) / 2)
        let task = Task { [self] in
            var lastStatus = ""
            var sinceStatus = 0.0
            while !Task.isCancelled {
                if let interval, isHealthy(within: interval) { notifier.watchdog() }
                sinceStatus += period
                if sinceStatus >= 5 {
                    sinceStatus = 0
                    let line = statusLine()
                    if line != lastStatus { notifier.status(line); lastStatus = line }
                }
                try? await Task.sleep(for: .milliseconds(Int(period * 1000)))
            }
        }
        serviceLoop.withLock { $0 = task }
    }

    /// Creates the socket's directory (0750 when new, owned by `group` if given), clears a
    /// stale socket (refusing to touch a live one), binds, sets mode 0660 (and `group`) and
    /// listens. Returns the descriptor and the inode.
    static func bindSocket(_ path: String, group: gid_t? = nil, logger: Logger? = nil) throws -> (Int32, UInt) {
        guard path.utf8.count < 108 else { throw StartupError.socketPathTooLong(path) }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: dir) {
            do { try DurableFile.makeDirectory(dir, mode: 0o750) } catch {
                throw StartupError.directory(path: dir, reason: "\(error)")
            }
            if let group, chown(dir, uid_t.max, group) != 0 {
                logger?.warning("cannot give \(dir) to group \(group): \(String(cString: strerror(errno)))")
            }
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw StartupError.notASocket(path) }
            if isLive(path) { throw StartupError.socketInUse(path) }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartupError.socket(path: path, operation: "socket for", errno: errno) }
        var addr = unixAddress(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw StartupError.socket(path: path, operation: "bind", errno: e)
        }
        chmod(path, 0o660)
        if let group, chown(path, uid_t.max, group) != 0 {
            logger?.warning("cannot give the socket to group \(group): \(String(cString: strerror(errno))); it keeps the daemon's group")
        }
        guard listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            throw StartupError.socket(path: path, operation: "listen on", errno: e)
        }
        guard lstat(path, &st) == 0 else { throw StartupError.socket(path: path, operation: "stat", errno: errno) }
        return (fd, UInt(st.st_ino))
    }

    private static func unixAddress(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            let bytes = Array(path.utf8.prefix(buf.count - 1))
            buf.copyBytes(from: bytes)
            buf[bytes.count] = 0
        }
        return addr
    }

    /// Whether something accepts connections on the socket at `path`.
    static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = unixAddress(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }
}

/// Raises the soft limit on open descriptors to the hard limit (systemd leaves the soft limit
/// at 1024), so that `max_connections` and not the descriptor limit bounds clients.
func raiseDescriptorLimit(logger: Logger) {
    var rl = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_cur < rl.rlim_max else { return }
    let old = rl.rlim_cur
    rl.rlim_cur = min(rl.rlim_max, 1 << 20)
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 {
        logger.debug("descriptor limit raised from \(old) to \(rl.rlim_cur)")
    }
}

/// The group id of `group` (a name or a number).
func groupID(_ group: String) throws -> gid_t {
    if let n = UInt32(group) { return n }
    guard let g = getgrnam(group) else {
        throw DaemonError.invalidArgument("socket_group '\(group)' is not a known group (see getent group)")
    }
    return g.pointee.gr_gid
}
