// The HTTP API: OpenAI's /v1/completions, /v1/chat/completions and /v1/models (plain and
// server-sent events), repengd's steering fields and /v1/control, /v1/vectors, /v1/train,
// /health, /openapi.json and the playground. Requests become the gRPC service's requests and
// run on the same schedulers, so HTTP and gRPC clients decode in one batch.
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RepengEngine
import RepengProtocol

/// The handlers, shared by the Unix-socket and TCP listeners.
struct HTTPAPI: Sendable {
    let service: RepengService
    let health: HealthState
    let logger: Logger

    var registry: ModelRegistry { service.registry }
    var limits: DaemonLimits { service.config.limits }

    /// Routes one authenticated request.
    func route(_ request: Request, received: Double) async -> Response {
        let path = request.uri.path
        let method = request.method
        do {
            switch (method, path) {
            case (.get, "/"), (.get, "/index.html"):
                return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                                body: .init(byteBuffer: ByteBuffer(string: Playground.html)))
            case (.get, "/openapi.json"):
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
            case (.get, "/health"):
                return healthResponse()
            case (.get, "/v1/models"):
                return json(.ok, try await models())
            case (.post, "/v1/completions"):
                return try await generate(try await body(request), chat: false, received: received)
            case (.post, "/v1/chat/completions"):
                return try await generate(try await body(request), chat: true, received: received)
            case (.get, "/v1/control"):
                return json(.ok, try await getControl(model: query(request, "model")))
            case (.put, "/v1/control"), (.post, "/v1/control"):
                return json(.ok, try await putControl(try await body(request)))
            case (.delete, "/v1/control"):
                return json(.ok, try await deleteControl(model: query(request, "model")))
            case (.get, "/v1/vectors"):
                return json(.ok, try await vectors())
            case (.post, "/v1/train"):
                return try await train(try await body(request))
            default:
                if Self.routes[path] != nil {
                    throw HTTPFailure(status: .methodNotAllowed, message: "\(method) is not allowed on \(path); use \(Self.routes[path]!)",
                                      type: "invalid_request_error", code: "method_not_allowed")
                }
                throw HTTPFailure(status: .notFound, message: "no route \(method) \(quoted(path, limit: 200)); see /openapi.json",
                                  type: "invalid_request_error", code: "not_found")
            }
        } catch {
            return errorResponse(error)
        }
    }

    /// Paths and the methods they take (for 405 answers).
    static let routes: [String: String] = [
        "/": "GET", "/index.html": "GET", "/openapi.json": "GET", "/health": "GET", "/v1/models": "GET",
        "/v1/completions": "POST", "/v1/chat/completions": "POST", "/v1/control": "GET, PUT or DELETE",
        "/v1/vectors": "GET", "/v1/train": "POST",
    ]

    // MARK: Plumbing

    private func body(_ request: Request) async throws -> [UInt8] {
        var r = request
        let buffer: ByteBuffer
        do { buffer = try await r.collectBody(upTo: limits.maxRequestBytes) } catch {
            throw HTTPFailure(status: .contentTooLarge, message: "the request body is larger than the limit of \(limits.maxRequestBytes) bytes",
                              type: "invalid_request_error", code: "request_too_large")
        }
        return Array(buffer.readableBytesView)
    }

    private func query(_ request: Request, _ key: String) -> String {
        request.uri.queryParameters[Substring(key)].map(String.init) ?? ""
    }

    private func context(_ method: MethodDescriptor) -> ServerContext {
        ServerContext(descriptor: method, remotePeer: "http", localPeer: "http", cancellation: .init())
    }

    func json(_ status: HTTPResponse.Status, _ value: JSON) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.text)))
    }

    private func healthResponse() -> Response {
        let serving = health.isServing
        return json(serving ? .ok : .serviceUnavailable, .object([
            ("status", .string(serving ? "ok" : "shutting_down")),
            ("models", .strings(registry.hosts.map(\.name))),
        ]))
    }

    // MARK: Models and vectors

    private func models() async throws -> JSON {
        let list = try await service.listModels(request: .init(), context: context(Repeng_V1_Repeng.Method.ListModels.descriptor))
        return .object([
            ("object", "list"),
            ("data", .array(list.models.map { m in
                .object([
                    ("id", .string(m.name)), ("object", "model"), ("created", .int(0)), ("owned_by", "repengd"),
                    ("architecture", .string(m.architecture)), ("display_name", .string(m.displayName)),
                    ("layers", .int(Int(m.blockCount))), ("hidden_size", .int(Int(m.hiddenSize))),
                    ("context_length", .int(Int(m.contextLength))), ("precision", .string(m.precision)),
                    ("resident_bytes", .int(Int64(clamping: m.residentBytes))), ("default", .bool(m.isDefault)),
                    ("controlled", .bool(m.controlled)), ("chat_template", .bool(m.chatTemplatePresent)),
                ])
            })),
        ])
    }

    static func vectorJSON(_ v: Repeng_V1_VectorInfo) -> JSON {
        let status: String
        switch v.status {
        case .ok: status = "ok"
        case .stale: status = "stale"
        default: status = "error"
        }
        var fields: [(String, JSON)] = [
            ("name", .string(v.name)), ("file", .string(v.file)), ("status", .string(status)), ("version", .int(Int64(clamping: v.version))),
            ("size_bytes", .int(Int64(clamping: v.sizeBytes))), ("layers", .ints(v.layers)), ("hidden_size", .int(Int(v.hiddenSize))),
            ("model_hint", .string(v.modelHint)), ("method", .string(v.method)),
        ]
        if !v.saeFeatures.isEmpty { fields.append(("sae_features", .string(v.saeFeatures))) }
        if !v.error.isEmpty { fields.append(("error", .string(v.error))) }
        return .object(fields)
    }

    private func vectors() async throws -> JSON {
        let list = try await service.listVectors(request: .init(), context: context(Repeng_V1_Repeng.Method.ListVectors.descriptor))
        return .object([("object", "list"), ("data", .array(list.vectors.map(Self.vectorJSON)))])
    }

    // MARK: Control

    static func control(_ terms: [ControlTermBody], layers: LayersBody?, normalize: Bool?) -> Repeng_V1_Control {
        .with {
            $0.terms = terms.map { t in .with { $0.vector = t.vector; $0.coefficient = t.coeff } }
            $0.layers = layers?.layers ?? []
            $0.normalize = normalize ?? false
        }
    }

    private static func controlJSON(model: String, _ c: Repeng_V1_Control, controlled: [Int32], warnings: [String] = []) -> JSON {
        var fields: [(String, JSON)] = [
            ("model", .string(model)),
            ("control", .array(c.terms.map { .object([("vector", .string($0.vector)), ("coeff", .number($0.coefficient))]) })),
            ("layers", .ints(c.layers)), ("normalize", .bool(c.normalize)), ("controlled_layers", .ints(controlled)),
        ]
        if !warnings.isEmpty { fields.append(("warnings", .strings(warnings))) }
        return .object(fields)
    }

    private func getControl(model: String) async throws -> JSON {
        let r = try await service.getControl(request: .with { $0.model = model }, context: context(Repeng_V1_Repeng.Method.GetControl.descriptor))
        return Self.controlJSON(model: r.model, r.control, controlled: r.controlledLayers)
    }

    private func putControl(_ bytes: [UInt8]) async throws -> JSON {
        let b = try decodeBody(ControlBody.self, from: bytes)
        guard let terms = b.control else {
            throw DaemonError.invalidArgument("field 'control' is required: a list of {\"vector\": NAME, \"coeff\": NUMBER} ([] for none)")
        }
        if terms.isEmpty, b.layers != nil || b.normalize == true {
            throw DaemonError.invalidArgument("layers and normalize apply to a control; an empty control list resets the model")
        }
        let host = try registry.host(b.model ?? "")
        let r = try await service.setControl(
            request: .with { $0.model = host.name; $0.control = Self.control(terms, layers: b.layers, normalize: b.normalize) },
            context: context(Repeng_V1_Repeng.Method.SetControl.descriptor))
        return Self.controlJSON(model: host.name, r.control, controlled: r.controlledLayers, warnings: r.warnings)
    }

    private func deleteControl(model: String) async throws -> JSON {
        let r = try await service.reset(request: .with { $0.model = model }, context: context(Repeng_V1_Repeng.Method.Reset.descriptor))
        return Self.controlJSON(model: r.model, .init(), controlled: [])
    }

    // MARK: Generation

    /// A Generate request from an OpenAI body: messages or prompt, sampling, stop, steering.
    func generateRequest(_ bytes: [UInt8], chat: Bool) throws -> (Repeng_V1_GenerateRequest, SamplingBody) {
        let s = try decodeBody(SamplingBody.self, from: bytes)
        var req = Repeng_V1_GenerateRequest()
        req.model = try registry.host(s.model ?? "").name
        if chat {
            let c = try decodeBody(ChatBody.self, from: bytes)
            guard let messages = c.messages, !messages.isEmpty else {
                throw DaemonError.invalidArgument("field 'messages' is required: a list of {\"role\", \"content\"} messages")
            }
            req.chat = .with { $0.messages = messages.map { m in .with { $0.role = m.role; $0.content = m.content } } }
            req.chatFormat = c.chat_format ?? ""
        } else {
            let c = try decodeBody(CompletionBody.self, from: bytes)
            guard let p = c.prompt?.values else { throw DaemonError.invalidArgument("field 'prompt' is required") }
            guard p.count == 1 else {
                throw DaemonError.invalidArgument("field 'prompt' must be one string (got \(p.count)); send one request per prompt")
            }
            req.prompt = p[0]
        }
        func unsupported(_ field: String, _ hint: String) -> DaemonError { .invalidArgument("field '\(field)' is not supported: \(hint)") }
        if let n = s.n, n != 1 { throw unsupported("n", "send n requests (they decode in one batch)") }
        if let b = s.best_of, b != 1 { throw unsupported("best_of", "only 1 is served") }
        if s.logprobs?.isSet == true || s.top_logprobs?.isSet == true { throw unsupported("logprobs", "log probabilities are not returned") }
        if s.echo?.isSet == true { throw unsupported("echo", "the prompt is not echoed") }
        if let x = s.suffix, !x.isEmpty { throw unsupported("suffix", "no insertion mode") }
        if s.tools?.isSet == true { throw unsupported("tools", "no tool calling") }
        if let f = s.response_format, f.type != "text" { throw unsupported("response_format", "only \"text\" is served") }
        for (name, v) in [("frequency_penalty", s.frequency_penalty), ("presence_penalty", s.presence_penalty)] {
            if let v, v != 0 { throw unsupported(name, "use repetition_penalty (transformers' multiplicative penalty)") }
        }
        if let m = s.max_completion_tokens ?? s.max_tokens {
            guard m >= 1, m <= Int(UInt32.max) else {
                throw DaemonError.invalidArgument("max_tokens must be at least 1 (the limit is \(limits.maxTokens)), got \(m)")
            }
            req.maxTokens = UInt32(m)
        }
        req.stop = s.stop?.values ?? []
        if let k = s.top_k, k < 0 || k > Int(UInt32.max) { throw DaemonError.invalidArgument("top_k must be 0 (off) or more, got \(k)") }
        req.sampling = .with { o in
            // OpenAI's defaults: temperature 1 and top_p 1; temperature 0 is greedy.
            o.temperature = s.temperature ?? 1
            if let v = s.top_p { o.topP = v }
            if let v = s.top_k { o.topK = UInt32(v) }
            if let v = s.min_p { o.minP = v }
            if let v = s.repetition_penalty { o.repetitionPenalty = v }
            if let v = s.seed { o.seed = UInt64(bitPattern: v) }
        }
        if let terms = s.control {
            req.control = Self.control(terms, layers: s.layers, normalize: s.normalize)
        } else if s.layers != nil || s.normalize != nil {
            throw DaemonError.invalidArgument("layers and normalize apply to 'control'; the model's current control keeps its own")
        }
        return (req, s)
    }

    private static func finishReason(_ r: FinishReason) -> String {
        switch r {
        case .eos, .stop: return "stop"
        case .length, .contextFull: return "length"
        case .cancelled: return "cancelled"
        }
    }

    private static func usage(_ st: GenerationStats) -> JSON {
        .object([("prompt_tokens", .int(st.promptTokens)), ("completion_tokens", .int(st.completionTokens)),
                 ("total_tokens", .int(st.promptTokens + st.completionTokens))])
    }

    private func generate(_ bytes: [UInt8], chat: Bool, received: Double) async throws -> Response {
        let (req, s) = try generateRequest(bytes, chat: chat)
        let host = try registry.host(req.model)
        let job = try service.makeJob(req, host: host, received: received)
        try host.scheduler.submit(job)
        service.counters.generationsServed.add(1, ordering: .relaxed)
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let created = Int(Date().timeIntervalSince1970)
        let model = host.name, scheduler = host.scheduler
        let object = chat ? "chat.completion" : "text_completion"

        guard s.stream == true else {
            let result: (String, FinishReason, GenerationStats) = try await withTaskCancellationHandler {
                defer { scheduler.cancel(job) }
                var text = ""
                for await ev in job.events {
                    switch ev {
                    case .piece(let t, _):
                        text += t
                        if job.delivered() == scheduler.maxBacklog - 1 { scheduler.poke() }
                    case let .finished(reason, stats): return (text, reason, stats)
                    case .failed(let e): throw e
                    }
                }
                throw CancellationError()
            } onCancel: {
                scheduler.cancel(job)
            }
            let choice: JSON = chat
                ? .object([("index", .int(0)), ("message", .object([("role", "assistant"), ("content", .string(result.0))])),
                           ("logprobs", nil), ("finish_reason", .string(Self.finishReason(result.1)))])
                : .object([("index", .int(0)), ("text", .string(result.0)), ("logprobs", nil),
                           ("finish_reason", .string(Self.finishReason(result.1)))])
            return json(.ok, .object([("id", .string(id)), ("object", .string(object)), ("created", .int(created)),
                                      ("model", .string(model)), ("choices", .array([choice])), ("usage", Self.usage(result.2))]))
        }

        let includeUsage = s.stream_options?.include_usage ?? false
        let chunkObject = chat ? "chat.completion.chunk" : "text_completion"
        @Sendable func chunk(_ choice: JSON?, usage: JSON? = nil) -> ByteBuffer {
            var fields: [(String, JSON)] = [("id", .string(id)), ("object", .string(chunkObject)), ("created", .int(created)),
                                            ("model", .string(model)), ("choices", .array(choice.map { [$0] } ?? []))]
            if let usage { fields.append(("usage", usage)) }
            return ByteBuffer(string: "data: " + JSON.object(fields).text + "\n\n")
        }
        @Sendable func choice(_ text: String?, finish: String?) -> JSON {
            if chat {
                var delta: [(String, JSON)] = []
                if text == "" && finish == nil { delta = [("role", "assistant"), ("content", "")] } else if let text { delta = [("content", .string(text))] }
                return .object([("index", .int(0)), ("delta", .object(delta)), ("logprobs", nil), ("finish_reason", finish.map(JSON.string) ?? nil)])
            }
            return .object([("index", .int(0)), ("text", .string(text ?? "")), ("logprobs", nil), ("finish_reason", finish.map(JSON.string) ?? nil)])
        }
        let body = ResponseBody { writer in
            defer { scheduler.cancel(job) }
            if chat { try await writer.write(chunk(choice("", finish: nil))) }
            for await ev in job.events {
                switch ev {
                case .piece(let t, _):
                    if !t.isEmpty { try await writer.write(chunk(choice(t, finish: nil))) }
                    if job.delivered() == scheduler.maxBacklog - 1 { scheduler.poke() }
                case let .finished(reason, stats):
                    try await writer.write(chunk(choice(chat ? nil : "", finish: Self.finishReason(reason))))
                    if includeUsage { try await writer.write(chunk(nil, usage: Self.usage(stats))) }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                    return
                case .failed(let e):
                    try await writer.write(ByteBuffer(string: "data: " + Self.errorJSON(e).1.text + "\n\n"))
                    try await writer.finish(nil)
                    return
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: Self.sseHeaders, body: body)
    }

    static let sseHeaders: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]

    // MARK: Training

    private func train(_ bytes: [UInt8]) async throws -> Response {
        let b = try decodeBody(TrainBody.self, from: bytes)
        guard let name = b.name else { throw DaemonError.invalidArgument("field 'name' is required: the vector's name") }
        guard let dataset = b.dataset else {
            throw DaemonError.invalidArgument("field 'dataset' is required: a list of {\"positive\", \"negative\"} pairs")
        }
        var req = Repeng_V1_TrainRequest()
        req.model = try registry.host(b.model ?? "").name
        req.name = name
        req.dataset = dataset.map { p in .with { $0.positive = p.positive; $0.negative = p.negative; $0.reply = p.reply ?? "" } }
        switch b.method ?? "" {
        case "": req.method = .unspecified
        case "pca_diff": req.method = .pcaDiff
        case "pca_center": req.method = .pcaCenter
        case "mean_diff": req.method = .meanDiff
        case let m: throw DaemonError.invalidArgument("method '\(quoted(m))' is not one of pca_diff, pca_center, mean_diff")
        }
        req.layers = b.layers?.layers ?? []
        req.overwrite = b.overwrite ?? false
        if let n = b.batch_size {
            guard n >= 1, n <= 1024 else { throw DaemonError.invalidArgument("batch_size must be 1 to 1024, got \(n)") }
            req.batchSize = UInt32(n)
        }
        req.chat = b.chat ?? false
        req.chatFormat = b.chat_format ?? ""
        req.sae = b.sae ?? ""
        req.keepFeatures = b.keep_features ?? false
        req.saeRepengPairing = b.sae_repeng_pairing ?? false

        // The service runs the training; its events come through a stream. Errors before the
        // first event (validation, a busy slot) become the HTTP status.
        let (events, cont) = AsyncThrowingStream.makeStream(of: Repeng_V1_TrainEvent.self)
        let service = self.service, ctx = context(Repeng_V1_Repeng.Method.Train.descriptor), request = req
        let task = Task {
            do {
                try await service.train(request: request, response: RPCWriter(wrapping: StreamWriter(continuation: cont)), context: ctx)
                cont.finish()
            } catch {
                cont.finish(throwing: error)
            }
        }
        let iterator = IteratorBox(events.makeAsyncIterator())
        let first: Repeng_V1_TrainEvent?
        do { first = try await iterator.next() } catch {
            task.cancel()
            throw error
        }
        @Sendable func event(_ ev: Repeng_V1_TrainEvent) -> (String, JSON)? {
            switch ev.event {
            case .progress(let p)?:
                return ("progress", .object([("done", .int(Int(p.done))), ("total", .int(Int(p.total))), ("stage", .string(p.stage))]))
            case .result(let r)?:
                var fields: [(String, JSON)] = [("vector", Self.vectorJSON(r.vector)), ("seconds", .double(r.seconds)),
                                                ("warnings", .strings(r.warnings))]
                if !r.topFeatures.isEmpty {
                    fields.append(("top_features", .array(r.topFeatures.map { f in
                        .object([("layer", .int(Int(f.layer))), ("index", .ints(f.index)), ("weight", .array(f.weight.map(JSON.number)))])
                    })))
                }
                return ("result", .object(fields))
            case nil:
                return nil
            }
        }

        guard b.stream ?? true else {
            // Plain JSON: the result once training ends.
            var current = first
            while let ev = current {
                if case .result? = ev.event, let (_, value) = event(ev) { return json(.ok, value) }
                do { current = try await iterator.next() } catch {
                    task.cancel()
                    throw error
                }
            }
            throw DaemonError.internalFailure("training ended without a result")
        }
        let body = ResponseBody { writer in
            defer { task.cancel() }
            var current = first
            do {
                while let ev = current {
                    if let (kind, value) = event(ev) {
                        try await writer.write(ByteBuffer(string: "event: \(kind)\ndata: \(value.text)\n\n"))
                    }
                    current = try await iterator.next()
                }
            } catch let e as CancellationError {
                throw e
            } catch {
                try await writer.write(ByteBuffer(string: "event: error\ndata: \(Self.errorJSON(error).1.text)\n\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: Self.sseHeaders, body: body)
    }

    // MARK: Errors

    /// The HTTP status and OpenAI-shaped body of an error: `{"error": {"message", "type", "code"}}`.
    static func errorJSON(_ error: any Error) -> (HTTPResponse.Status, JSON) {
        if let f = error as? HTTPFailure {
            return (f.status, .object([("error", .object([("message", .string(f.message)), ("type", .string(f.type)),
                                                           ("param", nil), ("code", .string(f.code))]))]))
        }
        let e = rpcError(error)
        let (status, type, code) = httpStatus(e.code)
        return (status, .object([("error", .object([("message", .string(e.message)), ("type", .string(type)),
                                                     ("param", nil), ("code", .string(code))]))]))
    }

    /// The HTTP status, OpenAI error type and code for an RPC status code (the one mapping
    /// from the daemon's errors, `rpcError`, to HTTP).
    static func httpStatus(_ code: RPCError.Code) -> (HTTPResponse.Status, String, String) {
        switch code {
        case .invalidArgument, .outOfRange: return (.badRequest, "invalid_request_error", "invalid_argument")
        case .notFound: return (.notFound, "invalid_request_error", "not_found")
        case .alreadyExists: return (.conflict, "invalid_request_error", "already_exists")
        case .failedPrecondition: return (.conflict, "invalid_request_error", "failed_precondition")
        case .permissionDenied: return (.forbidden, "permission_error", "permission_denied")
        case .unauthenticated: return (.unauthorized, "authentication_error", "invalid_api_key")
        case .resourceExhausted: return (.tooManyRequests, "rate_limit_error", "resource_exhausted")
        case .unavailable: return (.serviceUnavailable, "server_error", "unavailable")
        case .deadlineExceeded: return (.gatewayTimeout, "server_error", "deadline_exceeded")
        case .cancelled: return (HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"), "server_error", "cancelled")
        default: return (.internalServerError, "server_error", "internal")
        }
    }

    func errorResponse(_ error: any Error) -> Response {
        let (status, body) = Self.errorJSON(error)
        return json(status, body)
    }
}

/// An error answered with a given HTTP status (routing, auth and body-size failures, which have
/// no RPC counterpart).
struct HTTPFailure: Error {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var code: String
}

/// Feeds an RPC writer's messages into a stream.
private struct StreamWriter<Element: Sendable>: RPCWriterProtocol {
    let continuation: AsyncThrowingStream<Element, any Error>.Continuation
    func write(_ element: Element) async throws { continuation.yield(element) }
    func write(contentsOf elements: some Sequence<Element>) async throws {
        for e in elements { continuation.yield(e) }
    }
}

/// One stream iterator handed from the handler to its response body (used by one task at a time).
private final class IteratorBox: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<Repeng_V1_TrainEvent, any Error>.Iterator
    init(_ i: AsyncThrowingStream<Repeng_V1_TrainEvent, any Error>.Iterator) { iterator = i }
    func next() async throws -> Repeng_V1_TrainEvent? { try await iterator.next() }
}

/// Answers, authenticates and logs every request of one listener.
struct APIResponder: HTTPResponder {
    enum Transport: Sendable {
        /// The Unix socket: peers are identified by their uid; nil allows every peer the socket's
        /// mode lets in.
        case unix(allowed: Set<UInt32>?)
        /// Loopback TCP: every request carries the token (`Authorization: Bearer`, or `?token=`).
        case tcp(token: String)
    }
    let api: HTTPAPI
    let transport: Transport

    func respond(to request: Request, context: APIRequestContext) async throws -> Response {
        let received = monotonicSeconds()
        let peer: String
        var refusal: HTTPFailure?
        switch transport {
        case .unix(let allowed):
            let cred = await peerCredentials(of: context.channel)
            peer = cred.map { "uid=\($0.uid) gid=\($0.gid) pid=\($0.pid)" } ?? "unknown"
            if let allowed, !(cred.map { allowed.contains($0.uid) } ?? false) {
                let uid = cred.map { String($0.uid) } ?? "unknown"
                refusal = HTTPFailure(status: .forbidden, message: DaemonError.permissionDenied(uid: uid).description,
                                      type: "permission_error", code: "permission_denied")
            }
        case .tcp(let token):
            peer = context.channel.remoteAddress.map { "\($0)" } ?? "unknown"
            var given: Substring?
            if let auth = request.headers[.authorization] {
                let parts = auth.split(separator: " ", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == "bearer" { given = parts[1] }
            }
            if given == nil { given = request.uri.queryParameters["token"] }
            if let given, HTTPToken.matches(given, token) {
                break
            }
            refusal = HTTPFailure(status: .unauthorized,
                                  message: given == nil ? "this endpoint needs the daemon's token: send 'Authorization: Bearer TOKEN' (repengctl http-url prints a URL with it)"
                                                        : "the token is not the daemon's; repengctl http-url prints a URL with the right one",
                                  type: "invalid_request_error", code: "invalid_api_key")
        }
        let response: Response
        if let refusal {
            response = api.errorResponse(refusal)
        } else {
            response = await api.route(request, received: received)
        }
        let line = "http \(request.method) \(quoted(request.uri.path, limit: 200)) peer=\(peer) status=\(response.status.code) \(String(format: "%.3f", monotonicSeconds() - received)) s"
        if response.status.code < 400 { api.logger.info("\(line)") } else { api.logger.notice("\(line)") }
        return response
    }
}

/// The kernel's credentials for the peer of a Unix-socket connection; nil when there are none.
func peerCredentials(of channel: any Channel) async -> PeerCred? {
    guard let provider = channel as? any SocketOptionProvider else { return nil }
    let future: EventLoopFuture<PeerCred> = provider.unsafeGetSocketOption(
        level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
    return try? await future.get()
}
