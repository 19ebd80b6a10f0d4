// The HTTP API's listeners: always a Unix socket beside the gRPC one (same group and mode,
// peer credentials checked like gRPC's), optionally loopback TCP behind a bearer token.
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import RepengEngine
import ServiceLifecycle

/// What every HTTP handler sees: the connection it came on.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The running HTTP listeners.
final class HTTPFrontEnd: Sendable {
    let socketPath: String
    /// The TCP address actually bound (the port filled in when 0 was asked), if any.
    let tcpAddress: HTTPAddress?
    /// The token TCP clients must send, if TCP is on.
    let token: String?
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(socketPath: String, tcpAddress: HTTPAddress?, token: String?, group: ServiceGroup, task: Task<Void, any Error>) {
        self.socketPath = socketPath
        self.tcpAddress = tcpAddress
        self.token = token
        self.group = group
        self.task = task
    }

    /// The playground's URL with its token (TCP only), e.g. `http://127.0.0.1:8080/?token=…`.
    var playgroundURL: String? {
        guard let tcpAddress, let token else { return nil }
        return "http://\(tcpAddress)/?token=\(token)"
    }

    /// Binds the Unix socket (and TCP when configured) and serves `api` until `shutdown`.
    /// Returns once every listener accepts connections.
    static func start(api: HTTPAPI, config: DaemonConfig, socketGroup: gid_t?, logger: Logger) async throws -> HTTPFrontEnd {
        let path = config.httpSocket
        guard path.utf8.count < 108 else { throw StartupError.socketPathTooLong(path) }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw StartupError.notASocket(path) }
            if Daemon.isLive(path) { throw StartupError.socketInUse(path) }
        }
        let token: String?
        if config.httpListen != nil {
            do { token = try HTTPToken.load(config.httpTokenPath) } catch {
                throw StartupError.directory(path: config.httpTokenPath, reason: "\(error)")
            }
        } else {
            token = nil
        }

        // Hummingbird's own logger only reports at warning and above; requests are logged by
        // the responder, like gRPC calls.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        let ready = ReadySignal()
        // At most max_connections open at once per listener; further ones wait to be accepted.
        let connections = MaximumAvailableConnections(config.limits.maxConnections)
        // Connections with no request for this long are closed (as gRPC's idle connections).
        let server = HTTPServerBuilder.http1(configuration: .init(idleTimeout: .milliseconds(Int64(config.limits.connectionIdleSeconds * 1000))))
        let unixApp = Application(
            responder: APIResponder(api: api, transport: .unix(allowed: config.allowedUids.map { Set($0).union([getuid()]) })),
            server: server,
            configuration: .init(address: .unixDomainSocket(path: path), serverName: "repengd", availableConnectionsDelegate: connections),
            onServerRunning: { _ in
                chmod(path, 0o660)
                if let socketGroup, chown(path, uid_t.max, socketGroup) != 0 {
                    logger.warning("cannot give the HTTP socket to group \(socketGroup): \(String(cString: strerror(errno)))")
                }
                ready.signal(.unix)
            },
            logger: quiet)
        var services: [any Service] = [unixApp]
        if let listen = config.httpListen, let token {
            let tcpApp = Application(
                responder: APIResponder(api: api, transport: .tcp(token: token)),
                server: server,
                configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "repengd",
                                     availableConnectionsDelegate: connections),
                onServerRunning: { channel in ready.signal(.tcp(port: channel.localAddress?.port ?? listen.port)) },
                logger: quiet)
            services.append(tcpApp)
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: quiet))
        let task = Task { try await group.run() }
        let expected = services.count
        var port: Int?
        do {
            for try await event in ready.events(until: task, count: expected) {
                if case .tcp(let p) = event { port = p }
            }
        } catch {
            await group.triggerGracefulShutdown()
            throw StartupError.socket(path: config.httpListen.map { "\($0)" } ?? path, operation: "serving HTTP on", errno: errorNumber(error))
        }
        let bound = config.httpListen.map { HTTPAddress(host: $0.host, port: port ?? $0.port) }
        return HTTPFrontEnd(socketPath: path, tcpAddress: bound, token: token, group: group, task: task)
    }

    /// Stops accepting connections; open requests finish (the schedulers' drain ends them).
    func shutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Waits for the listeners to close, then removes the Unix socket.
    func wait() async {
        _ = try? await task.value
        unlink(socketPath)
    }
}

/// The errno inside a bind failure, or EADDRINUSE when the error carries none.
private func errorNumber(_ error: any Error) -> Int32 {
    if let e = error as? IOError { return e.errnoCode }
    return EADDRINUSE
}

/// Listeners reporting that they accept connections.
private final class ReadySignal: Sendable {
    enum Event: Sendable { case unix, tcp(port: Int) }
    private let stream: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation

    init() { (stream, continuation) = AsyncStream.makeStream(of: Event.self) }

    func signal(_ e: Event) { continuation.yield(e) }

    /// The first `count` events, or the error the server task ended with before them.
    func events(until task: Task<Void, any Error>, count: Int) -> AsyncThrowingStream<Event, any Error> {
        let stream = self.stream, continuation = self.continuation
        return AsyncThrowingStream { out in
            let watcher = Task {
                do {
                    try await task.value
                    out.finish(throwing: StartupError.activation(reason: "the HTTP server stopped while starting"))
                } catch {
                    out.finish(throwing: error)
                }
                continuation.finish()
            }
            Task {
                var seen = 0
                for await e in stream {
                    out.yield(e)
                    seen += 1
                    if seen == count { break }
                }
                watcher.cancel()
                out.finish()
            }
        }
    }
}

/// The bearer token of the TCP listener, kept in a file of mode 0600.
enum HTTPToken {
    /// Reads the token at `path`, or creates the file with a new random token (32 bytes, hex).
    static func load(_ path: String) throws -> String {
        if FileManager.default.fileExists(atPath: path) {
            let bytes = try readSmallFile(path, limit: 4096)
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.utf8.count >= 16, token.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                throw DaemonError.invalidArgument("the token file \(path) must hold one token of at least 16 printable characters")
            }
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
                throw DaemonError.invalidArgument("the token file \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
            }
            return token
        }
        // The system generator reads the kernel's CSPRNG (getrandom).
        var generator = SystemRandomNumberGenerator()
        let raw = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = raw.map { String(format: "%02x", $0) }.joined()
        try DurableFile.write(Array((token + "\n").utf8), to: path, mode: 0o600)
        return token
    }

    /// Compares in time independent of where the strings differ.
    static func matches(_ given: Substring, _ token: String) -> Bool {
        let a = Array(given.utf8), b = Array(token.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
