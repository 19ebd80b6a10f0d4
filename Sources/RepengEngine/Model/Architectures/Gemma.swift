// Gemma-3 (text decoder), as transformers' Gemma3TextModel and llama.cpp's gemma3 graph:
//   x = embed · √hidden
//   h = x + postnorm₁(o(attention(rope(qnorm(q)), rope(knorm(k)), v))) of prenorm₁(x)
//   out = h + postnorm₂(down(gelu_tanh(gate)·up)) of prenorm₂(h)
// Every norm is an RMSNorm; Hugging Face's weights are offsets (x·(1 + w)), and llama.cpp's
// converter stores 1 + w in the GGUF, so the file's weights multiply directly.
//
// Sliding-window attention: five local layers, then one global (layers 5, 11, 17, … attend to
// everything), `gemma3.attention.sliding_window` (512) positions back on the local ones.
// RoPE: NeoX layout; base `gemma3.rope.freq_base` (1,000,000) on global layers, 10,000 on local
// ones. The pattern and the local base are not in the GGUF: both are the published Gemma-3
// defaults (transformers Gemma3TextConfig: sliding_window_pattern = 6, rope_local_base_freq =
// 10000.0; llama.cpp llama-model.cpp LLM_ARCH_GEMMA3: set_swa_pattern(6),
// rope_freq_base_train_swa = 10000). Attention scale: query_pre_attn_scalar^-½, which the
// published configs set to the head size (256), so 1/√headDim (llama.cpp uses the same).
// No logit or attention soft-capping in Gemma-3.

enum Gemma3Architecture: Architecture {
    static let names = ["gemma3"]

    /// One global layer after every five local ones.
    static let slidingWindowPattern = 6
    /// RoPE base of the local (sliding-window) layers.
    static let localRopeBase: Float = 10_000

    static func config(gguf: GGUFFile, architecture arch: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: arch)
        c.rmsNormEps = try gguf.optionalFloat("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-6
        c.ropeBase = try gguf.optionalFloat("\(arch).rope.freq_base") ?? 1_000_000
        c.ropeInterleaved = false
        c.qkNorm = true
        c.postNorms = true
        c.activation = .geluTanh
        c.embeddingScale = Float(c.hiddenSize).squareRoot()
        let window = try gguf.optionalInt("\(arch).attention.sliding_window") ?? 0
        guard window >= 0 else { throw EngineError.badConfig("\(arch).attention.sliding_window = \(window) is negative") }
        for b in 0..<c.blockCount {
            let global = (b + 1) % slidingWindowPattern == 0
            c.layerWindows[b] = global ? 0 : window
            c.layerRopeBases[b] = global ? c.ropeBase : localRopeBase
        }
        // Linear RoPE scaling (larger Gemma-3 models) applies to the global layers only.
        if c.ropeLinearFactor != 1 {
            throw EngineError.unsupported("RoPE scaling on a gemma3 file (only the global layers are scaled; not implemented)")
        }
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.gguf(i)
        t.addQKNorm(i)
        t.postAttnNorm = TensorRef(name: "blk.\(i).post_attention_norm.weight")
        t.postFFNNorm = TensorRef(name: "blk.\(i).post_ffw_norm.weight")
        return t
    }
}

// Gemma-2, as transformers' Gemma2Model and llama.cpp's gemma2 graph: Gemma-3's block without the
// q/k norms, with soft-capping of the attention scores (`gemma2.attn_logit_softcapping`,
// published 50) and of the output logits (`gemma2.final_logit_softcapping`, published 30), each
// x → cap · tanh(x / cap). Sliding-window layers alternate with global ones, the even blocks
// sliding (transformers Gemma2Config.layer_types; llama.cpp LLM_ARCH_GEMMA2 set_swa_pattern(2)),
// `gemma2.attention.sliding_window` (4096) positions; one RoPE base (10,000) for every block.
// Attention scale query_pre_attn_scalar^-½, which the GGUF does not carry: the published 2B and 9B
// configs set it to the head size (256), the 27B one (46 blocks) to hidden / heads (144), as
// llama.cpp also chooses by model size.

enum Gemma2Architecture: Architecture {
    static let names = ["gemma2"]

    /// Blocks of the published 27B model, whose attention scale is (hidden / heads)^-½.
    static let blocksOf27B = 46

    static func config(gguf: GGUFFile, architecture arch: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: arch)
        c.rmsNormEps = try gguf.optionalFloat("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-6
        c.ropeInterleaved = false
        c.postNorms = true
        c.activation = .geluTanh
        c.embeddingScale = Float(c.hiddenSize).squareRoot()
        c.attentionSoftcap = try gguf.optionalFloat("\(arch).attn_logit_softcapping") ?? 50
        c.logitSoftcap = try gguf.optionalFloat("\(arch).final_logit_softcapping") ?? 30
        if c.blockCount == blocksOf27B { c.attentionScale = 1 / Float(c.hiddenSize / c.headCount).squareRoot() }
        let window = try gguf.optionalInt("\(arch).attention.sliding_window") ?? 0
        guard window >= 0 else { throw EngineError.badConfig("\(arch).attention.sliding_window = \(window) is negative") }
        for b in 0..<c.blockCount { c.layerWindows[b] = b % 2 == 0 ? window : 0 }
        if c.ropeLinearFactor != 1 { throw EngineError.unsupported("RoPE scaling on a gemma2 file") }
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.gguf(i)
        t.postAttnNorm = TensorRef(name: "blk.\(i).post_attention_norm.weight")
        t.postFFNNorm = TensorRef(name: "blk.\(i).post_ffw_norm.weight")
        return t
    }
}

