// Fuzz target: the daemon's request messages as they arrive over gRPC (SwiftProtobuf binary
// decoding of every repeng.v1 request and the health check), then what a request reaches
// through public API without a running daemon:
// - vector and model names (`VectorName.isValid`), chat rendering (`ChatLayout`, `ChatFormat`),
//   tokenization of prompts, chats, Tokenize texts and training texts (a small built-in
//   byte-level BPE vocabulary, plus the tokenizers of the model files in $REPENG_FUZZ_MODELS,
//   which scripts/fuzz.sh points at .cache/models);
// - sampling options (`SamplingParameters.validate`, then a few `Sampler` steps);
// - control specs: the `ControlSpec` JSON of the control state file, each term's vector turned
//   into steering (`ControlVector.steering(for:coefficient:layers:normalize:)`) on a tiny
//   synthetic model, `prepareSteering` and one steered forward pass;
// - training layer ids (`LanguageModel.blockIndex`) and error mapping (`rpcError`).
// The input is also read as text for the client-side layer-spec syntax (`LayerSpec.parse`).
import Foundation
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import SwiftProtobuf

// MARK: - Fixtures built once

/// Tokenizers requests are encoded with: the built-in one, then those of the model files found.
nonisolated(unsafe) var tokenizers: [any Tokenizer] = []
/// A 4-block model with hidden size 8 and zero weights, for steering.
nonisolated(unsafe) var model: (any LanguageModel)!
/// Vectors by name, as a vector directory would hold them.
nonisolated(unsafe) var vectors: [String: ControlVector] = [:]
let workspace = ForwardWorkspace()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzRequestInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    do {
        let builtin = try makeTokenizer(builtinVocabulary())
        tokenizers = [builtin]
        model = try syntheticModel(tokenizer: builtin)
    } catch {
        fatalError("fuzz-request: cannot build the synthetic fixtures: \(error)")
    }
    vectors = syntheticVectors()
    if let dir = ProcessInfo.processInfo.environment["REPENG_FUZZ_MODELS"], !dir.isEmpty {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".gguf") }.sorted()
        for f in files.prefix(4) {
            do {
                tokenizers.append(try makeTokenizer(gguf: GGUFFile(path: dir + "/" + f)))
                FileHandle.standardError.write(Data("fuzz-request: tokenizer of \(f)\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("fuzz-request: skipping \(f): \(error)\n".utf8))
            }
        }
    }
    return 0
}

/// GPT-2's byte alphabet: the character standing for each byte.
func byteCharacter(_ b: Int) -> Character {
    let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    if printable { return Character(Unicode.Scalar(UInt8(b))) }
    var extra = 0
    for c in 0..<b where !((0x21...0x7E).contains(c) || (0xA1...0xAC).contains(c) || (0xAE...0xFF).contains(c)) { extra += 1 }
    return Character(Unicode.Scalar(UInt32(256 + extra))!)
}

/// A byte-level BPE vocabulary with every byte, a few merges and ChatML special tokens.
func builtinVocabulary() -> TokenizerVocabulary {
    let special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    let bytes = (0..<256).map { String(byteCharacter($0)) }
    let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "Ċ Ċ", "Ġ Ġ"]
    let merged = merges.map { $0.replacingOccurrences(of: " ", with: "") }
    let tokens = special + bytes + merged
    let types = [Int32](repeating: GGUFTokenType.control, count: special.count)
        + [Int32](repeating: GGUFTokenType.normal, count: bytes.count + merged.count)
    return TokenizerVocabulary(model: "gpt2", pre: "smollm", architecture: "llama", tokens: tokens, tokenTypes: types,
                               merges: merges, bosID: 1, eosID: 2, addBOS: false,
                               chatTemplate: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
}

func syntheticModel(tokenizer: any Tokenizer) throws -> any LanguageModel {
    let config = try ModelConfig(blockCount: 4, hiddenSize: 8, feedForwardSize: 16, headCount: 2, kvHeadCount: 2,
                                 vocabSize: tokenizer.vocabularySize, contextLength: 64)
    let d = config.hiddenSize, f = config.feedForwardSize, v = config.vocabSize
    var w: [String: [Float]] = [
        "token_embd.weight": (0..<(v * d)).map { Float(($0 * 7) % 13) / 13 - 0.5 },
        "output_norm.weight": [Float](repeating: 1, count: d),
    ]
    for i in 0..<config.blockCount {
        let p = "blk.\(i)."
        w[p + "attn_norm.weight"] = [Float](repeating: 1, count: d)
        w[p + "ffn_norm.weight"] = [Float](repeating: 1, count: d)
        for name in ["attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"] {
            w[p + name] = [Float](repeating: 0.01, count: d * d)
        }
        for name in ["ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"] {
            w[p + name] = [Float](repeating: 0.01, count: d * f)
        }
    }
    return try DecoderModel(config: config, weights: w, tokenizer: tokenizer)
}

