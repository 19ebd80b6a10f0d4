// Hyper-parameters of a decoder-only model, read from GGUF metadata (`<arch>.*` keys, GGUF spec
// v3) by the model's architecture (Architectures/), plus the settings of the shared block math.

/// The activation of the gated MLP: out = act(gate) * up.
public enum Activation: String, Sendable, Equatable {
    /// x · sigmoid(x) (SwiGLU: Llama, Qwen, Mistral).
    case silu
    /// GELU with the tanh approximation (GeGLU: Gemma).
    case geluTanh = "gelu_tanh"
}

/// The norm before attention, before the MLP and at the end.
public enum Normalization: String, Sendable, Equatable {
    /// RMSNorm with a weight (Llama, Qwen, Gemma, Phi-3).
    case rms
    /// LayerNorm with a weight and a bias (GPT-2).
    case layer
}

/// How positions enter the model.
public enum PositionEncoding: String, Sendable, Equatable {
    /// Rotary embeddings of queries and keys in every block.
    case rope
    /// A learned embedding per position added to the token embeddings (GPT-2); the context
    /// length is the table's.
    case learned
}

/// Shape and numeric settings of a decoder-only transformer.
public struct ModelConfig: Sendable, Equatable {
    /// `general.architecture` (e.g. "llama", "qwen2", "gemma3").
    public var architecture: String
    /// `general.name` when present.
    public var name: String
    public var blockCount: Int
    public var hiddenSize: Int
    public var feedForwardSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var rmsNormEps: Float
    public var ropeBase: Float
    /// Number of leading dimensions of each head that RoPE rotates.
    public var ropeDim: Int
    /// Linear RoPE scaling factor (positions divided by it); 1 when absent.
    public var ropeLinearFactor: Float
    /// True for llama.cpp's "normal" RoPE (adjacent pairs), false for NeoX style (halves).
    public var ropeInterleaved: Bool
    public var tiedEmbeddings: Bool

    /// Multiplier of the attention scores (1/√headDim unless the architecture says otherwise).
    public var attentionScale: Float
    /// Multiplier of the token embeddings (1; √hiddenSize for Gemma).
    public var embeddingScale: Float = 1
    /// Activation of the MLP.
    public var activation: Activation = .silu
    /// True for out = down(act(gate)·up); false for out = down(act(up)) (GPT-2).
    public var gatedMLP = true
    /// The norm kind; its epsilon is `rmsNormEps` for both.
    public var normalization: Normalization = .rms
    /// Rotary or learned positions.
    public var positionEncoding: PositionEncoding = .rope
    /// RMSNorm of each head's queries and keys before RoPE (Qwen3, Gemma-3).
    public var qkNorm = false
    /// RMSNorm of the attention and MLP outputs before their residual adds (Gemma-2/3).
    public var postNorms = false
    /// Attention scores soft-capped to ±this before the softmax (Gemma-2); 0: none.
    public var attentionSoftcap: Float = 0
    /// Output logits soft-capped to ±this (Gemma-2); 0: none.
    public var logitSoftcap: Float = 0
    /// Per block: how many positions back attention sees, the query's own included (0: all).
    public var layerWindows: [Int]
    /// Per block: the RoPE base (`ropeBase` unless the architecture alternates).
    public var layerRopeBases: [Float]

    /// Width of the query projection (heads × head dim).
    public var qDim: Int { headCount * headDim }
    /// Width of the key and value projections.
    public var kvDim: Int { kvHeadCount * headDim }

    /// Builds a config from GGUF metadata through the file's architecture.
    public init(gguf: GGUFFile) throws {
        let arch = try gguf.string("general.architecture")
        guard let family = Architectures.lookup(arch) else { throw EngineError.unsupportedArchitecture(arch) }
        self = try family.config(gguf: gguf, architecture: arch)
    }

