// Kernel credentials of the process at the other end of the Unix socket (SO_PEERCRED, see
// unix(7)), read on the accepted connection and handed to request handlers as metadata; the
// per-stream handler that also enforces the request size and feeds `StreamFlow`; the request
// log and access interceptors.
import Foundation
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import RepengEngine
import RepengProtocol
import Synchronization

/// `struct ucred` from <sys/socket.h> (Linux): pid, uid, gid.
struct PeerCred {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// The peer's credentials as "uid=U gid=G pid=P", or "unknown" when the kernel gives none.
func peerDescription(of connection: any Channel) -> EventLoopFuture<String> {
    guard let provider = connection as? any SocketOptionProvider else {
        return connection.eventLoop.makeSucceededFuture("unknown")
    }
    let future: EventLoopFuture<PeerCred> = provider.unsafeGetSocketOption(
        level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
    return future.map { "uid=\($0.uid) gid=\($0.gid) pid=\($0.pid)" }.recover { _ in "unknown" }
}

/// Metadata key set by the daemon itself (never by a client) on the calls of a connection
/// that is over `max_connections`: such calls are refused with RESOURCE_EXHAUSTED.
let refusalMetadataKey = "repeng-refused"

/// Replaces the `repeng-peer` header of incoming requests with the credentials the kernel
/// reported for the connection (a client cannot forge it), marks the calls of a connection
/// that is over the connection limit, and tracks which response DATA frames have reached the
/// socket (see `StreamFlow`).
final class PeerCredentialsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload
    let value: String
    let refusal: String?
    let flow: StreamFlow
    private let flowID: UInt64
    /// Largest request message; a larger one is refused from its 5-byte gRPC prefix with
    /// RESOURCE_EXHAUSTED (the transport's own check would only reset the stream).
    let maxRequestBytes: Int
    private var prefix: [UInt8] = []
    private var tooLarge = false

    let windows: ConnectionWindows?

    init(value: String, refusal: String? = nil, channel: any Channel, windows: ConnectionWindows? = nil,
         maxRequestBytes: Int = .max) {
        self.value = value
        self.refusal = refusal
        self.maxRequestBytes = maxRequestBytes
        self.windows = windows
        flow = StreamFlow(channel: channel, window: windows?.initial ?? 65_535)
        flowID = StreamFlow.register(flow)
        windows?.add(flow)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var payload = unwrapInboundIn(data)
        if case .windowUpdate(let increment) = payload { flow.granted(increment) }
        if case .data(let d) = payload {
            if tooLarge { return }  // the rest of a refused request is dropped
            if prefix.count < 5, case .byteBuffer(let buf) = d.data {
                prefix += buf.getBytes(at: buf.readerIndex, length: min(5 - prefix.count, buf.readableBytes)) ?? []
                if prefix.count == 5 {
                    let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
                    if length > maxRequestBytes {
                        refuseTooLarge(context: context, length: length)
                        return
                    }
                }
            }
        }
        if case .headers(var h) = payload {
            h.headers.remove(name: RepengSocket.peerMetadataKey)
            h.headers.add(name: RepengSocket.peerMetadataKey, value: value)
            h.headers.remove(name: refusalMetadataKey)
            if let refusal { h.headers.add(name: refusalMetadataKey, value: refusal) }
            h.headers.remove(name: StreamFlow.metadataKey)
            h.headers.add(name: StreamFlow.metadataKey, value: String(flowID))
            payload = .headers(h)
        }
        context.fireChannelRead(wrapInboundOut(payload))
    }

    /// Ends the call with a trailers-only RESOURCE_EXHAUSTED response, then resets the stream so
    /// the client stops sending.
    private func refuseTooLarge(context: ChannelHandlerContext, length: Int) {
        tooLarge = true
        let message = "request message is \(length) bytes; the limit is \(maxRequestBytes) (max_request_bytes)"
        let encoded = message.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: " ;().,_-"))) ?? message
        let headers = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "8"),
                                    ("grpc-message", encoded)])
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true)))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .data(let d) = unwrapOutboundIn(data), case .byteBuffer(let b) = d.data { flow.consumed(b.readableBytes) }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { finish() }

    private func finish() {
        flow.close()
        windows?.remove(flow)
        StreamFlow.unregister(flowID)
    }
}

