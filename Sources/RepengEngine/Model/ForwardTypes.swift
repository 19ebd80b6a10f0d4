// Inputs and outputs of a batched forward pass: sequences, read hooks and steer hooks.

/// Vectors added to block outputs of one sequence (the steer hook).
public struct Steering: Sendable, Equatable {
    /// Block index (0-based, non-negative) → vector of `hiddenSize` values, already scaled by
    /// its coefficient. Added to the output of that block at every position.
    public var vectors: [Int: [Float]]
    /// Rescale each steered position back to its L2 norm before steering (repeng's `normalize`).
    public var normalize: Bool

    public init(vectors: [Int: [Float]] = [:], normalize: Bool = false) {
        self.vectors = vectors
        self.normalize = normalize
    }

    /// True when no layer has a non-zero vector: such steering leaves outputs bit-identical.
    public var isIdentity: Bool { vectors.values.allSatisfy { $0.allSatisfy { $0 == 0 } } }
}

/// Steering validated against one model and laid out per block (immutable, shareable).
public final class PreparedSteering: @unchecked Sendable {
    /// Per block: the vector to add, or nil.
    let blocks: [FloatBuffer?]
    public let normalize: Bool
    public let hiddenSize: Int

    init(blocks: [FloatBuffer?], normalize: Bool, hiddenSize: Int) {
        self.blocks = blocks
        self.normalize = normalize
        self.hiddenSize = hiddenSize
    }

    /// Blocks that are steered.
    public var steeredBlocks: [Int] { blocks.indices.filter { blocks[$0] != nil } }
}

/// One sequence in a batch.
public struct SequenceInput {
    /// New tokens to run (appended after what `cache` already holds).
    public var tokens: [Int32]
    /// Keys and values of earlier tokens; updated in place. Nil runs the tokens stand-alone.
    public var cache: KVCache?
    /// Steering for this sequence (from `LanguageModel.prepareSteering`); nil for none.
    public var steering: PreparedSteering?

    public init(tokens: [Int32], cache: KVCache? = nil, steering: PreparedSteering? = nil) {
        self.tokens = tokens
        self.cache = cache
        self.steering = steering
    }
}

/// Which positions the read hook returns.
public enum HiddenPositions: Sendable {
    /// Only the last token of each sequence.
    case last
    /// Every token run in this call.
    case all
}

/// Which logits to compute.
public enum LogitsMode: Sendable {
    case none
    case last
    case all
}

/// What a forward pass should return.
public struct ForwardOptions: Sendable {
    /// Hidden-state indices to read, numbered as transformers' `output_hidden_states`:
    /// 0 = token embeddings, k in 1..<L = output of block k-1 (after steering),
    /// L = output of block L-1 after the final norm. Block i's output is index i+1.
    public var hiddenStates: [Int]
    public var hiddenPositions: HiddenPositions
    public var logits: LogitsMode

    public init(hiddenStates: [Int] = [], hiddenPositions: HiddenPositions = .last, logits: LogitsMode = .last) {
        self.hiddenStates = hiddenStates
        self.hiddenPositions = hiddenPositions
        self.logits = logits
    }
}

/// Results for one sequence of a batch.
public struct SequenceOutput: Sendable {
    /// Hidden-state index → values, row-major [positions, hiddenSize].
    public var hidden: [Int: [Float]] = [:]
    /// Row-major [positions, vocabSize] (one row for `.last`).
    public var logits: [Float] = []
}