    /// The `<arch>.*` keys every family shares (llama.cpp's names), with llama's defaults; the
    /// architecture adjusts the rest and calls `validate()`.
    init(commonGGUF gguf: GGUFFile, architecture arch: String) throws {
        architecture = arch
        name = try gguf.optionalString("general.name") ?? arch
        blockCount = try gguf.int("\(arch).block_count")
        hiddenSize = try gguf.int("\(arch).embedding_length")
        feedForwardSize = try gguf.int("\(arch).feed_forward_length")
        headCount = try gguf.int("\(arch).attention.head_count")
        kvHeadCount = try gguf.optionalInt("\(arch).attention.head_count_kv") ?? headCount
        contextLength = try gguf.optionalInt("\(arch).context_length") ?? 2048
        rmsNormEps = try gguf.optionalFloat("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5
        ropeBase = try gguf.optionalFloat("\(arch).rope.freq_base") ?? 10_000
        guard headCount > 0, hiddenSize > 0, blockCount > 0, blockCount <= 1 << 12 else {
            throw EngineError.badConfig("\(arch).block_count, attention.head_count and embedding_length must be positive")
        }
        headDim = try gguf.optionalInt("\(arch).attention.key_length") ?? (hiddenSize / headCount)
        if let v = try gguf.optionalInt("\(arch).attention.value_length"), v != headDim {
            throw EngineError.unsupported("value heads of \(v) values with key heads of \(headDim)")
        }
        ropeDim = try gguf.optionalInt("\(arch).rope.dimension_count") ?? headDim
        ropeLinearFactor = 1
        if let type = try gguf.optionalString("\(arch).rope.scaling.type"), type != "none" {
            guard type == "linear" else { throw EngineError.unsupported("RoPE scaling type \(type)") }
            ropeLinearFactor = try gguf.optionalFloat("\(arch).rope.scaling.factor") ?? 1
        }
        ropeInterleaved = true
        if let embd = gguf.tensor(named: "token_embd.weight"), embd.dims.count == 2 {
            vocabSize = embd.dims[1]
        } else {
            throw EngineError.missingTensor("token_embd.weight")
        }
        tiedEmbeddings = gguf.tensor(named: "output.weight") == nil
        attentionScale = headDim > 0 ? 1 / Float(headDim).squareRoot() : 1
        layerWindows = [Int](repeating: 0, count: blockCount)
        layerRopeBases = [Float](repeating: ropeBase, count: blockCount)
    }

    /// Builds a config directly (tests and synthetic models).
    public init(
        architecture: String = "llama", name: String = "synthetic", blockCount: Int, hiddenSize: Int,
        feedForwardSize: Int, headCount: Int, kvHeadCount: Int, vocabSize: Int, contextLength: Int = 512,
        rmsNormEps: Float = 1e-5, ropeBase: Float = 10_000, ropeInterleaved: Bool = true, tiedEmbeddings: Bool = true
    ) throws {
        self.architecture = architecture
        self.name = name
        self.blockCount = blockCount
        self.hiddenSize = hiddenSize
        self.feedForwardSize = feedForwardSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headCount > 0 ? hiddenSize / headCount : 0
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.rmsNormEps = rmsNormEps
        self.ropeBase = ropeBase
        self.ropeDim = headDim
        self.ropeLinearFactor = 1
        self.ropeInterleaved = ropeInterleaved
        self.tiedEmbeddings = tiedEmbeddings
        self.attentionScale = headDim > 0 ? 1 / Float(headDim).squareRoot() : 1
        self.layerWindows = [Int](repeating: 0, count: max(0, blockCount))
        self.layerRopeBases = [Float](repeating: ropeBase, count: max(0, blockCount))
        try validate()
    }

    /// Checks ranges and consistency; architectures call it after adjusting a config.
    func validate() throws {
        let limit = 1 << 20
        for (name, v) in [("block_count", blockCount), ("embedding_length", hiddenSize),
                          ("feed_forward_length", feedForwardSize), ("head_count", headCount),
                          ("head_count_kv", kvHeadCount), ("head_dim", headDim), ("vocab_size", vocabSize),
                          ("context_length", contextLength)] {
            guard v > 0, v <= (name == "vocab_size" || name == "context_length" ? 1 << 24 : limit) else {
                throw EngineError.badConfig("\(name) = \(v) is out of range")
            }
        }
        guard headCount % kvHeadCount == 0 else {
            throw EngineError.badConfig("head_count \(headCount) is not a multiple of head_count_kv \(kvHeadCount)")
        }
        guard ropeDim > 0, ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw EngineError.badConfig("rope.dimension_count \(ropeDim) must be even and at most the head size \(headDim)")
        }
        guard rmsNormEps.isFinite, rmsNormEps > 0, ropeBase.isFinite, ropeBase > 0 else {
            throw EngineError.badConfig("rms epsilon and RoPE base must be positive and finite")
        }
        guard layerWindows.count == blockCount, layerRopeBases.count == blockCount,
              layerWindows.allSatisfy({ $0 >= 0 }), layerRopeBases.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw EngineError.badConfig("per-block attention windows and RoPE bases must be non-negative and finite, one per block")
        }
        guard gatedMLP || activation == .geluTanh else {
            throw EngineError.unsupported("an ungated MLP with \(activation.rawValue)")
        }
        guard attentionScale.isFinite, attentionScale > 0, embeddingScale.isFinite, embeddingScale > 0,
              ropeLinearFactor.isFinite, ropeLinearFactor > 0,
              attentionSoftcap.isFinite, attentionSoftcap >= 0, logitSoftcap.isFinite, logitSoftcap >= 0 else {
            throw EngineError.badConfig("attention, embedding and RoPE scales must be positive and finite, soft-caps non-negative")
        }
    }
}
