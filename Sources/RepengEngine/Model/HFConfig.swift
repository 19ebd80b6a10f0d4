// config.json of a Hugging Face model folder (transformers PretrainedConfig, v4 and v5 layouts),
// read into the same `ModelConfig` the GGUF path fills.

import Foundation

/// A folder's config.json with typed, checked access. Keys are those transformers writes;
/// `rope_theta` and `rope_scaling` (v4) or `rope_parameters` (v5, per layer type for Gemma-3).
struct HFConfig {
    let object: JSONObject
    let path: String

    /// Largest config.json read (4 MiB; real ones are a few kilobytes).
    static let maxBytes = 4 << 20

    init(path: String) throws {
        let bytes: [UInt8]
        do { bytes = try readSmallFile(path, limit: Self.maxBytes) } catch {
            throw EngineError.badConfig("\(path): \(error.description)")
        }
        let json: JSONValue
        do { json = try JSONReader.parse(bytes) } catch { throw EngineError.badConfig("\(path) is not valid JSON: \(error)") }
        guard var o = json.object else { throw EngineError.badConfig("\(path) is \(json.kind), not a JSON object") }
        // Multimodal checkpoints (Gemma-3 4B and up) nest the language model's settings.
        if let text = o["text_config"]?.object, o["hidden_size"] == nil { o = text }
        object = o
        self.path = path
    }

    init(object: JSONObject, path: String = "config.json") {
        self.object = object
        self.path = path
    }

    func fail(_ key: String, _ what: String) -> EngineError { .badConfig("\(path): \(key) \(what)") }

    var modelType: String {
        get throws {
            guard let t = object["model_type"]?.string else { throw fail("model_type", "is missing or not a string") }
            return t
        }
    }

    /// The value at `key`, nil when absent or null.
    func value(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String) throws -> Int {
        guard let v = try optionalInt(key) else { throw fail(key, "is missing") }
        return v
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw fail(key, "is \(v.kind), not an integer") }
        return i
    }

    func optionalFloat(_ key: String, in o: JSONObject? = nil) throws -> Float? {
        guard let v = (o ?? object)[key], !v.isNull else { return nil }
        guard let d = v.double, d.isFinite else { throw fail(key, "is \(v.kind), not a finite number") }
        return Float(d)
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { throw fail(key, "is \(v.kind), not a boolean") }
        return b
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw fail(key, "is \(v.kind), not a string") }
        return s
    }

    /// `layer_types` ("full_attention" / "sliding_attention" per block), when present.
    func layerTypes(blocks: Int) throws -> [String]? {
        guard let v = value("layer_types") else { return nil }
        guard let a = v.array, a.count == blocks, a.allSatisfy({ $0.string != nil }) else {
            throw fail("layer_types", "is not a list of \(blocks) strings")
        }
        return a.compactMap(\.string)
    }

    /// RoPE settings: v5 `rope_parameters` (optionally keyed by layer type), else v4 top-level
    /// `rope_theta` and `rope_scaling`.
    func rope(layerType: String? = nil) throws -> JSONObject {
        if let p = value("rope_parameters") {
            guard let o = p.object else { throw fail("rope_parameters", "is \(p.kind), not an object") }
            if let layerType, let nested = o[layerType] {
                guard let n = nested.object else { throw fail("rope_parameters.\(layerType)", "is not an object") }
                return n
            }
            return o
        }
        var o = JSONObject()
        if let theta = object["rope_theta"] { o.append("rope_theta", theta) }
        if let s = value("rope_scaling") {
            guard let so = s.object else { throw fail("rope_scaling", "is \(s.kind), not an object") }
            for (k, v) in so.pairs { o.append(k == "type" ? "rope_type" : k, v) }
        }
        if let f = object["partial_rotary_factor"] { o.append("partial_rotary_factor", f) }
        return o
    }
}

