// Text generation on a resident model: per-sequence state (cache, sampler, streaming decoder,
import Foundation
// stop rules) and a single-sequence loop. Batched schedulers drive many states with decodeStep.

/// Why a generation ended.
public enum FinishReason: String, Sendable {
    /// The model produced an end-of-sequence token.
    case eos
    /// `maxTokens` were generated.
    case length
    /// A stop string appeared in the output.
    case stop
    /// The context window is full.
    case contextFull = "context_full"
    /// The caller cancelled.
    case cancelled
}

/// What to generate.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation stops when the decoded text contains one of these (the stop string itself
    /// is not returned).
    public var stopStrings: [String]
    /// Tokens that end generation; nil uses the tokenizer's EOS.
    public var stopTokens: Set<Int32>?
    public var steering: PreparedSteering?
    /// Prompt tokens per forward pass while prefilling (0: the whole prompt in one pass). A
    /// scheduler runs other sequences' decode steps between chunks, so a long prompt does not
    /// hold up everyone else. The chunking depends only on the prompt, so a sequence's text is
    /// the same whatever it is batched with.
    public var prefillChunk: Int

    /// Prompt tokens per prefill pass unless a request says otherwise.
    public static let defaultPrefillChunk = 128

    public init(prompt: [Int32], maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
                stopStrings: [String] = [], stopTokens: Set<Int32>? = nil, steering: PreparedSteering? = nil,
                prefillChunk: Int = GenerationRequest.defaultPrefillChunk) {
        self.prefillChunk = prefillChunk
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.stopTokens = stopTokens
        self.steering = steering
    }
}

/// One step's result.
public struct GenerationEvent: Sendable {
    /// The token chosen (nil when the step ended on a stop string or limit with no new token).
    public var token: Int32?
    /// Newly completed text (never half a UTF-8 character).
    public var text: String
    /// Set on the last event.
    public var finish: FinishReason?
}

/// State of one generating sequence: its cache, sampler and text bookkeeping.
public final class GenerationState: @unchecked Sendable {
    public let request: GenerationRequest
    public let cache: KVCache
    public private(set) var generated: [Int32] = []
    public private(set) var finish: FinishReason?
    /// The token to run next (the last sampled one), nil before prefill.
    public private(set) var pending: Int32?
    /// Prompt tokens already run.
    public private(set) var prefilled = 0
    private var sampler: Sampler
    private var decoder: IncrementalDecoder?
    private var text = ""
    private var emitted = 0
    private let stopTokens: Set<Int32>
    private let maxStop: Int
    private let contextLength: Int

    public init(model: any LanguageModel, request: GenerationRequest) throws {
        try request.sampling.validate()
        guard !request.prompt.isEmpty else { throw EngineError.emptySequence }
        guard request.maxTokens >= 0 else { throw EngineError.invalidArgument("max_tokens must not be negative") }
        guard request.prefillChunk >= 0 else { throw EngineError.invalidArgument("prefill chunk must not be negative") }
        self.request = request
        // Room for the prompt and a first stretch of output; the cache doubles as it fills, so a
        // large max_tokens costs memory only when the tokens are generated.
        cache = model.makeCache(capacity: min(request.prompt.count + min(request.maxTokens, 64) + 1, model.config.contextLength))
        sampler = Sampler(parameters: request.sampling, vocabSize: model.config.vocabSize)
        sampler.observe(request.prompt)
        if let tok = model.tokenizer { decoder = IncrementalDecoder(tokenizer: tok, skipSpecial: true) }
        if let s = request.stopTokens { stopTokens = s } else if let e = model.tokenizer?.eosID { stopTokens = [e] } else { stopTokens = [] }
        maxStop = request.stopStrings.map { $0.count }.max() ?? 0
        contextLength = model.config.contextLength
    }

    /// The tokens to feed on the next forward: the prompt (a chunk at a time), then the last
    /// sampled token.
    public var nextInput: [Int32] {
        if let p = pending { return [p] }
        let end = promptChunkEnd
        return prefilled == 0 && end == request.prompt.count ? request.prompt : Array(request.prompt[prefilled..<end])
    }

