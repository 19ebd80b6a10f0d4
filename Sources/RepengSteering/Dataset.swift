// Contrastive datasets for control-vector training: repeng 0.4's DatasetEntry and the
// make_dataset recipe from its README and notebooks, a chat-formatted variant, and JSON loading.
import Foundation
import RepengEngine

/// One contrastive pair: the same text seen through a positive and a negative persona
/// (repeng's `DatasetEntry`). Encoded as `{"positive": …, "negative": …}`.
public struct DatasetEntry: Codable, Sendable, Equatable, Hashable {
    public var positive: String
    public var negative: String

    public init(positive: String, negative: String) {
        self.positive = positive
        self.negative = negative
    }
}

/// Why a dataset could not be built or loaded.
public enum DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The template has no `{persona}` field, so positive and negative texts would be equal.
    case templateMissingPersona(template: String)
    /// The template has a replacement field other than `{persona}`, or an unmatched brace
    /// (write `{{` and `}}` for literal braces, as in Python's `str.format`).
    case badTemplate(template: String, reason: String)
    /// The persona lists must pair up one to one.
    case personaCountMismatch(positive: Int, negative: Int)
    /// A list that must not be empty is empty (`what` names it).
    case empty(what: String)
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The file is larger than `DatasetLimits.maxFileBytes`.
    case fileTooLarge(path: String, bytes: Int, limit: Int)
    /// The file is not valid JSON.
    case invalidJSON(path: String, reason: String)
    /// The top-level JSON value is not an array.
    case notAnArray(path: String)
    /// Element `index` (0-based) of the file is not what the format requires.
    case badElement(path: String, index: Int, reason: String)

    public var description: String {
        switch self {
        case .templateMissingPersona(let t):
            return "dataset template \"\(t)\" has no {persona} field; positive and negative texts would be identical"
        case let .badTemplate(t, reason):
            return "dataset template \"\(t)\" is invalid: \(reason) (only {persona} is replaced; write {{ and }} for literal braces)"
        case let .personaCountMismatch(p, n):
            return "\(p) positive personas but \(n) negative personas; the lists pair up one to one, so give both the same length"
        case .empty(let what):
            return "\(what) is empty"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .fileTooLarge(path, bytes, limit):
            return "\(path) is \(bytes) bytes, more than the \(limit)-byte limit for dataset files"
        case let .invalidJSON(path, reason):
            return "\(path) is not valid JSON: \(reason)"
        case .notAnArray(let path):
            return "\(path) must hold a JSON array at the top level"
        case let .badElement(path, index, reason):
            return "\(path), element \(index): \(reason)"
        }
    }
}

/// Bounds applied to dataset and suffix files.
public enum DatasetLimits {
    /// Largest dataset or suffix file read (256 MiB).
    public static let maxFileBytes = 256 << 20
}

// MARK: - Templates

/// Fills `{persona}` in `template` the way Python's `template.format(persona=…)` does:
/// `{{` and `}}` are literal braces; any other replacement field is an error.
public func formatPersonaTemplate(_ template: String, persona: String) throws -> String {
    var out = ""
    var sawPersona = false
    var i = template.startIndex
    while i < template.endIndex {
        let c = template[i]
        let next = template.index(after: i)
        if c == "{" {
            if next < template.endIndex, template[next] == "{" {
                out.append("{")
                i = template.index(after: next)
                continue
            }
            guard let close = template[next...].firstIndex(of: "}") else {
                throw DatasetError.badTemplate(template: template, reason: "unmatched '{'")
            }
            let field = template[next..<close]
            guard field == "persona" else {
                throw DatasetError.badTemplate(template: template, reason: "unknown field {\(field)}")
            }
            out += persona
            sawPersona = true
            i = template.index(after: close)
        } else if c == "}" {
            guard next < template.endIndex, template[next] == "}" else {
                throw DatasetError.badTemplate(template: template, reason: "single '}' (write }} for a literal brace)")
            }
            out.append("}")
            i = template.index(after: next)
        } else {
            out.append(c)
            i = next
        }
    }
    guard sawPersona else { throw DatasetError.templateMissingPersona(template: template) }
    return out
}

private func checkPersonas(_ positive: [String], _ negative: [String], _ suffixes: [String]) throws {
    guard !positive.isEmpty else { throw DatasetError.empty(what: "the positive persona list") }
    guard positive.count == negative.count else {
        throw DatasetError.personaCountMismatch(positive: positive.count, negative: negative.count)
    }
    guard !suffixes.isEmpty else { throw DatasetError.empty(what: "the suffix list") }
}