/// Logs one line per request: method, peer credentials, status and duration. Also gives
/// streaming responses their flow-controlled writer (see `StreamFlow`).
struct RequestLogInterceptor: ServerInterceptor {
    let log: @Sendable (_ line: String, _ ok: Bool) -> Void
    /// Seconds a response message may wait for the client to read before the stream is reset.
    var slowReaderSeconds: Double = 60

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        let peer = request.metadata[stringValues: RepengSocket.peerMetadataKey].first(where: { _ in true }) ?? "unknown"
        let method = context.descriptor.fullyQualifiedMethod
        let timeout = request.metadata[stringValues: "grpc-timeout"].first(where: { _ in true }).flatMap(Self.timeout)
        let cancellation = context.cancellation
        let log = self.log
        @Sendable func finish(_ error: (any Error)?) {
            let elapsed = ContinuousClock.now - start
            let ms = elapsed / .milliseconds(1)
            let status: String
            if let error {
                if cancellation.isCancelled {
                    // The transport's error (e.g. a write on the closed stream) says nothing useful.
                    if let timeout, elapsed >= timeout {
                        status = "deadlineExceeded \"the client's deadline passed\""
                    } else {
                        status = "cancelled \"the client cancelled the call or went away\""
                    }
                } else {
                    let e = rpcError(error)
                    status = "\(e.code) \"\(quoted(e.message, limit: 300))\""
                }
            } else {
                status = "ok"
            }
            log("rpc \(quoted(method, limit: 100)) peer=[\(quoted(peer, limit: 100))] status=\(status) ms=\(String(format: "%.1f", ms))",
                error == nil)
        }
        var response: StreamingServerResponse<Output>
        do {
            if let refusal = request.metadata[stringValues: refusalMetadataKey].first(where: { _ in true }) {
                throw RPCError(code: .resourceExhausted, message: refusal)
            }
            response = try await next(request, context)
        } catch {
            finish(error)
            throw error
        }
        switch response.accepted {
        case .success(var contents):
            let producer = contents.producer
            let flow = StreamFlow.lookup(request.metadata)
            let patience = slowReaderSeconds
            contents.producer = { writer in
                do {
                    let out = flow.map { RPCWriter(wrapping: FlowControlledWriter(base: writer, flow: $0, patience: patience)) } ?? writer
                    let trailers = try await producer(out)
                    finish(nil)
                    return trailers
                } catch {
                    finish(error)
                    throw error
                }
            }
            response.accepted = .success(contents)
        case .failure(let error):
            finish(error)
        }
        return response
    }

    /// A `grpc-timeout` header value ("100m", "30S", …; gRPC over HTTP/2 spec) as a duration.
    static func timeout(_ value: String) -> Duration? {
        guard let unit = value.last, let n = Int64(value.dropLast()), n >= 0, value.count <= 9 else { return nil }
        switch unit {
        case "H": return .seconds(n * 3600)
        case "M": return .seconds(n * 60)
        case "S": return .seconds(n)
        case "m": return .milliseconds(n)
        case "u": return .microseconds(n)
        case "n": return .nanoseconds(n)
        default: return nil
        }
    }
}

/// Refuses calls from uids outside the allow-list (the kernel's SO_PEERCRED uid, as passed in
/// the `repeng-peer` entry).
struct AccessInterceptor: ServerInterceptor {
    let allowed: Set<UInt32>

    /// The uid in a "uid=U gid=G pid=P" peer description.
    static func uid(of peer: String) -> UInt32? {
        for part in peer.split(separator: " ") where part.hasPrefix("uid=") { return UInt32(part.dropFirst(4)) }
        return nil
    }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let peer = request.metadata[stringValues: RepengSocket.peerMetadataKey].first(where: { _ in true }) ?? "unknown"
        guard let uid = Self.uid(of: peer), allowed.contains(uid) else {
            throw rpcError(DaemonError.permissionDenied(uid: Self.uid(of: peer).map(String.init) ?? "unknown"))
        }
        return try await next(request, context)
    }
}
