// Phi-3 (and Phi-3.5 mini), as transformers' Phi3Model: the llama block with the q, k and v
// projections in one tensor (`attn_qkv`, rows q | k | v) and the gate and up projections in one
// (`ffn_up`, rows gate | up), NeoX-style RoPE (llama.cpp does not permute q/k for phi3).
// The long-context variants' per-frequency RoPE factors (`rope_factors_long/short`, "longrope")
// are not implemented and such files are refused. Phi-3's sliding window is not applied: the
// converter writes `phi3.attention.sliding_window` = 0 for configs without one, and llama.cpp
// runs phi3 with full attention.

enum Phi3Architecture: Architecture {
    static let names = ["phi3"]

    static func config(gguf: GGUFFile, architecture: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: architecture)
        c.ropeInterleaved = false
        for name in ["rope_factors_long.weight", "rope_factors_short.weight"] where gguf.tensor(named: name) != nil {
            throw EngineError.unsupported("phi3 long-context RoPE factors (\(name))")
        }
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.gguf(i)
        t.qkv = [TensorRef(name: "blk.\(i).attn_qkv.weight")]
        t.gateUp = [TensorRef(name: "blk.\(i).ffn_up.weight")]
        return t
    }

    static let hfModelTypes = ["phi3"]

    /// Hugging Face folders: `qkv_proj` and `gate_up_proj`; transformers applies a configured
    /// `sliding_window` to every block, and so does this engine for folders.
    static func config(hf: HFConfig) throws -> ModelConfig {
        let c = try ModelConfig(commonHF: hf, tiedByDefault: false)
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.hf(i)
        t.qkv = [TensorRef(name: "model.layers.\(i).self_attn.qkv_proj.weight")]
        t.gateUp = [TensorRef(name: "model.layers.\(i).mlp.gate_up_proj.weight")]
        return t
    }
}