/// Builds a contrastive dataset the way repeng's README and notebooks do:
/// for each suffix, for each persona pair (in order),
/// `"{userTag} {template(persona)} {assistantTag} {suffix}"` — single spaces, nothing trimmed.
///
/// The default tags are the Mistral-instruct tags repeng's examples use (`[INST]`, `[/INST]`),
/// so the output matches theirs string for string. For a model with another chat format use
/// `makeChatDataset`. Unlike Python's `zip`, persona lists of different lengths are an error
/// rather than silently truncated.
public func makeDataset(
    template: String, positivePersonas: [String], negativePersonas: [String], suffixes: [String],
    userTag: String = "[INST]", assistantTag: String = "[/INST]"
) throws -> [DatasetEntry] {
    try checkPersonas(positivePersonas, negativePersonas, suffixes)
    let pairs = try zip(positivePersonas, negativePersonas).map { p, n in
        (try formatPersonaTemplate(template, persona: p), try formatPersonaTemplate(template, persona: n))
    }
    var out: [DatasetEntry] = []
    out.reserveCapacity(suffixes.count * pairs.count)
    for suffix in suffixes {
        for (p, n) in pairs {
            out.append(DatasetEntry(positive: "\(userTag) \(p) \(assistantTag) \(suffix)",
                                    negative: "\(userTag) \(n) \(assistantTag) \(suffix)"))
        }
    }
    return out
}

// MARK: - Chat formats

/// How a user instruction and the start of the assistant's reply are laid out for a model.
public enum ChatFormat: String, Sendable, Codable, CaseIterable {
    /// `<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n{reply}` (SmolLM2, Qwen2).
    case chatML = "chatml"
    /// `<start_of_turn>user\n{instruction}<end_of_turn>\n<start_of_turn>model\n{reply}` (Gemma).
    case gemma
    /// `{instruction} {reply}`: no markup, for models without a chat template.
    case plain

    /// Picks the format from the tokenizer's chat template, then from its special tokens;
    /// `.plain` when neither names a known format.
    public static func detect(tokenizer: (any Tokenizer)?) -> ChatFormat {
        guard let tokenizer else { return .plain }
        if let t = tokenizer.chatTemplate {
            if t.contains("<|im_start|>") { return .chatML }
            if t.contains("<start_of_turn>") { return .gemma }
        }
        if tokenizer.tokenID("<|im_start|>") != nil, tokenizer.tokenID("<|im_end|>") != nil { return .chatML }
        if tokenizer.tokenID("<start_of_turn>") != nil, tokenizer.tokenID("<end_of_turn>") != nil { return .gemma }
        return .plain
    }

    /// A single user turn followed by an open assistant turn that starts with `reply`
    /// (what `apply_chat_template(..., continue_final_message=True)` yields, without any
    /// default system prompt the template might add).
    public func wrap(instruction: String, reply: String) -> String {
        switch self {
        case .chatML:
            return "<|im_start|>user\n\(instruction)<|im_end|>\n<|im_start|>assistant\n\(reply)"
        case .gemma:
            return "<start_of_turn>user\n\(instruction)<end_of_turn>\n<start_of_turn>model\n\(reply)"
        case .plain:
            return "\(instruction) \(reply)"
        }
    }
}

/// Like `makeDataset`, but each text is a chat: the persona instruction as the user message and
/// the suffix as the beginning of the assistant's reply after the generation prompt, laid out
/// by `layout` (`ChatLayout.datasetText`). Same order as `makeDataset`: suffix-major, persona
/// pairs inner.
public func makeChatDataset(
    template: String, positivePersonas: [String], negativePersonas: [String], suffixes: [String],
    layout: ChatLayout
) throws -> [DatasetEntry] {
    try checkPersonas(positivePersonas, negativePersonas, suffixes)
    let pairs = try zip(positivePersonas, negativePersonas).map { p, n in
        (try formatPersonaTemplate(template, persona: p), try formatPersonaTemplate(template, persona: n))
    }
    var out: [DatasetEntry] = []
    out.reserveCapacity(suffixes.count * pairs.count)
    for suffix in suffixes {
        for (p, n) in pairs {
            out.append(DatasetEntry(positive: try layout.datasetText(instruction: p, reply: suffix),
                                    negative: try layout.datasetText(instruction: n, reply: suffix)))
        }
    }
    return out
}

/// `makeChatDataset` in a built-in format (without any default system prompt a model's
/// template would add).
public func makeChatDataset(
    template: String, positivePersonas: [String], negativePersonas: [String], suffixes: [String],
    format: ChatFormat
) throws -> [DatasetEntry] {
    try makeChatDataset(template: template, positivePersonas: positivePersonas, negativePersonas: negativePersonas,
                        suffixes: suffixes, layout: ChatLayout(format: format))
}

/// `makeChatDataset` laid out by `model`'s own chat template, as transformers'
/// `apply_chat_template(..., add_generation_prompt=True)` renders it (including a default
/// system prompt the template adds). Throws `ChatError.noTemplate` for a model without one:
/// pass a `format` then.
public func makeChatDataset(
    template: String, positivePersonas: [String], negativePersonas: [String], suffixes: [String],
    model: any LanguageModel
) throws -> [DatasetEntry] {
    guard let tokenizer = model.tokenizer else { throw ChatError.noTemplate }
    return try makeChatDataset(template: template, positivePersonas: positivePersonas, negativePersonas: negativePersonas,
                               suffixes: suffixes, layout: ChatLayout(modelTemplateOf: tokenizer))
}

