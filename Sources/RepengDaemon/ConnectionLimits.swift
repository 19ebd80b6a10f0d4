// Per-connection limits of the gRPC server: how many connections, idle connections closed,
// and each stream's HTTP/2 send window (RFC 9113 §5.2, §6.9) followed so that a client that
// does not read cannot make the daemon buffer its output.
import Foundation
import GRPCCore
import NIOCore
import NIOHTTP2
import Synchronization

/// The client's SETTINGS_INITIAL_WINDOW_SIZE on one connection and the flows of its open
/// streams (a change of the setting moves every open stream's window, RFC 9113 §6.9.2).
final class ConnectionWindows: Sendable {
    private let state = Mutex<(initial: Int, flows: [ObjectIdentifier: StreamFlow])>((65_535, [:]))

    var initial: Int { state.withLock { $0.initial } }

    func setInitial(_ value: Int) {
        let (delta, flows) = state.withLock { s -> (Int, [StreamFlow]) in
            let d = value - s.initial
            s.initial = value
            return (d, Array(s.flows.values))
        }
        if delta != 0 { for f in flows { f.granted(delta) } }
    }

    func add(_ flow: StreamFlow) { state.withLock { $0.flows[ObjectIdentifier(flow)] = flow } }
    func remove(_ flow: StreamFlow) { _ = state.withLock { $0.flows.removeValue(forKey: ObjectIdentifier(flow)) } }
}

/// Reads the client's SETTINGS frames on a connection (installed right after the HTTP/2
/// handler, which passes connection-level frames on).
final class WindowWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    let windows: ConnectionWindows

    init(windows: ConnectionWindows) {
        self.windows = windows
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .settings(.settings(let values)) = frame.payload {
            for v in values where v.parameter == .initialWindowSize { windows.setInitial(v.value) }
        }
        context.fireChannelRead(data)
    }
}

/// One HTTP/2 stream's send window as the client granted it: the client's initial window plus
/// its WINDOW_UPDATE increments, less the DATA the daemon wrote. Below zero, response data
/// waits in the daemon for a client that does not read; the response writer then waits
/// after each message, so such a client leaves at most a message or two in the transport,
/// and the daemon's own per-stream bound (`max_buffered_pieces`) is the whole of what it can
/// make the daemon hold.
final class StreamFlow: Sendable {
    /// Metadata key carrying the id of the stream's flow from the stream handler to the
    /// interceptor (set by the daemon, never taken from a client).
    static let metadataKey = "repeng-flow"

    private struct State {
        var window: Int
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>
    private let channel: any Channel

    init(channel: any Channel, window: Int) {
        self.channel = channel
        state = Mutex(State(window: window))
    }

    /// The daemon wrote `bytes` of DATA.
    func consumed(_ bytes: Int) { state.withLock { $0.window -= bytes } }

    /// The client granted `bytes` more (WINDOW_UPDATE, or a larger initial window).
    func granted(_ bytes: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.window += bytes
            guard s.window > 0 else { return [] }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in ready { w.resume() }
    }

    /// Stops waiting for this stream (it closed, or the call ended); wakes a waiting writer.
    func close() {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in ready { w.resume() }
    }

    var isDrained: Bool { state.withLock { $0.closed || $0.window > 0 } }

    /// Returns once the client has room for more data again, or the stream closed.
    func drained() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.closed || s.window > 0 { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Resets the stream (RST_STREAM): for a client that stopped reading, whose status could
    /// not reach it behind the unread data anyway.
    func reset() {
        close()
        channel.close(promise: nil)
    }

    private static let registry = Mutex<(next: UInt64, flows: [UInt64: StreamFlow])>((1, [:]))

    static func register(_ flow: StreamFlow) -> UInt64 {
        registry.withLock { r in
            let id = r.next
            r.next += 1
            r.flows[id] = flow
            return id
        }
    }

    static func unregister(_ id: UInt64) { _ = registry.withLock { $0.flows.removeValue(forKey: id) } }

    /// The flow named by a request's metadata.
    static func lookup(_ metadata: Metadata) -> StreamFlow? {
        guard let v = metadata[stringValues: metadataKey].first(where: { _ in true }), let id = UInt64(v) else { return nil }
        return registry.withLock { $0.flows[id] }
    }
}

/// A response writer that returns from `write` only once the client has room for more (its
/// HTTP/2 window for the stream is open again), and gives up, resetting the stream, when that
/// takes longer than `patience` seconds.
struct FlowControlledWriter<Element: Sendable>: RPCWriterProtocol {
    let base: RPCWriter<Element>
    let flow: StreamFlow
    let patience: Double

    func write(_ element: Element) async throws {
        try await base.write(element)
        try await waitForClient()
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        try await base.write(contentsOf: elements)
        try await waitForClient()
    }

    private func waitForClient() async throws {
        if flow.isDrained { return }
        let flow = self.flow, patience = self.patience
        let inTime = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withRPCCancellationHandler {
                    await flow.drained()
                } onCancelRPC: {
                    flow.close()
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(patience * 1000)))
                return false
            }
            let first = await group.next() ?? true
            if !first { flow.close() }
            group.cancelAll()
            return first
        }
        guard inTime else {
            flow.reset()
            throw RPCError(code: .resourceExhausted,
                           message: "the client did not read its stream for \(Int(patience)) s; the stream was reset")
        }
    }
}

