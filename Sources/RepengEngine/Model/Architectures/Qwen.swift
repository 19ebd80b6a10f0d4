// Qwen2 (q/k/v biases) and Qwen3 (per-head q/k RMSNorm, no biases): the llama block with
// NeoX-style RoPE (llama.cpp does not permute q/k for these families). As transformers'
// Qwen2Model / Qwen3Model.

enum QwenArchitecture: Architecture {
    static let names = ["qwen2", "qwen3"]

    static func config(gguf: GGUFFile, architecture: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: architecture)
        c.ropeInterleaved = false
        c.qkNorm = architecture == "qwen3"
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.gguf(i)
        if config.qkNorm { t.addQKNorm(i) } else { t.addOptionalQKVBias(i) }
        return t
    }

    static let hfModelTypes = ["qwen2", "qwen3"]

    static func config(hf: HFConfig) throws -> ModelConfig {
        var c = try ModelConfig(commonHF: hf, tiedByDefault: false)
        c.qkNorm = c.architecture == "qwen3"
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.hf(i)
        if config.qkNorm { t.addHFQKNorm(i) } else { t.addOptionalHFQKVBias(i) }
        return t
    }
}