func syntheticVectors() -> [String: ControlVector] {
    func dir(_ seed: Int, _ n: Int = 8) -> [Float] { (0..<n).map { Float(($0 + seed) % 5) - 2 } }
    return [
        "happy": ControlVector(modelType: "llama", directions: [1: dir(1), 2: dir(2), 3: dir(3)]),
        "sad": ControlVector(modelType: "llama", directions: [0: dir(4), 1: dir(5), 2: dir(6), 3: dir(7)]),
        "calm": ControlVector(modelType: "qwen2", directions: [2: dir(8)], warnings: ["file has direction.0"]),
        "wide": ControlVector(modelType: "llama", directions: [1: dir(9, 16)]),
        "huge": ControlVector(modelType: "llama", directions: [1: [Float](repeating: 3e38, count: 8)]),
        "deep": ControlVector(modelType: "llama", directions: [1: dir(1), 40: dir(2)]),
    ]
}

// MARK: - One input

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if size <= 512, let text = String(validating: bytes, as: UTF8.self) { checkText(text) }

    if let r: Repeng_V1_GenerateRequest = decode(bytes) { generate(r) }
    if let r: Repeng_V1_SetControlRequest = decode(bytes) {
        checkName(r.model)
        steer(r.control)
    }
    if let r: Repeng_V1_TrainRequest = decode(bytes) { train(r) }
    if let r: Repeng_V1_TokenizeRequest = decode(bytes) {
        checkName(r.model)
        for tok in tokenizers { tokenize(tok, r.text, addSpecial: !r.noSpecial) }
    }
    if let r: Repeng_V1_GetControlRequest = decode(bytes) { checkName(r.model) }
    if let r: Repeng_V1_ResetRequest = decode(bytes) { checkName(r.model) }
    let _: Repeng_V1_ListModelsRequest? = decode(bytes)
    let _: Repeng_V1_ListVectorsRequest? = decode(bytes)
    let _: Repeng_V1_StatusRequest? = decode(bytes)
    let _: Grpc_Health_V1_HealthCheckRequest? = decode(bytes)
    return 0
}

/// Decodes as the gRPC server does; re-encoding a decoded message is stable.
func decode<M: SwiftProtobuf.Message>(_ bytes: [UInt8]) -> M? {
    guard let m = try? M(serializedBytes: bytes) else { return nil }
    do {
        let first: [UInt8] = try m.serializedBytes()
        let again = try M(serializedBytes: first)
        let second: [UInt8] = try again.serializedBytes()
        precondition(first == second, "\(M.protoMessageName): re-encoding a decoded message is not stable")
    } catch {
        preconditionFailure("\(M.protoMessageName): a decoded message does not encode and decode again: \(error)")
    }
    _ = m.textFormatString()
    return m
}

func checkName(_ name: String) {
    let valid = VectorName.isValid(name)
    if valid {
        precondition(!name.contains("/") && name != "." && name != ".." && (1...64).contains(name.utf8.count))
    }
}

func checkText(_ s: String) {
    checkName(s)
    if let layers = try? LayerSpec.parse(s) {
        precondition(!layers.isEmpty && layers.count <= LayerSpec.maxLayers && Set(layers).count == layers.count)
    }
    _ = try? DaemonConfig.parseModelFlag(s)
}

func generate(_ r: Repeng_V1_GenerateRequest) {
    checkName(r.model)
    for tok in tokenizers {
        let text: String
        switch r.input {
        case .prompt(let p)?:
            text = p
        case .chat(let chat)?:
            do {
                text = try ChatLayout(format: ChatFormat.detect(tokenizer: tok))
                    .prompt(chat.messages.map { ChatMessage(role: $0.role, content: $0.content) }).text
            } catch {
                _ = rpcError(error)
                continue
            }
        case nil:
            continue
        }
        tokenize(tok, text, addSpecial: true)
    }
    for s in r.stop.prefix(32) { _ = s.count }
    if r.hasSampling { sample(r.sampling) }
    if r.hasControl { steer(r.control) }
}

func tokenize(_ tok: any Tokenizer, _ text: String, addSpecial: Bool) {
    let ids = tok.encode(text, addSpecial: addSpecial)
    let n = tok.vocabularySize
    precondition(ids.allSatisfy { $0 >= 0 && Int($0) < n }, "encode produced an id outside the vocabulary")
    _ = ids.map { String(decoding: tok.tokenBytes($0), as: UTF8.self) }
    _ = tok.decode(ids, skipSpecial: true)
    var stream = IncrementalDecoder(tokenizer: tok, skipSpecial: true)
    for id in ids.prefix(256) { _ = stream.append(id) }
    _ = stream.flush()
}

