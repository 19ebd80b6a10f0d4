// The tokenizer interface, its errors and the factory that builds one from GGUF `tokenizer.ggml.*` metadata.

/// Text ↔ token ids for one model vocabulary.
///
/// Implementations reproduce the Hugging Face `tokenizers` pipeline that transformers builds from
/// the same GGUF metadata (`AutoTokenizer.from_pretrained(dir, gguf_file: ...)`), id for id, or
/// the one a Hugging Face folder's tokenizer.json describes (`makeTokenizer(huggingFaceFolder:)`).
public protocol Tokenizer: Sendable {
    /// Number of token ids (the length of `tokenizer.ggml.tokens`).
    var vocabularySize: Int { get }
    /// Beginning-of-sequence id, if the vocabulary names one.
    var bosID: Int32? { get }
    /// End-of-sequence id, if the vocabulary names one.
    var eosID: Int32? { get }
    /// Token ids for text. Special/control tokens written in the text (e.g. "<|im_start|>", "<bos>",
    /// "<start_of_turn>") map to their single ids. `addSpecial` adds BOS/EOS following the metadata
    /// flags exactly like the Hugging Face tokenizer converted from the same GGUF does with
    /// `add_special_tokens=True`.
    func encode(_ text: String, addSpecial: Bool) -> [Int32]
    /// Text for ids, like HF `decode(ids, skip_special_tokens: skipSpecial)`. Ids outside the
    /// vocabulary are ignored.
    func decode(_ ids: [Int32], skipSpecial: Bool) -> String
    /// The raw bytes a token stands for (after byte-level or byte-fallback mapping), for streaming.
    /// Empty for ids outside the vocabulary.
    func tokenBytes(_ id: Int32) -> [UInt8]
    /// Whether the id is a special (control) token, which `decode(_:skipSpecial: true)` drops.
    func isSpecial(_ id: Int32) -> Bool
    /// The id of a token given its spelling in the vocabulary (e.g. "Ġthe", "▁the", "<eos>"): GGUF
    /// `tokenizer.ggml.tokens`, or tokenizer.json's added-token contents and `model.vocab`.
    func tokenID(_ piece: String) -> Int32?
    /// The chat template from `tokenizer.chat_template` (GGUF), or from chat_template.jinja /
    /// tokenizer_config.json (Hugging Face folder), if present.
    var chatTemplate: String? { get }
}

/// Everything that can be wrong with a tokenizer description.
public enum TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `tokenizer.ggml.model` names a tokenizer type this engine does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer this engine does not implement.
    case unsupportedPreTokenizer(String)
    /// A required metadata key is absent.
    case missingKey(String)
    /// A metadata key holds a value of the wrong type.
    case wrongType(key: String, expected: String)
    /// The token list is empty or too long for 32-bit ids.
    case badVocabularySize(Int)
    /// A per-token array (`scores`, `token_type`) does not have one entry per token.
    case countMismatch(key: String, expected: Int, found: Int)
    /// A token id in the metadata is outside the vocabulary.
    case tokenIDOutOfRange(key: String, id: Int, vocabularySize: Int)
    /// A byte-level vocabulary has no merges.
    case missingMerges
    /// A merge rule is not two tokens separated by one space.
    case malformedMerge(index: Int, rule: String)
    /// A merge rule names a token (or produces a token) that is not in the vocabulary.
    case mergeTokenNotInVocabulary(index: Int, token: String)
    /// A file of a Hugging Face tokenizer folder is missing, unreadable or too large to be one.
    case fileUnreadable(file: String, reason: String)
    /// A file of a Hugging Face tokenizer folder is not valid JSON.
    case invalidJSON(file: String, message: String)
    /// A key of a Hugging Face tokenizer file is missing or holds the wrong kind of value.
    case invalidValue(file: String, key: String, expected: String)
    /// A `tokenizer.json` component (model, normalizer, pre-tokenizer, post-processor, decoder)
    /// has a `type` this engine does not implement.
    case unsupportedComponent(file: String, key: String, type: String)
    /// A split or replace pattern that neither a hand-written scanner nor Swift's `Regex` can run.
    case unsupportedPattern(file: String, key: String, pattern: String, reason: String)
    /// A token named by a Hugging Face tokenizer file (in a merge, a template, a special token) is
    /// not in the vocabulary.
    case unknownToken(file: String, key: String, token: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let m):
            return "unsupported tokenizer.ggml.model '\(m)' (supported: gpt2, llama)"
        case .unsupportedPreTokenizer(let p):
            return "unsupported tokenizer.ggml.pre '\(p)' (supported: default, gpt-2, smollm, llama-bpe/llama3 family, qwen2 family)"
        case .missingKey(let k):
            return "tokenizer metadata key '\(k)' is missing"
        case .wrongType(let k, let expected):
            return "tokenizer metadata key '\(k)' should be \(expected)"
        case .badVocabularySize(let n):
            return "tokenizer.ggml.tokens has \(n) entries; expected 1 ... \(Int32.max)"
        case .countMismatch(let k, let expected, let found):
            return "\(k) has \(found) entries but tokenizer.ggml.tokens has \(expected)"
        case .tokenIDOutOfRange(let k, let id, let n):
            return "\(k) = \(id) is outside the vocabulary of \(n) tokens"
        case .missingMerges:
            return "byte-level BPE vocabulary (tokenizer.ggml.model = gpt2) has no tokenizer.ggml.merges"
        case .malformedMerge(let i, let rule):
            return "tokenizer.ggml.merges[\(i)] = '\(rule)' is not two tokens separated by one space"
        case .mergeTokenNotInVocabulary(let i, let token):
            return "tokenizer.ggml.merges[\(i)] uses '\(token)', which is not in the vocabulary"
        case .fileUnreadable(let file, let reason):
            return "cannot read \(file): \(reason)"
        case .invalidJSON(let file, let message):
            return "\(file) is not valid JSON: \(message)"
        case .invalidValue(let file, let key, let expected):
            return "\(file): \(key) should be \(expected)"
        case .unsupportedComponent(let file, let key, let type):
            return "\(file): \(key) has type '\(type)', which this engine does not implement"
        case .unsupportedPattern(let file, let key, let pattern, let reason):
            return "\(file): \(key) pattern '\(pattern)' cannot be used: \(reason)"
        case .unknownToken(let file, let key, let token):
            return "\(file): \(key) names '\(token)', which is not in the vocabulary"
        }
    }
}

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp `llama_token_type`).
public enum GGUFTokenType {
    public static let normal: Int32 = 1
    public static let unknown: Int32 = 2
    public static let control: Int32 = 3
    public static let userDefined: Int32 = 4
    public static let unused: Int32 = 5
    public static let byte: Int32 = 6
}

