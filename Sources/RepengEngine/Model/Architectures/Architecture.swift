// What differs between decoder families: how a file's metadata (GGUF) or config.json (Hugging
// Face) reads into a `ModelConfig` and which tensors hold the weights under each format's names. The block math they choose from (norms, attention with a
// window and a scale, RoPE per block, gated MLP, post-norms) is the shared runtime's
// (`DecoderModel`); a family selects it through its config.

/// A decoder family. One file per family in this folder.
protocol Architecture: Sendable {
    /// `general.architecture` values it reads.
    static var names: [String] { get }
    /// Hyper-parameters from GGUF metadata, with the family's published defaults for what the
    /// file does not carry.
    static func config(gguf: GGUFFile, architecture: String) throws -> ModelConfig
    /// The tensors of block `i` (GGUF names).
    static func blockTensors(_ i: Int, config: ModelConfig) -> BlockTensors
    /// The tensors outside the blocks (GGUF names).
    static func globalTensors(config: ModelConfig) -> GlobalTensors

    /// config.json `model_type` values it reads.
    static var hfModelTypes: [String] { get }
    /// Hyper-parameters from a Hugging Face config.json.
    static func config(hf: HFConfig) throws -> ModelConfig
    /// The tensors of block `i` (Hugging Face names, without the checkpoint's prefix).
    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors
    /// The tensors outside the blocks (Hugging Face names).
    static func hfGlobalTensors(config: ModelConfig) -> GlobalTensors
}

extension Architecture {
    static func globalTensors(config: ModelConfig) -> GlobalTensors { .gguf }
    static func hfBlockTensors(_ i: Int, config: ModelConfig) -> BlockTensors { .hf(i) }
    static func hfGlobalTensors(config: ModelConfig) -> GlobalTensors { .hf }
}

/// The tensors outside the blocks.
struct GlobalTensors: Sendable {
    var tokenEmbedding: TensorRef
    /// Learned positions (`PositionEncoding.learned`).
    var positionEmbedding: TensorRef?
    var outputNorm: TensorRef
    var outputNormBias: TensorRef?
    /// The output head; unused when the config says the embeddings are tied.
    var output: TensorRef

    /// llama.cpp's names.
    static let gguf = GlobalTensors(tokenEmbedding: TensorRef(name: "token_embd.weight"),
                                    outputNorm: TensorRef(name: "output_norm.weight"),
                                    output: TensorRef(name: "output.weight"))

    /// transformers' Llama names.
    static let hf = GlobalTensors(tokenEmbedding: TensorRef(name: "model.embed_tokens.weight"),
                                  outputNorm: TensorRef(name: "model.norm.weight"),
                                  output: TensorRef(name: "lm_head.weight"))
}

/// A tensor the loader reads: `optional` ones may be absent from the file.
struct TensorRef: Sendable, Equatable {
    var name: String
    var optional = false
    /// The file stores w where the runtime multiplies by 1 + w (Gemma's RMSNorm weights in
    /// Hugging Face checkpoints; llama.cpp's converter stores 1 + w).
    var plusOne = false
    /// The file stores the matrix as [in, out] (GPT-2's Conv1D weights in Hugging Face checkpoints).
    var transposed = false
}

/// The tensors of one block; nil fields are not part of the family.
struct BlockTensors: Sendable {
    var attnNorm: TensorRef
    /// LayerNorm biases (`Normalization.layer`).
    var attnNormBias: TensorRef?
    /// The q, k and v projections: three tensors, or one fused tensor with rows q | k | v.
    var qkv: [TensorRef]
    var qBias: TensorRef?, kBias: TensorRef?, vBias: TensorRef?
    /// One bias of rows q | k | v for a fused projection.
    var qkvBias: TensorRef?
    var qNorm: TensorRef?, kNorm: TensorRef?
    var attnOut: TensorRef
    var attnOutBias: TensorRef?
    var postAttnNorm: TensorRef?
    var ffnNorm: TensorRef
    var ffnNormBias: TensorRef?
    /// The gate and up projections: two tensors, or one fused tensor with rows gate | up; only
    /// the up projection when the MLP is not gated.
    var gateUp: [TensorRef]
    var gateUpBias: TensorRef?
    var down: TensorRef
    var downBias: TensorRef?
    var postFFNNorm: TensorRef?

