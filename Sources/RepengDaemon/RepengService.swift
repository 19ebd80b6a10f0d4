// The repeng.v1.Repeng service: request validation, control state, training and generation
// on top of the model hosts. Every handler's errors go through `rpcError`.
import Foundation
import GRPCCore
import RepengEngine
import RepengProtocol
import RepengSteering
import Synchronization

/// Counters shown by Status.
final class DaemonCounters: Sendable {
    let generationsServed = Atomic<UInt64>(0)
    let activeTrainings = Atomic<Int>(0)
    /// Set when a shutdown's drain period has run out: running trainings stop.
    let cancelTrainings = CancelFlag()
}

/// A flag set once from any thread.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// Where the HTTP API listens, for Status (set once its listeners are up).
final class HTTPInfo: Sendable {
    private let value = Mutex<(socket: String, url: String?)>(("", nil))
    func set(socket: String, url: String?) { value.withLock { $0 = (socket, url) } }
    var socket: String { value.withLock { $0.socket } }
    var url: String? { value.withLock { $0.url } }
}

/// The service implementation.
public struct RepengService: Repeng_V1_Repeng.SimpleServiceProtocol {
    let registry: ModelRegistry
    let store: VectorStore
    let controlStore: ControlStateStore
    let config: DaemonConfig
    let counters: DaemonCounters
    let started: Double
    let version: String
    let http: HTTPInfo

    var resolver: ControlResolver { ControlResolver(store: store, limits: config.limits) }
    var limits: DaemonLimits { config.limits }