/// A tokenizer described as plain values: the `tokenizer.ggml.*` metadata of a GGUF file.
public struct TokenizerVocabulary: Sendable, Equatable {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (byte-level BPE only).
    public var pre: String?
    /// `general.architecture`; SentencePiece vocabularies of the Gemma family are converted the
    /// way transformers converts Gemma files.
    public var architecture: String?
    /// `tokenizer.ggml.tokens`, as spelled in the file.
    public var tokens: [String]
    /// `tokenizer.ggml.scores`.
    public var scores: [Float]?
    /// `tokenizer.ggml.token_type` (see `GGUFTokenType`).
    public var tokenTypes: [Int32]?
    /// `tokenizer.ggml.merges`: "left right" rules, best first.
    public var merges: [String]?
    /// `tokenizer.ggml.bos_token_id` and friends.
    public var bosID: Int32?
    public var eosID: Int32?
    public var unkID: Int32?
    public var padID: Int32?
    /// `tokenizer.ggml.add_bos_token` / `add_eos_token`; nil when absent from the file.
    public var addBOS: Bool?
    public var addEOS: Bool?
    /// `tokenizer.chat_template`.
    public var chatTemplate: String?

    public init(
        model: String, pre: String? = nil, architecture: String? = nil, tokens: [String],
        scores: [Float]? = nil, tokenTypes: [Int32]? = nil, merges: [String]? = nil,
        bosID: Int32? = nil, eosID: Int32? = nil, unkID: Int32? = nil, padID: Int32? = nil,
        addBOS: Bool? = nil, addEOS: Bool? = nil, chatTemplate: String? = nil
    ) {
        self.model = model
        self.pre = pre
        self.architecture = architecture
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.bosID = bosID
        self.eosID = eosID
        self.unkID = unkID
        self.padID = padID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.chatTemplate = chatTemplate
    }
}

