// Kernel credentials of the process at the other end of the Unix socket (SO_PEERCRED, see
// unix(7)), read on the accepted connection and handed to request handlers as metadata.
import Foundation
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import RepengProtocol

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

/// Replaces the `repeng-peer` header of incoming requests with the credentials the kernel
/// reported for the connection (a client cannot forge it).
final class PeerCredentialsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    let value: String

    init(value: String) {
        self.value = value
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var payload = unwrapInboundIn(data)
        if case .headers(var h) = payload {
            h.headers.remove(name: RepengSocket.peerMetadataKey)
            h.headers.add(name: RepengSocket.peerMetadataKey, value: value)
            payload = .headers(h)
        }
        context.fireChannelRead(wrapInboundOut(payload))
    }
}

/// The transport callback that installs `PeerCredentialsHandler` on every HTTP/2 stream.
@Sendable func installPeerCredentials(on stream: any Channel) -> EventLoopFuture<Void> {
    guard let parent = stream.parent else {
        return stream.eventLoop.makeCompletedFuture {
            try stream.pipeline.syncOperations.addHandler(PeerCredentialsHandler(value: "unknown"), position: .first)
        }
    }
    return peerDescription(of: parent).hop(to: stream.eventLoop).flatMapThrowing { desc in
        try stream.pipeline.syncOperations.addHandler(PeerCredentialsHandler(value: desc), position: .first)
    }
}

/// Logs one line per request: method, peer credentials, status and duration.
struct RequestLogInterceptor: ServerInterceptor {
    let log: @Sendable (_ line: String, _ ok: Bool) -> Void

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        let peer = request.metadata[stringValues: RepengSocket.peerMetadataKey].first(where: { _ in true }) ?? "unknown"
        let method = context.descriptor.fullyQualifiedMethod
        let log = self.log
        @Sendable func finish(_ error: (any Error)?) {
            let ms = (ContinuousClock.now - start) / .milliseconds(1)
            let status: String
            if let error {
                let e = rpcError(error)
                status = "\(e.code) \"\(e.message)\""
            } else {
                status = "ok"
            }
            log("rpc \(method) peer=[\(peer)] status=\(status) ms=\(String(format: "%.1f", ms))", error == nil)
        }
        var response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            finish(error)
            throw error
        }
        switch response.accepted {
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await producer(writer)
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
