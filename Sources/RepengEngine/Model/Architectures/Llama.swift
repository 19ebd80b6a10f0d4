// Llama (and the files llama.cpp's converter writes as `llama`: Mistral, SmolLM2, TinyLlama):
//   h = x + o(attention(rope(q), rope(k), v)) of rmsnorm(x); out = h + down(silu(gate)·up) of rmsnorm(h)
// As transformers' LlamaModel. llama.cpp stores q/k rows permuted for its "normal" (interleaved)
// RoPE, so the GGUF path rotates adjacent pairs; the result equals Hugging Face's NeoX-style
// rotation of the unpermuted weights, which is what Hugging Face folders hold (model_type
// `llama` or `mistral`; Mistral's `sliding_window`, which transformers applies to every block, is
// kept for folders — GGUF files carry no window, and llama.cpp runs them without one).

enum LlamaArchitecture: Architecture {
    static let names = ["llama"]

    static func config(gguf: GGUFFile, architecture: String) throws -> ModelConfig {
        var c = try ModelConfig(commonGGUF: gguf, architecture: architecture)
        c.ropeInterleaved = true
        try c.validate()
        return c
    }

    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.gguf(i)
        t.addOptionalQKVBias(i)
        return t
    }

    static let hfModelTypes = ["llama", "mistral"]

    static func config(hf: HFConfig) throws -> ModelConfig {
        let c = try ModelConfig(commonHF: hf, tiedByDefault: false)
        try c.validate()
        return c
    }

    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors {
        var t = BlockTensors.hf(i)
        t.addOptionalHFQKVBias(i)
        return t
    }
}