/// Builds the tokenizer a vocabulary describes.
///
/// Throws `TokenizerError` for an unknown model or pre-tokenizer name, a byte-level vocabulary
/// without merges, merges naming unknown tokens, per-token arrays of the wrong length, or
/// special-token ids outside the vocabulary.
public func makeTokenizer(_ vocab: TokenizerVocabulary) throws -> any Tokenizer {
    let n = vocab.tokens.count
    guard n > 0, n <= Int(Int32.max) else { throw TokenizerError.badVocabularySize(n) }
    if let s = vocab.scores, s.count != n {
        throw TokenizerError.countMismatch(key: "tokenizer.ggml.scores", expected: n, found: s.count)
    }
    if let t = vocab.tokenTypes, t.count != n {
        throw TokenizerError.countMismatch(key: "tokenizer.ggml.token_type", expected: n, found: t.count)
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", vocab.bosID), ("tokenizer.ggml.eos_token_id", vocab.eosID),
        ("tokenizer.ggml.unknown_token_id", vocab.unkID), ("tokenizer.ggml.padding_token_id", vocab.padID),
    ] {
        if let id, id < 0 || Int(id) >= n {
            throw TokenizerError.tokenIDOutOfRange(key: key, id: Int(id), vocabularySize: n)
        }
    }
    switch vocab.model {
    case "gpt2":
        guard let kind = PreTokenizerKind(ggmlPre: vocab.pre) else {
            throw TokenizerError.unsupportedPreTokenizer(vocab.pre ?? "")
        }
        return try ByteLevelBPETokenizer(vocab, preTokenizer: kind)
    case "llama":
        return try SentencePieceBPETokenizer(vocab)
    default:
        throw TokenizerError.unsupportedModel(vocab.model)
    }
}

/// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
public func makeTokenizer(gguf: GGUFFile) throws -> any Tokenizer {
    try makeTokenizer(TokenizerVocabulary(gguf: gguf))
}

extension TokenizerVocabulary {
    /// Reads the `tokenizer.ggml.*` keys (plus `tokenizer.chat_template` and
    /// `general.architecture`) of a GGUF file.
    public init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        func string(_ key: String) throws -> String? {
            guard let v = m[key] else { return nil }
            guard let s = v.string else { throw TokenizerError.wrongType(key: key, expected: "a string") }
            return s
        }
        func id(_ key: String) throws -> Int32? {
            guard let v = m[key] else { return nil }
            guard let i = v.int else { throw TokenizerError.wrongType(key: key, expected: "an integer") }
            guard let small = Int32(exactly: i) else {
                throw TokenizerError.tokenIDOutOfRange(key: key, id: i, vocabularySize: 0)
            }
            return small
        }
        func flag(_ key: String) throws -> Bool? {
            guard let v = m[key] else { return nil }
            guard let b = v.bool else { throw TokenizerError.wrongType(key: key, expected: "a bool") }
            return b
        }
        func array(_ key: String) throws -> GGUFArray? {
            guard let v = m[key] else { return nil }
            guard let a = v.array else { throw TokenizerError.wrongType(key: key, expected: "an array") }
            return a
        }

        guard let model = try string("tokenizer.ggml.model") else {
            throw TokenizerError.missingKey("tokenizer.ggml.model")
        }
        guard let tokenArray = try array("tokenizer.ggml.tokens") else {
            throw TokenizerError.missingKey("tokenizer.ggml.tokens")
        }
        guard let tokens = tokenArray.strings else {
            throw TokenizerError.wrongType(key: "tokenizer.ggml.tokens", expected: "an array of strings")
        }
        var scores: [Float]? = nil
        if let a = try array("tokenizer.ggml.scores") {
            guard let f = a.floats else {
                throw TokenizerError.wrongType(key: "tokenizer.ggml.scores", expected: "an array of float32")
            }
            scores = f
        }
        var types: [Int32]? = nil
        if let a = try array("tokenizer.ggml.token_type") {
            guard let ints = a.ints else {
                throw TokenizerError.wrongType(key: "tokenizer.ggml.token_type", expected: "an array of integers")
            }
            types = ints.map { Int32(clamping: $0) }
        }
        var merges: [String]? = nil
        if let a = try array("tokenizer.ggml.merges") {
            guard let s = a.strings else {
                throw TokenizerError.wrongType(key: "tokenizer.ggml.merges", expected: "an array of strings")
            }
            merges = s
        }
        self.init(
            model: model,
            pre: try string("tokenizer.ggml.pre"),
            architecture: try string("general.architecture"),
            tokens: tokens,
            scores: scores,
            tokenTypes: types,
            merges: merges,
            bosID: try id("tokenizer.ggml.bos_token_id"),
            eosID: try id("tokenizer.ggml.eos_token_id"),
            unkID: try id("tokenizer.ggml.unknown_token_id"),
            padID: try id("tokenizer.ggml.padding_token_id"),
            addBOS: try flag("tokenizer.ggml.add_bos_token"),
            addEOS: try flag("tokenizer.ggml.add_eos_token"),
            chatTemplate: try string("tokenizer.chat_template")
        )
    }
}