extension HFConfig {
    /// The per-frequency divisors of Llama 3 RoPE scaling (`rope_type` "llama3": `factor`,
    /// `low_freq_factor`, `high_freq_factor`, `original_max_position_embeddings`), as llama.cpp
    /// stores them in `rope_freqs.weight` and transformers applies them to the inverse
    /// frequencies: wavelengths shorter than original / high_freq_factor keep their frequency,
    /// longer than original / low_freq_factor are divided by `factor`, and those between are
    /// interpolated. Nil for every other RoPE type.
    func ropeFrequencyFactors(config cfg: ModelConfig) throws -> [Float]? {
        let rope = try rope()
        guard rope["rope_type"]?.string == "llama3" else { return nil }
        func need(_ key: String) throws -> Float {
            guard let v = try optionalFloat(key, in: rope) else { throw fail("rope_scaling.\(key)", "is missing (rope_type llama3)") }
            guard v.isFinite, v > 0 else { throw fail("rope_scaling.\(key)", "must be a positive number") }
            return v
        }
        let factor = try need("factor"), low = try need("low_freq_factor"), high = try need("high_freq_factor")
        let original = try need("original_max_position_embeddings")
        guard high > low else { throw fail("rope_scaling.high_freq_factor", "must be greater than low_freq_factor") }
        let lowWavelength = original / low, highWavelength = original / high
        let base = Double(cfg.ropeBase), d = cfg.ropeDim
        return (0..<(d / 2)).map { i in
            let inverse = 1 / Float(Foundation.pow(base, Double(2 * i) / Double(d)))
            let wavelength = 2 * Float.pi / inverse
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return factor }
            let smooth = (original / wavelength - low) / (high - low)
            return 1 / ((1 - smooth) / factor + smooth)
        }
    }
}

extension ModelConfig {
    /// The keys every family shares (transformers' Llama names), with llama's defaults; the
    /// architecture adjusts the rest and calls `validate()`.
    init(commonHF hf: HFConfig, tiedByDefault: Bool) throws {
        architecture = try hf.modelType
        name = try hf.optionalString("_name_or_path").flatMap { $0.split(separator: "/").last.map(String.init) } ?? architecture
        blockCount = try hf.int("num_hidden_layers")
        hiddenSize = try hf.int("hidden_size")
        feedForwardSize = try hf.int("intermediate_size")
        headCount = try hf.int("num_attention_heads")
        kvHeadCount = try hf.optionalInt("num_key_value_heads") ?? headCount
        guard headCount > 0, hiddenSize > 0, blockCount > 0, blockCount <= 1 << 12 else {
            throw EngineError.badConfig("\(hf.path): num_hidden_layers, num_attention_heads and hidden_size must be positive")
        }
        headDim = try hf.optionalInt("head_dim") ?? hiddenSize / headCount
        vocabSize = try hf.int("vocab_size")
        contextLength = try hf.optionalInt("max_position_embeddings") ?? 2048
        rmsNormEps = try hf.optionalFloat("rms_norm_eps") ?? 1e-6
        let rope = try hf.rope()
        ropeBase = try hf.optionalFloat("rope_theta", in: rope) ?? 10_000
        let partial = try hf.optionalFloat("partial_rotary_factor", in: rope) ?? 1
        guard partial > 0, partial <= 1 else { throw hf.fail("partial_rotary_factor", "must be in (0, 1]") }
        ropeDim = Int((Float(headDim) * partial).rounded(.down))
        ropeLinearFactor = 1
        switch rope["rope_type"]?.string ?? "default" {
        case "default": break
        case "linear": ropeLinearFactor = try hf.optionalFloat("factor", in: rope) ?? 1
        case "llama3": break  // per-frequency factors: HFConfig.ropeFrequencyFactors
        case let other:
            throw EngineError.unsupported("RoPE type '\(quoted(other))' in \(hf.path) (supported: default, linear, llama3)")
        }
        // Hugging Face weights are not permuted: every family rotates the two halves of a head.
        ropeInterleaved = false
        tiedEmbeddings = try hf.optionalBool("tie_word_embeddings") ?? tiedByDefault
        attentionScale = headDim > 0 ? 1 / Float(headDim).squareRoot() : 1
        layerWindows = [Int](repeating: 0, count: blockCount)
        layerRopeBases = [Float](repeating: ropeBase, count: blockCount)
        // Sliding windows where transformers applies them: per `layer_types`, else on every block.
        if let window = try hf.optionalInt("sliding_window"), try hf.optionalBool("use_sliding_window") ?? true {
            guard window > 0 else { throw hf.fail("sliding_window", "must be positive") }
            let types = try hf.layerTypes(blocks: blockCount)
            for b in 0..<blockCount where types == nil || types?[b] == "sliding_attention" { layerWindows[b] = window }
        }
    }
}