func sample(_ o: Repeng_V1_SamplingOptions) {
    var p = SamplingParameters.greedy
    if o.hasTemperature { p.temperature = o.temperature }
    if o.hasTopK { p.topK = Int(o.topK) }
    if o.hasTopP { p.topP = o.topP }
    if o.hasMinP { p.minP = o.minP }
    if o.hasRepetitionPenalty { p.repetitionPenalty = o.repetitionPenalty }
    if o.hasSeed { p.seed = o.seed }
    do { try p.validate() } catch {
        _ = rpcError(error)
        return
    }
    let vocab = 300
    var sampler = Sampler(parameters: p, vocabSize: vocab)
    var rng = SeededGenerator(seed: p.seed ^ 0x5eed)
    var logits = (0..<vocab).map { _ in Float(rng.nextUnit() * 20 - 10) }
    logits[0] = -.infinity
    logits[1] = 30
    sampler.observe([1, 5, 299, -1, 300, 1])
    for _ in 0..<3 {
        var step = logits
        let id = step.withUnsafeMutableBufferPointer { sampler.sample($0.baseAddress!) }
        precondition(id >= 0 && Int(id) < vocab, "sampler chose \(id) outside the vocabulary")
        sampler.observe([id])
    }
}

func steer(_ c: Repeng_V1_Control) {
    let spec = ControlSpec(terms: c.terms.map { .init(vector: $0.vector, coefficient: $0.coefficient) },
                           layers: c.layers.isEmpty ? nil : c.layers.map(Int.init), normalize: c.normalize)
    // The control state file stores specs as JSON.
    if let json = try? JSONEncoder().encode(spec) {
        guard let back = try? JSONDecoder().decode(ControlSpec.self, from: json) else {
            preconditionFailure("ControlSpec does not decode its own JSON: \(String(decoding: json, as: UTF8.self))")
        }
        precondition(back == spec || spec.terms.contains { $0.coefficient.isNaN }, "ControlSpec JSON round trip changed it")
    }
    guard let model else { return }
    let L = model.config.blockCount, d = model.config.hiddenSize
    var sum: [Int: [Float]] = [:]
    for term in spec.terms.prefix(16) {
        checkName(term.vector)
        guard VectorName.isValid(term.vector) else { continue }
        let keys = vectors.keys.sorted()
        let vector = vectors[term.vector] ?? vectors[keys[term.vector.utf8.count % keys.count]]!
        _ = vector.compatibilityWarnings(for: model)
        let s: Steering
        do {
            s = try vector.steering(for: model, coefficient: term.coefficient, layers: spec.layers, normalize: spec.normalize)
        } catch {
            _ = rpcError(error)
            continue
        }
        for (layer, v) in s.vectors {
            precondition(layer >= 0 && layer < L && v.count == d && v.allSatisfy(\.isFinite), "steering for a bad layer or size")
            if var acc = sum[layer] {
                for i in acc.indices { acc[i] += v[i] }
                sum[layer] = acc
            } else {
                sum[layer] = v
            }
        }
    }
    let prepared: PreparedSteering
    do { prepared = try model.prepareSteering(Steering(vectors: sum, normalize: spec.normalize)) } catch {
        _ = rpcError(error)
        return
    }
    precondition(prepared.steeredBlocks.allSatisfy { $0 >= 0 && $0 < L })
    let out = try? model.forward([SequenceInput(tokens: [1, 4, 7], steering: prepared)], workspace: workspace)
    if let out { precondition(out.count == 1 && out[0].logits.count == model.config.vocabSize) }
}

func train(_ r: Repeng_V1_TrainRequest) {
    checkName(r.model)
    checkName(r.name)
    guard let model else { return }
    for l in r.layers.prefix(4096) {
        if let b = try? model.blockIndex(Int(l)) { precondition(b >= 0 && b < model.config.blockCount) }
    }
    switch r.method {
    case .unspecified, .pcaDiff, .pcaCenter, .meanDiff: break
    case .UNRECOGNIZED(let v): precondition(v < 0 || v > 3)
    }
    let dataset = r.dataset.prefix(64).map { DatasetEntry(positive: $0.positive, negative: $0.negative) }
    for e in dataset.prefix(4) {
        for tok in tokenizers {
            tokenize(tok, e.positive, addSpecial: true)
            tokenize(tok, e.negative, addSpecial: true)
        }
    }
    if let json = try? encodeDataset(dataset), !dataset.isEmpty, dataset.allSatisfy({ !$0.positive.isEmpty && !$0.negative.isEmpty }) {
        guard let back = try? parseDataset(json) else { preconditionFailure("parseDataset rejects encodeDataset's output") }
        precondition(back == dataset)
    }
}