/// Counts client connections. Past `limit`, a new connection's calls are refused with
/// RESOURCE_EXHAUSTED and the connection is closed shortly after, so descriptors stay bounded
/// however many connections a client opens. A connection with no call for `idleSeconds` is
/// closed, including one that never sent anything (gRPC's own idle timer starts only after a
/// call).
final class ConnectionLimiter: Sendable {
    let limit: Int
    let maxRequestBytes: Int
    let idleSeconds: Double
    private struct Connection {
        var streams = 0
        var idleSince = NIODeadline.now()
        let windows = ConnectionWindows()
    }
    private struct State {
        var open = 0
        var over: Set<ObjectIdentifier> = []
        var connections: [ObjectIdentifier: Connection] = [:]
    }
    private let state = Mutex(State())

    init(limit: Int, maxRequestBytes: Int, idleSeconds: Double) {
        self.limit = limit
        self.maxRequestBytes = maxRequestBytes
        self.idleSeconds = idleSeconds
    }

    /// Connections open now.
    var open: Int { state.withLock { $0.open } }

    /// The transport callback for each accepted connection.
    @Sendable func accepted(_ connection: any Channel) -> EventLoopFuture<Void> {
        let id = ObjectIdentifier(connection)
        let record = Connection()
        let over = state.withLock { s -> Bool in
            s.open += 1
            s.connections[id] = record
            guard s.open > limit else { return false }
            s.over.insert(id)
            return true
        }
        do {
            let ops = connection.pipeline.syncOperations
            let http2 = try ops.handler(type: NIOHTTP2Handler.self)
            try ops.addHandler(WindowWatcher(windows: record.windows), position: .after(http2))
        } catch {
            // Without the watcher the writer cannot tell a stalled stream (it then never waits).
        }
        connection.closeFuture.whenComplete { [self] _ in
            state.withLock { s in
                s.open -= 1
                s.over.remove(id)
                s.connections[id] = nil
            }
        }
        if over {
            // Long enough for the refusals to reach the client.
            connection.eventLoop.scheduleTask(in: .seconds(1)) { connection.close(promise: nil) }
        } else {
            watchIdle(connection)
        }
        return connection.eventLoop.makeSucceededVoidFuture()
    }

    private func watchIdle(_ connection: any Channel) {
        let id = ObjectIdentifier(connection)
        let idle = TimeAmount.milliseconds(Int64(idleSeconds * 1000))
        let every = TimeAmount.milliseconds(Int64(min(max(idleSeconds / 4, 0.05), 10) * 1000))
        connection.eventLoop.scheduleTask(in: every) { [self] in
            let expired = state.withLock { s -> Bool? in
                guard let c = s.connections[id] else { return nil }
                return c.streams == 0 && NIODeadline.now() - c.idleSince >= idle
            }
            switch expired {
            case nil: return
            case true?: connection.close(promise: nil)
            case false?: watchIdle(connection)
            }
        }
    }

    /// Counts a call on its connection (for the idle timer).
    private func streamOpened(_ stream: any Channel) {
        guard let parent = stream.parent else { return }
        let id = ObjectIdentifier(parent)
        state.withLock { $0.connections[id]?.streams += 1 }
        stream.closeFuture.whenComplete { [self] _ in
            state.withLock { s in
                guard var c = s.connections[id] else { return }
                c.streams -= 1
                if c.streams == 0 { c.idleSince = .now() }
                s.connections[id] = c
            }
        }
    }

    /// The refusal for calls on `connection`, if it is over the limit.
    func refusal(for connection: (any Channel)?) -> String? {
        guard let connection else { return nil }
        let id = ObjectIdentifier(connection)
        guard state.withLock({ $0.over.contains(id) }) else { return nil }
        return "repengd serves at most \(limit) connections at once; close idle connections and retry"
    }

    /// The transport callback that installs `PeerCredentialsHandler` on every HTTP/2 stream.
    @Sendable func installPeerCredentials(on stream: any Channel) -> EventLoopFuture<Void> {
        streamOpened(stream)
        let refusal = self.refusal(for: stream.parent)
        let windows = stream.parent.flatMap { p in state.withLock { $0.connections[ObjectIdentifier(p)]?.windows } }
        guard let parent = stream.parent else {
            return stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(PeerCredentialsHandler(value: "unknown", channel: stream, windows: windows,
                                                                                      maxRequestBytes: maxRequestBytes),
                                                               position: .first)
            }
        }
        return peerDescription(of: parent).hop(to: stream.eventLoop).flatMapThrowing { desc in
            try stream.pipeline.syncOperations.addHandler(PeerCredentialsHandler(value: desc, refusal: refusal, channel: stream, windows: windows,
                                                                                  maxRequestBytes: self.maxRequestBytes),
                                                           position: .first)
        }
    }
}