// Hugging Face folders of both generations: RMSNorm weights stored as offsets (x · (1 + w)),
// `post_attention_layernorm` is the norm after attention (Llama's name for the MLP's pre-norm),
// `pre_feedforward_layernorm` and `post_feedforward_layernorm` wrap the MLP. Attention scale
// `query_pre_attn_scalar`^-½; soft-caps from `attn_logit_softcapping` / `final_logit_softcapping`
// (null: none); windows from `layer_types` (v5) or the generation's pattern (v4 configs).

extension Gemma3Architecture {
    static let hfModelTypes = ["gemma3_text", "gemma3"]

    static func config(hf: HFConfig) throws -> ModelConfig {
        var c = try gemmaHFConfig(hf, pattern: slidingWindowPattern)
        c.qkNorm = true
        // v5: rope_parameters per layer type; v4: rope_theta (global) and rope_local_base_freq.
        let global = try hf.rope(layerType: "full_attention"), local = try hf.rope(layerType: "sliding_attention")
        for o in [global, local] where (o["rope_type"]?.string ?? "default") != "default" {
            throw EngineError.unsupported("RoPE scaling on a gemma3 folder (\(hf.path); only the global layers are scaled; not implemented)")
        }
        let globalBase = try hf.optionalFloat("rope_theta", in: global) ?? 1_000_000
        let localBase = try hf.optionalFloat("rope_theta", in: local) ?? hf.optionalFloat("rope_local_base_freq") ?? localRopeBase
        c.ropeBase = globalBase
        for b in 0..<c.blockCount { c.layerRopeBases[b] = c.layerWindows[b] > 0 ? localBase : globalBase }
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = gemmaHFBlock(i)
        t.addHFQKNorm(i, plusOne: true)
        return t
    }

    static func hfGlobalTensors(config: ModelConfig) -> GlobalTensors { gemmaHFGlobals }
}

extension Gemma2Architecture {
    static let hfModelTypes = ["gemma2"]

    static func config(hf: HFConfig) throws -> ModelConfig {
        var c = try gemmaHFConfig(hf, pattern: 2)
        c.attentionSoftcap = try hf.optionalFloat("attn_logit_softcapping") ?? 0
        c.logitSoftcap = try hf.optionalFloat("final_logit_softcapping") ?? 0
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors { gemmaHFBlock(i) }

    static func hfGlobalTensors(config: ModelConfig) -> GlobalTensors { gemmaHFGlobals }
}

/// What both Gemma generations' config.json files share. Without `layer_types` (v4 files),
/// block b is global when (b + 1) is a multiple of `sliding_window_pattern` (`pattern`).
private func gemmaHFConfig(_ hf: HFConfig, pattern defaultPattern: Int) throws -> ModelConfig {
    var c = try ModelConfig(commonHF: hf, tiedByDefault: true)
    c.postNorms = true
    c.activation = .geluTanh
    c.embeddingScale = Float(c.hiddenSize).squareRoot()
    let scalar = try hf.optionalFloat("query_pre_attn_scalar") ?? Float(c.headDim)
    guard scalar > 0 else { throw hf.fail("query_pre_attn_scalar", "must be positive") }
    c.attentionScale = 1 / scalar.squareRoot()
    if try hf.layerTypes(blocks: c.blockCount) == nil, let window = try hf.optionalInt("sliding_window") {
        let pattern = try hf.optionalInt("sliding_window_pattern") ?? defaultPattern
        guard pattern > 0 else { throw hf.fail("sliding_window_pattern", "must be positive") }
        for b in 0..<c.blockCount { c.layerWindows[b] = (b + 1) % pattern == 0 ? 0 : window }
    }
    return c
}

private func gemmaHFBlock(_ i: Int) -> BlockTensors {
    let p = "model.layers.\(i)."
    var t = BlockTensors.hf(i)
    t.attnNorm.plusOne = true
    t.postAttnNorm = TensorRef(name: p + "post_attention_layernorm.weight", plusOne: true)
    t.ffnNorm = TensorRef(name: p + "pre_feedforward_layernorm.weight", plusOne: true)
    t.postFFNNorm = TensorRef(name: p + "post_feedforward_layernorm.weight", plusOne: true)
    return t
}

private let gemmaHFGlobals: GlobalTensors = {
    var g = GlobalTensors.hf
    g.outputNorm.plusOne = true
    return g
}()