    /// Whether running `nextInput` completes the prompt, so that its last position's logits
    /// give the next token (otherwise the pass needs no logits).
    public var nextInputNeedsLogits: Bool { pending != nil || promptChunkEnd == request.prompt.count }

    /// Whether prompt tokens remain to be run.
    public var isPrefilling: Bool { pending == nil }

    /// Prompt tokens not run yet.
    public var remainingPrompt: Int { pending == nil ? request.prompt.count - prefilled : 0 }

    private var promptChunkEnd: Int {
        let n = request.prompt.count, c = request.prefillChunk
        return c <= 0 ? n : min(n, prefilled + c)
    }

    /// Records that `nextInput` ran. Returns true when its logits are to be passed to
    /// `accept(logits:)`, false after a prompt chunk that leaves more of the prompt to run.
    @discardableResult
    public func ran() -> Bool {
        guard pending == nil else { return true }
        prefilled = promptChunkEnd
        return prefilled == request.prompt.count
    }

    /// Marks the sequence as cancelled.
    public func cancel() { if finish == nil { finish = .cancelled } }

    /// Consumes the logits of the last position after running `nextInput`.
    public func accept(logits: UnsafeMutablePointer<Float>) -> GenerationEvent {
        if let f = finish { return GenerationEvent(token: nil, text: "", finish: f) }
        if request.maxTokens == 0 { return end(.length, token: nil, piece: "") }
        let t = sampler.sample(logits)
        generated.append(t)
        sampler.observe(CollectionOfOne(t))
        pending = t
        if stopTokens.contains(t) { return end(.eos, token: t, piece: flushText()) }
        var piece = decoder?.append(t) ?? ""
        if maxStop > 0 {
            text += piece
            if let r = request.stopStrings.compactMap({ text.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                let out = String(text[text.index(text.startIndex, offsetBy: emitted)..<r.lowerBound])
                return end(.stop, token: t, piece: out)
            }
            // Hold back text that could be the start of a stop string.
            let safe = max(emitted, text.count - (maxStop - 1))
            piece = String(text[text.index(text.startIndex, offsetBy: emitted)..<text.index(text.startIndex, offsetBy: safe)])
            emitted = safe
        }
        if generated.count >= request.maxTokens { return end(.length, token: t, piece: piece + flushText()) }
        if cache.length + 1 >= contextLength { return end(.contextFull, token: t, piece: piece + flushText()) }
        return GenerationEvent(token: t, text: piece, finish: nil)
    }

    private func flushText() -> String {
        let rest = decoder?.flush() ?? ""
        if maxStop > 0 {
            text += rest
            let out = String(text[text.index(text.startIndex, offsetBy: emitted)...])
            emitted = text.count
            return out
        }
        return rest
    }

    private func end(_ reason: FinishReason, token: Int32?, piece: String) -> GenerationEvent {
        finish = reason
        return GenerationEvent(token: token, text: piece, finish: reason)
    }
}

extension LanguageModel {
    /// Generates for one sequence, calling `onEvent` for every step; return false from it to
    /// cancel. Returns the generated token ids.
    @discardableResult
    public func generate(
        _ request: GenerationRequest, workspace: ForwardWorkspace = ForwardWorkspace(),
        onEvent: (GenerationEvent) -> Bool = { _ in true }
    ) throws -> (tokens: [Int32], finish: FinishReason) {
        let state = try GenerationState(model: self, request: request)
        let logits = FloatBuffer(count: config.vocabSize)
        while state.finish == nil {
            let input = [SequenceInput(tokens: state.nextInput, cache: state.cache, steering: request.steering)]
            if state.nextInputNeedsLogits {
                try decodeStep(input, workspace: workspace, logits: logits.pointer)
            } else {
                _ = try forward(input, options: ForwardOptions(logits: .none), workspace: workspace)
            }
            guard state.ran() else { continue }
            let ev = state.accept(logits: logits.pointer)
            if !onEvent(ev) { state.cancel() }
        }
        return (state.generated, state.finish ?? .length)
    }
}