/// Every proper token prefix of every text, decoded back to a string — the "truncated
/// outputs" suffix list of repeng's notebooks (`convert_tokens_to_string(tokens[:i])` for
/// i in 1 ..< token count). Texts are tokenized without special tokens. Duplicates are kept.
public func truncatedSuffixes(_ texts: [String], tokenizer: any Tokenizer) -> [String] {
    var out: [String] = []
    for text in texts {
        let ids = tokenizer.encode(text, addSpecial: false)
        guard ids.count > 1 else { continue }
        for i in 1..<ids.count {
            out.append(tokenizer.decode(Array(ids[..<i]), skipSpecial: false))
        }
    }
    return out
}

// MARK: - Files

private func readBoundedFile(_ url: URL) throws -> Data {
    let path = url.path
    let attrs: [FileAttributeKey: Any]
    do {
        attrs = try FileManager.default.attributesOfItem(atPath: path)
    } catch {
        throw DatasetError.unreadable(path: path, reason: "no such file or not accessible")
    }
    if let type = attrs[.type] as? FileAttributeType, type != .typeRegular {
        throw DatasetError.unreadable(path: path, reason: "not a regular file")
    }
    if let size = (attrs[.size] as? NSNumber)?.intValue, size > DatasetLimits.maxFileBytes {
        throw DatasetError.fileTooLarge(path: path, bytes: size, limit: DatasetLimits.maxFileBytes)
    }
    do {
        let data = try Data(contentsOf: url)
        guard data.count <= DatasetLimits.maxFileBytes else {
            throw DatasetError.fileTooLarge(path: path, bytes: data.count, limit: DatasetLimits.maxFileBytes)
        }
        return data
    } catch let e as DatasetError {
        throw e
    } catch {
        throw DatasetError.unreadable(path: path, reason: error.localizedDescription)
    }
}

private func parseTopLevelArray(_ data: Data, path: String) throws -> [Any] {
    let json: Any
    do {
        json = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    } catch {
        throw DatasetError.invalidJSON(path: path, reason: String(describing: error))
    }
    guard let array = json as? [Any] else { throw DatasetError.notAnArray(path: path) }
    return array
}

/// Parses a dataset: a JSON array of `{"positive": string, "negative": string}` objects.
/// Other keys, non-string values and empty texts are errors naming the element.
/// `path` only labels error messages.
public func parseDataset(_ data: Data, path: String = "<data>") throws -> [DatasetEntry] {
    let array = try parseTopLevelArray(data, path: path)
    guard !array.isEmpty else { throw DatasetError.empty(what: "dataset \(path)") }
    var out: [DatasetEntry] = []
    out.reserveCapacity(array.count)
    for (i, element) in array.enumerated() {
        guard let obj = element as? [String: Any] else {
            throw DatasetError.badElement(path: path, index: i, reason: "expected an object with \"positive\" and \"negative\" strings")
        }
        for key in obj.keys.sorted() where key != "positive" && key != "negative" {
            throw DatasetError.badElement(path: path, index: i, reason: "unknown key \"\(key)\" (only \"positive\" and \"negative\" are allowed)")
        }
        var texts: [String] = []
        for key in ["positive", "negative"] {
            guard let value = obj[key] else {
                throw DatasetError.badElement(path: path, index: i, reason: "missing \"\(key)\"")
            }
            guard let s = value as? String else {
                throw DatasetError.badElement(path: path, index: i, reason: "\"\(key)\" must be a string")
            }
            guard !s.isEmpty else {
                throw DatasetError.badElement(path: path, index: i, reason: "\"\(key)\" is empty")
            }
            texts.append(s)
        }
        out.append(DatasetEntry(positive: texts[0], negative: texts[1]))
    }
    return out
}

/// Loads a dataset file (see `parseDataset`).
public func loadDataset(from url: URL) throws -> [DatasetEntry] {
    try parseDataset(readBoundedFile(url), path: url.path)
}

/// Parses a suffix list: a JSON array of strings (empty strings allowed, the list not).
public func parseSuffixes(_ data: Data, path: String = "<data>") throws -> [String] {
    let array = try parseTopLevelArray(data, path: path)
    guard !array.isEmpty else { throw DatasetError.empty(what: "suffix list \(path)") }
    return try array.enumerated().map { i, element in
        guard let s = element as? String else {
            throw DatasetError.badElement(path: path, index: i, reason: "expected a string")
        }
        return s
    }
}

/// Loads a suffix list file (see `parseSuffixes`).
public func loadSuffixes(from url: URL) throws -> [String] {
    try parseSuffixes(readBoundedFile(url), path: url.path)
}

/// Writes a dataset as a JSON array of `{"positive", "negative"}` objects (keys sorted,
/// pretty-printed), readable by `loadDataset` and by Python's `json.load`.
public func encodeDataset(_ dataset: [DatasetEntry]) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(dataset)
}
