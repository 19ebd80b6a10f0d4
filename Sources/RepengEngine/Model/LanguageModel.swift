// The model interface the steering library, the daemon, the scheduler and the tools use: a
// decoder-only language model with a tokenizer, KV caches, prepared steering, a batched forward
// pass with read and steer hooks, and the batched decode step. `loadModel` picks the
// architecture from the file.

import Foundation

/// A loaded language model, immutable and shareable across threads. Forward passes run on a
/// caller-owned `ForwardWorkspace`.
public protocol LanguageModel: AnyObject, Sendable {
    /// Shape and settings (architecture, blocks, hidden size, vocabulary, context, …).
    var config: ModelConfig { get }
    /// The tokenizer the file or folder carries, if any.
    var tokenizer: (any Tokenizer)? { get }
    /// The GGUF file the model came from (chat template, names, …), when loaded from GGUF.
    var source: GGUFFile? { get }
    /// Bytes of weights resident in memory.
    var residentBytes: Int { get }
    /// Weight types of the file the model was loaded from, with their tensor counts
    /// (e.g. `["Q4_K": 108, "F32": 73]`); empty for models built in memory.
    var fileWeightTypes: [String: Int] { get }

    /// A new, empty KV cache for one sequence.
    func makeCache(capacity: Int) -> KVCache

    /// Validates steering against this model and lays it out for the forward pass. Layers
    /// whose vector is all zeros are dropped, so zero steering is bit-identical to none.
    func prepareSteering(_ steering: Steering) throws -> PreparedSteering

    /// Runs a batch of sequences of any lengths packed into one matrix (no padding) and
    /// returns what `options` asks for, per sequence. Sequences with a cache append to it.
    func forward(_ batch: [SequenceInput], options: ForwardOptions, workspace: ForwardWorkspace) throws -> [SequenceOutput]

    /// One decode step for many sequences: writes the last-position logits of sequence i to
    /// `logits + i * vocabSize`. Every sequence must have a cache.
    func decodeStep(_ batch: [SequenceInput], workspace: ForwardWorkspace, logits: UnsafeMutablePointer<Float>) throws
}

extension LanguageModel {
    public func makeCache() -> KVCache { makeCache(capacity: 256) }

    public func forward(_ batch: [SequenceInput], workspace: ForwardWorkspace) throws -> [SequenceOutput] {
        try forward(batch, options: ForwardOptions(), workspace: workspace)
    }

    /// Normalizes a layer id (negative ids count from the end) to a block index, or throws
    /// `EngineError.layerOutOfRange`. Every layer id from a user goes through here.
    public func blockIndex(_ layer: Int) throws -> Int {
        try config.blockIndex(layer)
    }
}

extension ModelConfig {
    /// Normalizes a layer id (negative ids count from the end: -1 is the last block) to a block
    /// index in `0..<blockCount`, or throws `EngineError.layerOutOfRange`. With
    /// `fromEnd: false`, only block indices themselves are accepted. Every layer id of the
    /// engine, the steering library and the daemon is checked here.
    public func blockIndex(_ layer: Int, fromEnd: Bool = true) throws -> Int {
        let l = layer < 0 && fromEnd ? blockCount + layer : layer
        guard l >= 0, l < blockCount else {
            throw EngineError.layerOutOfRange(layer: layer, blockCount: blockCount)
        }
        return l
    }
}

/// Loads a model: a GGUF file (the architecture from `general.architecture`) or a Hugging Face
/// folder (config.json's `model_type`, safetensors weights).
public func loadModel(path: String) throws -> any LanguageModel {
    try DecoderModel(path: path)
}

/// Loads a GGUF file with its weights held as `precision` says (`.native`: F16, BF16, Q4_0,
/// Q4_1 and Q8_0 matrices stay in their encoding in the mapped file). A Hugging Face folder
/// loads as with `loadModel(path:)`.
public func loadModel(path: String, precision: WeightPrecision) throws -> any LanguageModel {
    var isDirectory: ObjCBool = false
    if precision == .exact || (FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue) {
        return try DecoderModel(path: path)
    }
    return try DecoderModel(gguf: GGUFFile(path: path), precision: precision)
}

/// Builds a model from an opened GGUF file, choosing the architecture from `general.architecture`.
public func loadModel(gguf: GGUFFile) throws -> any LanguageModel {
    try DecoderModel(gguf: gguf)
}
