// grpc.health.v1.Health (gRPC doc/health-checking.md): SERVING for the server ("") and for
// repeng.v1.Repeng while the daemon runs, NOT_SERVING once it shuts down.
import GRPCCore
import RepengProtocol
import Synchronization

/// Serving state shared by the health service and the daemon.
public final class HealthState: Sendable {
    private let serving = Atomic<Bool>(true)
    public init() {}
    public var isServing: Bool { serving.load(ordering: .relaxed) }
    /// Marks the daemon as shutting down; open Watch calls report it and end.
    public func markNotServing() { serving.store(false, ordering: .relaxed) }
}

/// The health service.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    /// Service names with a status: the whole server and the repeng service.
    public static let services: Set<String> = ["", "repeng.v1.Repeng"]
    let state: HealthState

    private func current() -> Grpc_Health_V1_HealthCheckResponse {
        .with { $0.status = state.isServing ? .serving : .notServing }
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard Self.services.contains(request.service) else {
            throw RPCError(code: .notFound, message: "unknown service '\(request.service)'")
        }
        return current()
    }

    public func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
                      context: ServerContext) async throws {
        guard Self.services.contains(request.service) else {
            try await response.write(.with { $0.status = .serviceUnknown })
            return
        }
        var last = current()
        try await response.write(last)
        // The status changes once (to NOT_SERVING at shutdown); the call then ends so that a
        // graceful shutdown is not held up by watchers.
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            let now = current()
            if now != last {
                try await response.write(now)
                last = now
            }
            if !state.isServing { return }
        }
    }
}