    /// llama.cpp's names for block `i` (`blk.i.attn_q.weight`, …) without optional parts.
    static func gguf(_ i: Int) -> BlockTensors {
        let p = "blk.\(i)."
        return BlockTensors(
            attnNorm: TensorRef(name: p + "attn_norm.weight"),
            qkv: [TensorRef(name: p + "attn_q.weight"), TensorRef(name: p + "attn_k.weight"), TensorRef(name: p + "attn_v.weight")],
            attnOut: TensorRef(name: p + "attn_output.weight"),
            ffnNorm: TensorRef(name: p + "ffn_norm.weight"),
            gateUp: [TensorRef(name: p + "ffn_gate.weight"), TensorRef(name: p + "ffn_up.weight")],
            down: TensorRef(name: p + "ffn_down.weight"))
    }

    /// transformers' Llama names for block `i` (`model.layers.i.self_attn.q_proj.weight`, …).
    static func hf(_ i: Int) -> BlockTensors {
        let p = "model.layers.\(i)."
        return BlockTensors(
            attnNorm: TensorRef(name: p + "input_layernorm.weight"),
            qkv: ["q", "k", "v"].map { TensorRef(name: p + "self_attn.\($0)_proj.weight") },
            attnOut: TensorRef(name: p + "self_attn.o_proj.weight"),
            ffnNorm: TensorRef(name: p + "post_attention_layernorm.weight"),
            gateUp: [TensorRef(name: p + "mlp.gate_proj.weight"), TensorRef(name: p + "mlp.up_proj.weight")],
            down: TensorRef(name: p + "mlp.down_proj.weight"))
    }

    /// Optional q/k/v biases under transformers' names.
    mutating func addOptionalHFQKVBias(_ i: Int) {
        let p = "model.layers.\(i).self_attn."
        qBias = TensorRef(name: p + "q_proj.bias", optional: true)
        kBias = TensorRef(name: p + "k_proj.bias", optional: true)
        vBias = TensorRef(name: p + "v_proj.bias", optional: true)
    }

    /// Per-head q/k RMSNorm weights under transformers' names.
    mutating func addHFQKNorm(_ i: Int, plusOne: Bool = false) {
        let p = "model.layers.\(i).self_attn."
        qNorm = TensorRef(name: p + "q_norm.weight", plusOne: plusOne)
        kNorm = TensorRef(name: p + "k_norm.weight", plusOne: plusOne)
    }

    /// Optional q/k/v biases under llama.cpp's names.
    mutating func addOptionalQKVBias(_ i: Int) {
        let p = "blk.\(i)."
        qBias = TensorRef(name: p + "attn_q.bias", optional: true)
        kBias = TensorRef(name: p + "attn_k.bias", optional: true)
        vBias = TensorRef(name: p + "attn_v.bias", optional: true)
    }

    /// Per-head q/k RMSNorm weights under llama.cpp's names.
    mutating func addQKNorm(_ i: Int) {
        let p = "blk.\(i)."
        qNorm = TensorRef(name: p + "attn_q_norm.weight")
        kNorm = TensorRef(name: p + "attn_k_norm.weight")
    }
}

/// The families this engine runs.
enum Architectures {
    static let all: [any Architecture.Type] = [LlamaArchitecture.self, QwenArchitecture.self, Gemma3Architecture.self,
                                                Gemma2Architecture.self, Phi3Architecture.self, GPT2Architecture.self]

    /// The family of a `general.architecture` or config.json `model_type` value.
    static func lookup(_ name: String) -> (any Architecture.Type)? {
        all.first { $0.names.contains(name) } ?? all.first { $0.hfModelTypes.contains(name) }
    }

    /// The family of a config.json `model_type` value.
    static func lookup(hfModelType name: String) -> (any Architecture.Type)? {
        all.first { $0.hfModelTypes.contains(name) }
    }

    /// Every config.json `model_type` value served, sorted.
    static var supportedHF: [String] { all.flatMap { $0.hfModelTypes }.sorted() }

    /// Every `general.architecture` value served, sorted.
    static var supported: [String] { all.flatMap { $0.names }.sorted() }
}
