// GPT-2, as transformers' GPT2Model and GPT2LMHeadModel:
//   x = wte[token] + wpe[position]
//   h = x + (c_proj(attention(q, k, v)) + b), q | k | v = c_attn(layernorm₁(x)) + b (one fused tensor)
//   out = h + (c_proj(gelu_tanh(c_fc(layernorm₂(h)) + b)) + b)
//   final layernorm_f; the head is tied to wte.
// No RoPE: positions come from a learned table (`position_embd.weight`, n_positions rows), whose
// length bounds the context. Every norm is a LayerNorm with weight and bias
// (`gpt2.attention.layer_norm_epsilon`). `gelu_new` is GELU's tanh approximation. Attention is
// scaled by 1/√headDim (`scale_attn_weights`); the options `scale_attn_by_inverse_layer_idx` and
// `reorder_and_upcast_attn` are off in the published GPT-2 checkpoints and the GGUF does not
// record them. llama.cpp's converter stores Hugging Face's Conv1D weights ([in, out])
// transposed, as the usual [out, in] matrices.

enum GPT2Architecture: Architecture {
    static let names = ["gpt2"]

    static func config(gguf: GGUFFile, architecture arch: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: arch)
        c.rmsNormEps = try gguf.optionalFloat("\(arch).attention.layer_norm_epsilon") ?? 1e-5
        c.normalization = .layer
        c.positionEncoding = .learned
        c.gatedMLP = false
        c.activation = .geluTanh
        let name = "position_embd.weight"
        guard let positions = gguf.tensor(named: name) else { throw EngineError.missingTensor(name) }
        guard positions.dims.count == 2, positions.dims[0] == c.hiddenSize, positions.dims[1] > 0 else {
            throw EngineError.tensorShape(name: name, expected: [c.hiddenSize, c.contextLength], found: positions.dims)
        }
        c.contextLength = min(c.contextLength, positions.dims[1])
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        let p = "blk.\(i)."
        var t = BlockTensors.gguf(i)
        t.attnNormBias = TensorRef(name: p + "attn_norm.bias")
        t.qkv = [TensorRef(name: p + "attn_qkv.weight")]
        t.qkvBias = TensorRef(name: p + "attn_qkv.bias")
        t.attnOutBias = TensorRef(name: p + "attn_output.bias")
        t.ffnNormBias = TensorRef(name: p + "ffn_norm.bias")
        t.gateUp = [TensorRef(name: p + "ffn_up.weight")]
        t.gateUpBias = TensorRef(name: p + "ffn_up.bias")
        t.downBias = TensorRef(name: p + "ffn_down.bias")
        return t
    }

    static func globalTensors(config: ModelConfig) -> GlobalTensors {
        var g = GlobalTensors.gguf
        g.positionEmbedding = TensorRef(name: "position_embd.weight")
        g.outputNormBias = TensorRef(name: "output_norm.bias")
        return g
    }
}

// Hugging Face folders: `n_embd`, `n_layer`, `n_head`, `n_inner` (null: 4 × n_embd),
// `n_positions`, `layer_norm_epsilon`; tensors `h.i.ln_1`, `h.i.attn.c_attn` (fused q | k | v),
// `h.i.attn.c_proj`, `h.i.ln_2`, `h.i.mlp.c_fc`, `h.i.mlp.c_proj`, `wte`, `wpe`, `ln_f`, under
// `transformer.` in GPT2LMHeadModel checkpoints and without it in GPT2Model ones (the loader
// finds the prefix). Conv1D weights are [in, out] and are transposed at load.

extension GPT2Architecture {
    static let hfModelTypes = ["gpt2"]

    static func config(hf: HFConfig) throws -> ModelConfig {
        let dim = try hf.int("n_embd"), heads = try hf.int("n_head")
        var c = try ModelConfig(
            architecture: "gpt2", name: hf.optionalString("_name_or_path") ?? "gpt2", blockCount: hf.int("n_layer"),
            hiddenSize: dim, feedForwardSize: hf.optionalInt("n_inner") ?? 4 * dim, headCount: heads, kvHeadCount: heads,
            vocabSize: hf.int("vocab_size"), contextLength: hf.int("n_positions"),
            rmsNormEps: hf.optionalFloat("layer_norm_epsilon") ?? 1e-5, ropeInterleaved: false,
            tiedEmbeddings: hf.optionalBool("tie_word_embeddings") ?? true)
        for (key, published) in [("scale_attn_by_inverse_layer_idx", false), ("reorder_and_upcast_attn", false),
                                 ("scale_attn_weights", true)] {
            let value = try hf.optionalBool(key) ?? published
            guard value == published else { throw EngineError.unsupported("GPT-2 with \(key) = \(value) (\(hf.path))") }
        }
        if let act = try hf.optionalString("activation_function"), act != "gelu_new", act != "gelu_pytorch_tanh" {
            throw EngineError.unsupported("GPT-2 activation '\(quoted(act))' (only gelu_new)")
        }
        c.normalization = .layer
        c.positionEncoding = .learned
        c.gatedMLP = false
        c.activation = .geluTanh
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        let p = "h.\(i)."
        func ref(_ n: String, transposed: Bool = false) -> TensorRef { TensorRef(name: p + n, transposed: transposed) }
        var t = BlockTensors(attnNorm: ref("ln_1.weight"), qkv: [ref("attn.c_attn.weight", transposed: true)],
                             attnOut: ref("attn.c_proj.weight", transposed: true), ffnNorm: ref("ln_2.weight"),
                             gateUp: [ref("mlp.c_fc.weight", transposed: true)], down: ref("mlp.c_proj.weight", transposed: true))
        t.attnNormBias = ref("ln_1.bias")
        t.qkvBias = ref("attn.c_attn.bias")
        t.attnOutBias = ref("attn.c_proj.bias")
        t.ffnNormBias = ref("ln_2.bias")
        t.gateUpBias = ref("mlp.c_fc.bias")
        t.downBias = ref("mlp.c_proj.bias")
        return t
    }

    static func hfGlobalTensors(config: ModelConfig) -> GlobalTensors {
        GlobalTensors(tokenEmbedding: TensorRef(name: "wte.weight"), positionEmbedding: TensorRef(name: "wpe.weight"),
                      outputNorm: TensorRef(name: "ln_f.weight"), outputNormBias: TensorRef(name: "ln_f.bias"),
                      output: TensorRef(name: "lm_head.weight"))
    }
}
