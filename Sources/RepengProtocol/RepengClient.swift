// Client-side helpers for the repeng.v1 protocol: the default socket path, connecting over a
// Unix domain socket, and the layer-spec syntax shared by repengctl and the daemon's tests.
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// Where the daemon's socket is by default.
public enum RepengSocket {
    /// The metadata key under which the daemon passes the caller's kernel credentials to its
    /// request handlers. Clients cannot set it: the daemon drops any value a client sends.
    public static let peerMetadataKey = "repeng-peer"

    /// `$REPENG_SOCKET`, else `$XDG_RUNTIME_DIR/repengd/repengd.sock`, else
    /// `/tmp/repengd-$UID/repengd.sock`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let s = environment["REPENG_SOCKET"], !s.isEmpty { return s }
        return daemonDefaultPath(environment: environment)
    }

    /// The daemon's own default (ignores `$REPENG_SOCKET`, which is a client setting).
    public static func daemonDefaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let r = environment["XDG_RUNTIME_DIR"], r.hasPrefix("/") { return r + "/repengd/repengd.sock" }
        return "/tmp/repengd-\(getuid())/repengd.sock"
    }
}

/// The generated client bound to the NIO HTTP/2 transport.
public typealias RepengClient = Repeng_V1_Repeng.Client<HTTP2ClientTransport.Posix>
/// The generated health client bound to the NIO HTTP/2 transport.
public typealias HealthClient = Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>

/// Opens a connection to the daemon at `socket`, runs `body` with a client and closes it.
public func withRepengClient<Result: Sendable>(
    socket: String,
    _ body: @Sendable (RepengClient, HealthClient) async throws -> Result
) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(
        target: .unixDomainSocket(path: socket),
        transportSecurity: .plaintext,
        config: .defaults { config in
            config.backoff.initial = .milliseconds(50)
            config.backoff.max = .milliseconds(500)
        }
    )
    return try await withGRPCClient(transport: transport) { client in
        try await body(RepengClient(wrapping: client), HealthClient(wrapping: client))
    }
}

/// Why a layer spec could not be parsed.
public struct LayerSpecError: Error, CustomStringConvertible, Sendable, Equatable {
    public let spec: String
    public let reason: String
    public var description: String {
        "invalid layer spec '\(spec)': \(reason) (use a comma list of ids and inclusive ranges, e.g. '-1..-29' or '13..25,27')"
    }
}

/// Layer lists written as a comma list of ids and inclusive ranges: `13..25`, `-1..-29`,
/// `3,5,7..9`. A range may run downwards; ids keep their written order, duplicates dropped.
public enum LayerSpec {
    /// Most layers one spec may name.
    public static let maxLayers = 4096

    public static func parse(_ spec: String) throws -> [Int32] {
        var out: [Int32] = []
        var seen = Set<Int32>()
        func add(_ v: Int32) throws {
            if seen.insert(v).inserted { out.append(v) }
            guard out.count <= maxLayers else { throw LayerSpecError(spec: spec, reason: "more than \(maxLayers) layers") }
        }
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !spec.trimmingCharacters(in: .whitespaces).isEmpty else { throw LayerSpecError(spec: spec, reason: "it is empty") }
        for part in parts {
            guard !part.isEmpty else { throw LayerSpecError(spec: spec, reason: "an empty item") }
            if let r = part.range(of: "..") {
                let a = String(part[part.startIndex..<r.lowerBound]), b = String(part[r.upperBound...])
                guard let lo = Int32(a), let hi = Int32(b) else {
                    throw LayerSpecError(spec: spec, reason: "'\(part)' is not a range of two integers")
                }
                guard abs(Int(hi) - Int(lo)) < maxLayers else { throw LayerSpecError(spec: spec, reason: "range '\(part)' is too long") }
                for v in stride(from: Int(lo), through: Int(hi), by: lo <= hi ? 1 : -1) { try add(Int32(v)) }
            } else {
                guard let v = Int32(part) else { throw LayerSpecError(spec: spec, reason: "'\(part)' is not an integer") }
                try add(v)
            }
        }
        return out
    }
}
