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