    /// Runs a handler body, giving every error its RPC status.
    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw rpcError(error) }
    }

    // MARK: Conversions

    static func spec(from c: Repeng_V1_Control) -> ControlSpec {
        ControlSpec(terms: c.terms.map { .init(vector: $0.vector, coefficient: $0.coefficient) },
                    layers: c.layers.isEmpty ? nil : c.layers.map(Int.init), normalize: c.normalize)
    }

    static func proto(_ s: ControlSpec?) -> Repeng_V1_Control {
        guard let s else { return Repeng_V1_Control() }
        return .with {
            $0.terms = s.terms.map { t in .with { $0.vector = t.vector; $0.coefficient = t.coefficient } }
            $0.layers = (s.layers ?? []).map { Int32(clamping: $0) }
            $0.normalize = s.normalize
        }
    }

    static func info(_ listing: VectorListing) -> Repeng_V1_VectorInfo {
        var v = Repeng_V1_VectorInfo()
        v.name = listing.name
        v.file = listing.file
        v.sizeBytes = listing.sizeBytes
        v.version = UInt64(max(0, listing.version))
        if let cv = listing.vector {
            v.status = listing.error == nil ? .ok : .stale
            v.layers = cv.layers.map { Int32(clamping: $0) }
            v.hiddenSize = UInt32(clamping: cv.hiddenSize ?? 0)
            v.modelHint = cv.modelType
            v.method = cv.metadata.method ?? ""
            v.saeFeatures = cv.metadata.featureSpace ?? ""
        } else {
            v.status = .error
        }
        v.error = listing.error ?? ""
        return v
    }

    // MARK: Control

    public func setControl(request: Repeng_V1_SetControlRequest, context: ServerContext) async throws -> Repeng_V1_SetControlResponse {
        try await mapped {
            let host = try registry.host(request.model)
            let spec = Self.spec(from: request.control)
            if spec.terms.isEmpty {
                try host.setControl(nil) { try controlStore.set(nil, for: host.name) }
                return Repeng_V1_SetControlResponse()
            }
            let resolved = try resolver.resolve(spec, model: host.model)
            try host.setControl(resolved) { try controlStore.set(spec, for: host.name) }
            return .with {
                $0.control = Self.proto(spec)
                $0.warnings = resolved.warnings
                $0.controlledLayers = resolved.blocks.map { Int32($0) }
            }
        }
    }

    public func getControl(request: Repeng_V1_GetControlRequest, context: ServerContext) async throws -> Repeng_V1_GetControlResponse {
        try await mapped {
            let host = try registry.host(request.model)
            let c = host.currentControl
            return .with {
                $0.model = host.name
                $0.control = Self.proto(c?.spec)
                $0.controlledLayers = (c?.blocks ?? []).map { Int32($0) }
            }
        }
    }

    public func reset(request: Repeng_V1_ResetRequest, context: ServerContext) async throws -> Repeng_V1_ResetResponse {
        try await mapped {
            let host = try registry.host(request.model)
            try host.setControl(nil) { try controlStore.set(nil, for: host.name) }
            return .with { $0.model = host.name }
        }
    }

    // MARK: Generation

    /// Checks a Generate request and turns it into a scheduler job (control snapshot taken here).
    func makeJob(_ request: Repeng_V1_GenerateRequest, host: ModelHost, received: Double) throws -> GenerationJob {
        guard let tokenizer = host.model.tokenizer else { throw ControlError.noTokenizer }
        let text: String, addSpecial: Bool
        switch request.input {
        case .prompt(let p)?:
            guard !p.isEmpty else { throw DaemonError.invalidArgument("prompt is empty; send the text to continue (or chat messages)") }
            (text, addSpecial) = (p, true)
        case .chat(let chat)?:
            let prompt = try host.chatPrompt(chat.messages.map { ($0.role, $0.content) }, format: request.chatFormat)
            (text, addSpecial) = (prompt.text, prompt.addSpecialTokens)
        case nil:
            throw DaemonError.invalidArgument("prompt is empty; set prompt or chat")
        }
        let ids = tokenizer.encode(text, addSpecial: addSpecial)
        guard !ids.isEmpty else { throw DaemonError.invalidArgument("prompt is empty after tokenization") }
        guard ids.count <= limits.maxPromptTokens else {
            throw DaemonError.invalidArgument("prompt has \(ids.count) tokens; the limit is \(limits.maxPromptTokens)")
        }
        guard ids.count < host.model.config.contextLength else {
            throw DaemonError.invalidArgument("prompt has \(ids.count) tokens but the model's context is \(host.model.config.contextLength)")
        }
        let maxTokens = request.maxTokens == 0 ? limits.defaultMaxTokens : Int(request.maxTokens)
        guard maxTokens <= limits.maxTokens else {
            throw DaemonError.invalidArgument("max_tokens is \(request.maxTokens); the limit is \(limits.maxTokens)")
        }
        guard request.stop.count <= limits.maxStopStrings else {
            throw DaemonError.invalidArgument("at most \(limits.maxStopStrings) stop strings, got \(request.stop.count)")
        }
        for s in request.stop where s.isEmpty || s.count > limits.maxStopLength {
            throw DaemonError.invalidArgument("stop strings must have 1 to \(limits.maxStopLength) characters")
        }
        var sampling = SamplingParameters.greedy
        if request.hasSampling {
            let o = request.sampling
            if o.hasTemperature { sampling.temperature = o.temperature }
            if o.hasTopK { sampling.topK = Int(o.topK) }
            if o.hasTopP { sampling.topP = o.topP }
            if o.hasMinP { sampling.minP = o.minP }
            if o.hasRepetitionPenalty { sampling.repetitionPenalty = o.repetitionPenalty }
            if o.hasSeed { sampling.seed = o.seed }
        }
        try sampling.validate()
        let steering: PreparedSteering?
        if request.hasControl {
            steering = try resolver.resolve(Self.spec(from: request.control), model: host.model).prepared
        } else {
            steering = host.currentControl(refreshedWith: resolver)?.prepared
        }
        return GenerationJob(
            request: GenerationRequest(prompt: ids, maxTokens: maxTokens, sampling: sampling, stopStrings: request.stop,
                                       steering: steering, prefillChunk: limits.prefillChunkTokens),
            received: received)
    }

    public func generate(request: Repeng_V1_GenerateRequest, response: RPCWriter<Repeng_V1_GenerateEvent>,
                         context: ServerContext) async throws {
        try await mapped {
            let received = monotonicSeconds()
            let host = try registry.host(request.model)
            let job = try makeJob(request, host: host, received: received)
            try host.scheduler.submit(job)
            counters.generationsServed.add(1, ordering: .relaxed)
            defer { host.scheduler.cancel(job) }
            // gRPC reports a passed deadline or a client that went away through the RPC's
            // cancellation handle (not by cancelling this task): either way the job leaves the
            // queue, or stops at the next step, at once.
            try await withRPCCancellationHandler {
                try await withTaskCancellationHandler {
                    try await stream(job, to: response, request: request, scheduler: host.scheduler)
                } onCancel: {
                    host.scheduler.cancel(job)
                }
            } onCancelRPC: {
                host.scheduler.cancel(job)
            }
        }
    }

    /// Writes a job's events to the client until it finishes.
    private func stream(_ job: GenerationJob, to response: RPCWriter<Repeng_V1_GenerateEvent>,
                        request: Repeng_V1_GenerateRequest, scheduler: Scheduler) async throws {
        for await ev in job.events {
            switch ev {
            case let .piece(text, tokens):
                if !text.isEmpty || request.returnTokenIds {
                    try await response.write(.with {
                        $0.chunk.text = text
                        if request.returnTokenIds { $0.chunk.tokenIds = tokens }
                    })
                }
                // The write returned: the transport took it (HTTP/2 flow control), so the
                // scheduler may run this sequence again if it was waiting.
                if job.delivered() == scheduler.maxBacklog - 1 { scheduler.poke() }
            case let .finished(reason, stats):
                try await response.write(.with {
                    $0.done.finishReason = Self.proto(reason)
                    $0.done.promptTokens = UInt32(stats.promptTokens)
                    $0.done.completionTokens = UInt32(stats.completionTokens)
                    $0.done.queueSeconds = stats.queueSeconds
                    $0.done.prefillSeconds = stats.prefillSeconds
                    $0.done.decodeSeconds = stats.decodeSeconds
                    $0.done.totalSeconds = stats.totalSeconds
                })
                return
            case .failed(let e):
                throw e
            }
        }
        try Task.checkCancellation()
        if job.isCancelled { throw CancellationError() }
        throw DaemonError.internalFailure("generation ended without a result")
    }

    static func proto(_ r: FinishReason) -> Repeng_V1_FinishReason {
        switch r {
        case .eos: return .eos
        case .length: return .length
        case .stop: return .stop
        case .contextFull: return .contextFull
        case .cancelled: return .cancelled
        }
    }

    // MARK: Training

    public func train(request: Repeng_V1_TrainRequest, response: RPCWriter<Repeng_V1_TrainEvent>,
                      context: ServerContext) async throws {
        try await mapped {
            let host = try registry.host(request.model)
            try VectorName.check(request.name)
            guard !request.dataset.isEmpty else { throw DaemonError.invalidArgument("dataset is empty; send contrastive pairs") }
            guard request.dataset.count <= limits.maxTrainingPairs else {
                throw DaemonError.resourceExhausted("dataset has \(request.dataset.count) pairs; the limit is \(limits.maxTrainingPairs)")
            }
            for (i, e) in request.dataset.enumerated() where e.positive.isEmpty || e.negative.isEmpty {
                throw DaemonError.invalidArgument("dataset entry \(i) has an empty \(e.positive.isEmpty ? "positive" : "negative") text")
            }
            let sae = try saeSet(request, host: host)
            let method: TrainingMethod
            switch request.method {
            case .unspecified: method = sae == nil ? .pcaDiff : .pcaCenter
            case .pcaDiff: method = .pcaDiff
            case .pcaCenter: method = .pcaCenter
            case .meanDiff: method = .meanDiff
            case .UNRECOGNIZED(let v): throw DaemonError.invalidArgument("unknown training method \(v)")
            }
            var layers: [Int]?
            var warnings: [String] = []
            if let sae, request.layers.isEmpty {
                // The SAE folder's layers, without block 0 (a GGUF vector cannot hold it).
                layers = sae.layers.filter { $0 != 0 }
                if sae.byLayer[0] != nil { warnings.append("the SAE of layer 0 was not used: llama.cpp rejects direction.0") }
                guard !(layers ?? []).isEmpty else {
                    throw DaemonError.invalidArgument("the SAE folder covers only layer 0, which cannot be trained into a GGUF vector")
                }
            } else if !request.layers.isEmpty {
                layers = []
                for l in request.layers.map(Int.init) {
                    guard try host.model.blockIndex(l) != 0 else {
                        throw DaemonError.invalidArgument("layer 0 cannot be trained into a GGUF vector (llama.cpp rejects direction.0); start at layer 1")
                    }
                    layers?.append(l)
                }
            }
            if !request.overwrite, try store.exists(request.name) { throw DaemonError.vectorExists(name: request.name) }
            let slots = limits.maxConcurrentTrainings
            guard counters.activeTrainings.add(1, ordering: .relaxed).newValue <= slots else {
                counters.activeTrainings.subtract(1, ordering: .relaxed)
                throw DaemonError.resourceExhausted("\(slots) training(s) already running; retry when it finishes")
            }
            defer { counters.activeTrainings.subtract(1, ordering: .relaxed) }

            let dataset: [DatasetEntry]
            if request.chat {
                let layout = try host.chatLayout(format: request.chatFormat)
                dataset = try request.dataset.map {
                    try DatasetEntry(positive: layout.datasetText(instruction: $0.positive, reply: $0.reply),
                                     negative: layout.datasetText(instruction: $0.negative, reply: $0.reply))
                }
            } else {
                guard request.chatFormat.isEmpty else {
                    throw DaemonError.invalidArgument("chat_format is set but chat is not; set chat to lay the dataset out as chats")
                }
                if let i = request.dataset.firstIndex(where: { !$0.reply.isEmpty }) {
                    throw DaemonError.invalidArgument("dataset entry \(i) has a reply but chat is not set; set chat to lay the dataset out as chats")
                }
                dataset = request.dataset.map { DatasetEntry(positive: $0.positive, negative: $0.negative) }
            }
            let batch = request.batchSize == 0 ? 32 : Int(min(request.batchSize, 1024))
            let (events, cont) = AsyncThrowingStream.makeStream(of: Repeng_V1_TrainEvent.self)
            let cancelled = CancelFlag()
            let shutdown = counters.cancelTrainings
            let store = self.store, model = host.model, name = request.name, overwrite = request.overwrite
            let trainLayers = layers, keepFeatures = request.keepFeatures, notes = warnings
            let layerCount = try layers.map { try Set($0.map { try host.model.blockIndex($0) }).count } ?? max(0, host.model.config.blockCount - 1)
            let maxTextTokens = limits.maxPromptTokens, maxTotalTokens = limits.maxTrainingTokens
            let thread = Thread {
                let t0 = monotonicSeconds()
                do {
                    var lastSent = -1.0
                    let fitStage = sae == nil ? "fitting" : "sae encoding"
                    let progress: (Int, Int) throws -> Void = { done, total in
                        // The client left or the daemon is stopping: stop at the next batch.
                        if cancelled.isSet { throw CancellationError() }
                        if shutdown.isSet { throw DaemonError.shuttingDown }
                        // Units: texts run, then one per layer fitted.
                        let stage = done > total - layerCount ? fitStage : "hidden states"
                        let now = monotonicSeconds()
                        if now - lastSent >= 0.05 || done == total {
                            lastSent = now
                            cont.yield(.with {
                                $0.progress.done = UInt32(clamping: done)
                                $0.progress.total = UInt32(clamping: total)
                                $0.progress.stage = stage
                            })
                        }
                    }
                    let vector: ControlVector
                    if let sae {
                        vector = try ControlVector.trainWithSAE(model: model, dataset: dataset, sae: sae, layers: trainLayers,
                                                                batchSize: batch, method: method, decode: !keepFeatures,
                                                                maxTextTokens: maxTextTokens, maxTotalTokens: maxTotalTokens,
                                                                progress: progress)
                    } else {
                        vector = try ControlVector.train(model: model, dataset: dataset, layers: trainLayers, batchSize: batch,
                                                         method: method, maxTextTokens: maxTextTokens,
                                                         maxTotalTokens: maxTotalTokens, progress: progress)
                    }
                    // A client that went away gets no file: nothing half-done is left behind.
                    guard !cancelled.isSet else { throw CancellationError() }
                    guard !shutdown.isSet else { throw DaemonError.shuttingDown }
                    _ = try store.save(vector, as: name, overwrite: overwrite)
                    let listing = store.list().first { $0.name == name }
                    let seconds = monotonicSeconds() - t0
                    cont.yield(.with {
                        if let listing { $0.result.vector = Self.info(listing) }
                        $0.result.seconds = seconds
                        $0.result.warnings = notes + vector.warnings
                        if keepFeatures {
                            $0.result.topFeatures = vector.layers.map { layer in
                                let top = ControlVector.topFeatures(vector.directions[layer] ?? [], count: 10)
                                return .with {
                                    $0.layer = Int32(layer)
                                    $0.index = top.map { UInt32($0.index) }
                                    $0.weight = top.map(\.weight)
                                }
                            }
                        }
                    })
                    cont.finish()
                } catch {
                    cont.finish(throwing: error)
                }
            }
            thread.name = "repengd-train"
            thread.stackSize = 8 << 20
            thread.start()
            try await withRPCCancellationHandler {
                try await withTaskCancellationHandler {
                    for try await ev in events { try await response.write(ev) }
                } onCancel: {
                    cancelled.set()
                }
            } onCancelRPC: {
                cancelled.set()
            }
        }
    }

    /// The SAE folder a Train request names, read; nil without `sae`. The folder must lie in the
    /// configured SAE directory: a client names folders there, never arbitrary paths.
    func saeSet(_ request: Repeng_V1_TrainRequest, host: ModelHost) throws -> SAESet? {
        guard !request.sae.isEmpty else {
            if request.keepFeatures { throw DaemonError.invalidArgument("keep_features is set but sae is not; name an SAE folder") }
            if request.saeRepengPairing { throw DaemonError.invalidArgument("sae_repeng_pairing is set but sae is not; name an SAE folder") }
            return nil
        }
        // Lexically (links are not followed: the directory's owner may link folders into it).
        let rootParts = config.saesDir.split(separator: "/").filter { $0 != "." }
        let root = "/" + rootParts.joined(separator: "/")
        var parts = request.sae.split(separator: "/", omittingEmptySubsequences: true)
        guard request.sae.utf8.count <= 4096, !request.sae.utf8.contains(0), !parts.contains(where: { $0 == ".." }) else {
            throw DaemonError.invalidArgument("SAE folder \(quoted(request.sae)) must name a folder inside the SAE directory (no '..')")
        }
        parts.removeAll { $0 == "." }
        if request.sae.hasPrefix("/") {
            guard parts.starts(with: rootParts) else {
                throw DaemonError.invalidArgument("SAE folder \(quoted(request.sae)) is outside the daemon's SAE directory \(root); put it (or a link to it) there")
            }
            parts.removeFirst(rootParts.count)
        }
        let folder = parts.isEmpty ? root : root + "/" + parts.joined(separator: "/")
        let set = try SAESet.load(folder: folder, pairing: request.saeRepengPairing ? .repeng : .block)
        try set.check(hiddenSize: host.model.config.hiddenSize, blockCount: host.model.config.blockCount)
        return set
    }

    // MARK: Queries

    public func tokenize(request: Repeng_V1_TokenizeRequest, context: ServerContext) async throws -> Repeng_V1_TokenizeResponse {
        try await mapped {
            let host = try registry.host(request.model)
            guard let tok = host.model.tokenizer else { throw ControlError.noTokenizer }
            let ids: [Int32]
            if request.chat {
                ids = try host.chatPrompt([("user", request.text)], format: request.chatFormat).encode(with: tok)
            } else {
                ids = tok.encode(request.text, addSpecial: !request.noSpecial)
            }
            return .with {
                $0.ids = ids
                $0.pieces = ids.map { String(decoding: tok.tokenBytes($0), as: UTF8.self) }
            }
        }
    }

    public func listModels(request: Repeng_V1_ListModelsRequest, context: ServerContext) async throws -> Repeng_V1_ListModelsResponse {
        try await mapped {
            .with {
                $0.models = registry.hosts.map { h in
                    .with {
                        let c = h.model.config
                        $0.name = h.name
                        $0.path = h.path
                        $0.architecture = c.architecture
                        $0.displayName = c.name
                        $0.blockCount = UInt32(c.blockCount)
                        $0.hiddenSize = UInt32(c.hiddenSize)
                        $0.vocabSize = UInt32(c.vocabSize)
                        $0.contextLength = UInt32(c.contextLength)
                        $0.isDefault = h.isDefault
                        $0.controlled = h.currentControl?.prepared != nil
                        $0.weightTypes = h.model.fileWeightTypes.mapValues { UInt32(clamping: $0) }
                        $0.residentBytes = UInt64(clamping: h.model.residentBytes)
                        $0.precision = h.precision.rawValue
                        $0.chatTemplatePresent = h.hasChatTemplate
                    }
                }
            }
        }
    }

    public func listVectors(request: Repeng_V1_ListVectorsRequest, context: ServerContext) async throws -> Repeng_V1_ListVectorsResponse {
        try await mapped {
            .with { $0.vectors = store.list().map(Self.info) }
        }
    }

    public func status(request: Repeng_V1_StatusRequest, context: ServerContext) async throws -> Repeng_V1_StatusResponse {
        try await mapped {
            var queued = 0, active = 0
            for h in registry.hosts {
                let l = h.scheduler.load
                queued += l.queued
                active += l.active
            }
            return .with {
                $0.version = version
                $0.uptimeSeconds = monotonicSeconds() - started
                $0.pid = getpid()
                $0.socket = config.socketPath
                $0.vectorsDir = config.vectorsDir
                $0.stateDir = config.stateDir
                $0.defaultModel = registry.defaultHost.name
                $0.modelCount = UInt32(registry.hosts.count)
                $0.activeGenerations = UInt32(active)
                $0.queuedGenerations = UInt32(queued)
                $0.activeTrainings = UInt32(max(0, counters.activeTrainings.load(ordering: .relaxed)))
                $0.generationsServed = counters.generationsServed.load(ordering: .relaxed)
                let vectors = store.list()
                $0.vectorCount = UInt32(vectors.count)
                $0.vectorErrors = UInt32(vectors.filter { $0.error != nil }.count)
                $0.httpSocket = http.socket
                $0.httpURL = http.url ?? ""
            }
        }
    }
}
