// Reads a Hugging Face tokenizer folder (tokenizer.json of tokenizers 0.23, tokenizer_config.json and chat_template.jinja of transformers 5) into a tokenizer.

import Foundation

/// Builds the tokenizer of a Hugging Face model folder.
///
/// Reads `tokenizer.json` (the `tokenizers` library's serialization: model BPE, normalizer,
/// pre-tokenizer, post-processor, decoder, added tokens) and, when present,
/// `tokenizer_config.json` (BOS/EOS/UNK/PAD token names, `add_bos_token` / `add_eos_token`,
/// `added_tokens_decoder`, `chat_template`) and `chat_template.jinja` (which wins over the
/// config's template, as in transformers; so does `chat_template.json`).
///
/// Ids and decoded text follow the `tokenizers` library and transformers 5.24: `add_bos_token` /
/// `add_eos_token` add BOS / EOS with `encode(_:addSpecial: true)` only when tokenizer.json has no
/// post-processor (transformers 4 also honoured them beside one). Token names from tokenizer_config.json that are in the vocabulary but not added tokens
/// become special added tokens, as transformers makes them.
///
/// Throws `TokenizerError` naming the file and key at fault: a missing or oversized file
/// (tokenizer.json is read up to 64 MiB), invalid JSON, a component `type` this engine does not
/// implement (model WordPiece/Unigram/WordLevel, normalizers BertNormalizer/Nmt/Precompiled,
/// pre-tokenizers UnicodeScripts/FixedLength, decoders WordPiece/CTC), a regex Swift's `Regex`
/// cannot compile, merges or template tokens missing from the vocabulary, or ids outside
/// 0 ... 2³¹ − 1.
public func makeTokenizer(huggingFaceFolder path: String) throws -> any Tokenizer {
    let folder = URL(fileURLWithPath: path)
    let jsonPath = folder.appendingPathComponent("tokenizer.json").path
    guard FileManager.default.fileExists(atPath: jsonPath) else {
        let hint = FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.model").path)
            ? " (the folder has only a SentencePiece tokenizer.model, which this engine does not read)" : ""
        throw TokenizerError.fileUnreadable(file: jsonPath, reason: "no such file\(hint)")
    }
    let tokenizerJSON = try HFFiles.readObject(jsonPath, limit: HFFiles.maxTokenizerJSON)
    let configPath = folder.appendingPathComponent("tokenizer_config.json").path
    let config = FileManager.default.fileExists(atPath: configPath)
        ? try HFFiles.readObject(configPath, limit: HFFiles.maxConfig) : nil
    var chatTemplate: String? = nil
    if let config { chatTemplate = try HFFiles.chatTemplate(in: config, file: configPath) }
    let templateJSONPath = folder.appendingPathComponent("chat_template.json").path
    if FileManager.default.fileExists(atPath: templateJSONPath) {
        let o = try HFFiles.readObject(templateJSONPath, limit: HFFiles.maxConfig)
        if let t = try HFFiles.chatTemplate(in: o, file: templateJSONPath) { chatTemplate = t }
    }
    let jinjaPath = folder.appendingPathComponent("chat_template.jinja").path
    if FileManager.default.fileExists(atPath: jinjaPath) {
        let bytes = try HFFiles.read(jinjaPath, limit: HFFiles.maxConfig)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw TokenizerError.fileUnreadable(file: jinjaPath, reason: "not valid UTF-8")
        }
        chatTemplate = s
    }
    return try HFTokenizerBuilder(json: tokenizerJSON, file: jsonPath, config: config, configFile: configPath)
        .build(chatTemplate: chatTemplate)
}

/// Builds a tokenizer from the bytes of a tokenizer.json (and of a tokenizer_config.json), as
/// `makeTokenizer(huggingFaceFolder:)` reads them from a folder.
public func makeTokenizer(tokenizerJSON bytes: [UInt8], config configBytes: [UInt8]? = nil) throws -> any Tokenizer {
    func object(_ b: [UInt8], _ file: String) throws -> JSONObject {
        let value: JSONValue
        do { value = try JSONReader.parse(b) } catch { throw TokenizerError.invalidJSON(file: file, message: error.description) }
        guard let o = value.object else {
            throw TokenizerError.invalidValue(file: file, key: "(top level)", expected: "a JSON object, not \(value.kind)")
        }
        return o
    }
    let config = try configBytes.map { try object($0, "tokenizer_config.json") }
    let template = try config.flatMap { try HFFiles.chatTemplate(in: $0, file: "tokenizer_config.json") }
    return try makeTokenizer(tokenizerJSON: object(bytes, "tokenizer.json"), config: config, chatTemplate: template)
}

/// Builds a tokenizer from the parsed contents of tokenizer.json (and tokenizer_config.json).
/// `file` and `configFile` only name the sources in errors.
func makeTokenizer(
    tokenizerJSON: JSONObject, file: String = "tokenizer.json", config: JSONObject? = nil,
    configFile: String = "tokenizer_config.json", chatTemplate: String? = nil
) throws -> any Tokenizer {
    try HFTokenizerBuilder(json: tokenizerJSON, file: file, config: config, configFile: configFile).build(chatTemplate: chatTemplate)
}

/// Bounded reads of the folder's files.
enum HFFiles {
    /// Largest tokenizer.json read (the biggest published ones, with 256k-token vocabularies, are
    /// about 35 MB).
    static let maxTokenizerJSON = 64 << 20
    /// Largest tokenizer_config.json, chat_template.json or chat_template.jinja read.
    static let maxConfig = 16 << 20

    static func read(_ path: String, limit: Int) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TokenizerError.fileUnreadable(file: path, reason: "cannot open it")
        }
        defer { try? handle.close() }
        let data: Data?
        do { data = try handle.read(upToCount: limit + 1) } catch {
            throw TokenizerError.fileUnreadable(file: path, reason: "\(error.localizedDescription)")
        }
        let bytes = [UInt8](data ?? Data())
        guard bytes.count <= limit else {
            throw TokenizerError.fileUnreadable(file: path, reason: "larger than \(limit >> 20) MiB")
        }
        return bytes
    }

    static func readObject(_ path: String, limit: Int) throws -> JSONObject {
        let bytes = try read(path, limit: limit)
        let value: JSONValue
        do { value = try JSONReader.parse(bytes) } catch {
            throw TokenizerError.invalidJSON(file: path, message: error.description)
        }
        guard let o = value.object else {
            throw TokenizerError.invalidValue(file: path, key: "(top level)", expected: "a JSON object, not \(value.kind)")
        }
        return o
    }

    /// `chat_template`: a string, or a list of `{name, template}` of which "default" is taken.
    static func chatTemplate(in o: JSONObject, file: String) throws -> String? {
        guard let v = o["chat_template"], !v.isNull else { return nil }
        if let s = v.string { return s }
        if let list = v.array {
            for (k, item) in list.enumerated() {
                guard let name = item["name"]?.string, let template = item["template"]?.string else {
                    throw TokenizerError.invalidValue(file: file, key: "chat_template[\(k)]", expected: "an object with string name and template")
                }
                if name == "default" { return template }
            }
            return nil
        }
        throw TokenizerError.invalidValue(file: file, key: "chat_template", expected: "a string or a list of {name, template}")
    }
}

/// Turns tokenizer.json (+ tokenizer_config.json) into an `HFPipelineTokenizer`, checking every value.
struct HFTokenizerBuilder {
    let json: JSONObject
    let file: String
    let config: JSONObject?
    let configFile: String

    /// An added token as tokenizers stores it.
    struct Added {
        var id: Int32
        var content: String
        var flags: HFAddedTokenFlags
        var normalized: Bool
        var special: Bool
    }

    /// Added tokens in order, found by content compared byte for byte (as tokenizers' map does).
    struct AddedList {
        private(set) var items: [Added] = []
        private var index = ByteStringTable(capacity: 64)

        func position(of content: String) -> Int? { index.lookup(content).map(Int.init) }

        /// Replaces the token with the same content, or appends.
        mutating func put(_ a: Added) {
            if let k = position(of: a.content) {
                items[k] = a
            } else {
                index.insert(Array(a.content.utf8), id: Int32(items.count))
                items.append(a)
            }
        }

        mutating func update(_ k: Int, _ change: (inout Added) -> Void) { change(&items[k]) }
    }

    func fail(_ key: String, _ expected: String) -> TokenizerError {
        .invalidValue(file: file, key: key, expected: expected)
    }

    // MARK: typed access

    func object(_ v: JSONValue?, _ key: String) throws -> JSONObject {
        guard let o = v?.object else { throw fail(key, "an object") }
        return o
    }

    func string(_ v: JSONValue?, _ key: String) throws -> String {
        guard let s = v?.string else { throw fail(key, "a string") }
        return s
    }

    func optionalString(_ v: JSONValue?, _ key: String) throws -> String? {
        guard let v, !v.isNull else { return nil }
        guard let s = v.string else { throw fail(key, "a string or null") }
        return s
    }

    func bool(_ v: JSONValue?, _ key: String, default d: Bool) throws -> Bool {
        guard let v, !v.isNull else { return d }
        guard let b = v.bool else { throw fail(key, "true or false") }
        return b
    }

    func count(_ v: JSONValue?, _ key: String, default d: Int) throws -> Int {
        guard let v, !v.isNull else { return d }
        guard let i = v.int, i >= 0 else { throw fail(key, "a count of at least 0") }
        return i
    }

    func id(_ v: JSONValue?, _ key: String) throws -> Int32 {
        guard let i = v?.int, i >= 0, let small = Int32(exactly: i) else {
            throw fail(key, "a token id in 0 ... \(Int32.max)")
        }
        return small
    }

    /// A single character (`Metaspace.replacement`, `Strip.content`, `CharDelimiterSplit.delimiter`).
    func character(_ v: JSONValue?, _ key: String) throws -> UInt32 {
        guard let s = v?.string, s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else {
            throw fail(key, "a string of one character")
        }
        return c.value
    }

    func type(_ o: JSONObject, _ key: String) throws -> String {
        try string(o["type"], key + ".type")
    }

    func unsupported(_ key: String, _ type: String) -> TokenizerError {
        .unsupportedComponent(file: file, key: key, type: type)
    }

    // MARK: build

    func build(chatTemplate: String?) throws -> any Tokenizer {
        let modelObject = try object(json["model"], "model")
        let modelType = modelObject["type"]?.string ?? (modelObject["merges"] != nil ? "BPE" : "")
        guard modelType == "BPE" else { throw unsupported("model", modelType.isEmpty ? "(none)" : modelType) }

        // Vocabulary, keyed by bytes (two spellings that Swift would call equal stay apart).
        guard let vocab = modelObject["vocab"]?.object else { throw fail("model.vocab", "an object of token → id") }
        var table = ByteStringTable(capacity: vocab.count)
        var spelling: [Int32: String] = [:]
        spelling.reserveCapacity(vocab.count)
        var maxID: Int32 = -1
        for (token, value) in vocab.pairs {
            let i = try id(value, "model.vocab[\(quoted(token))]")
            var t = token
            t.withUTF8 { table.insert($0, id: i) }
            spelling[i] = token
            maxID = max(maxID, i)
        }

        let normalizer = try json["normalizer"].flatMap { $0.isNull ? nil : $0 }.map { try self.normalizer($0, "normalizer") }
        let preTokenizer = try json["pre_tokenizer"].flatMap { $0.isNull ? nil : $0 }.map { try self.preTokenizer($0, "pre_tokenizer") }
        let decoder = try json["decoder"].flatMap { $0.isNull ? nil : $0 }.map { try self.decoder($0, "decoder") }

        let merges = try mergeTable(modelObject, table)
        let prefix = try optionalString(modelObject["continuing_subword_prefix"], "model.continuing_subword_prefix") ?? ""
        let suffix = try optionalString(modelObject["end_of_word_suffix"], "model.end_of_word_suffix") ?? ""
        guard prefix.isEmpty else { throw fail("model.continuing_subword_prefix", "null or empty (subword prefixes are not supported)") }
        guard suffix.isEmpty else { throw fail("model.end_of_word_suffix", "null or empty (word suffixes are not supported)") }
        if let d = modelObject["dropout"], !d.isNull, d.double == nil { throw fail("model.dropout", "a number or null") }
        // tokenizers fails at encode time when the unknown token is not in the vocabulary; here
        // such characters are dropped instead.
        let unkName = try optionalString(modelObject["unk_token"], "model.unk_token")
        let model = HFBPEModel(
            table: table, merges: merges,
            byteFallback: try bool(modelObject["byte_fallback"], "model.byte_fallback", default: false),
            unkID: unkName.flatMap { table.lookup($0) },
            fuseUnk: try bool(modelObject["fuse_unk"], "model.fuse_unk", default: false),
            ignoreMerges: try bool(modelObject["ignore_merges"], "model.ignore_merges", default: false))

        // Added tokens: tokenizer.json, then transformers' additions from tokenizer_config.json.
        var addedList = AddedList()
        if let list = json["added_tokens"], !list.isNull {
            guard let items = list.array else { throw fail("added_tokens", "an array") }
            for (k, item) in items.enumerated() {
                let key = "added_tokens[\(k)]"
                let o = try object(item, key)
                let content = try string(o["content"], key + ".content")
                if content.isEmpty { continue }  // tokenizers ignores empty added tokens
                let special = try bool(o["special"], key + ".special", default: false)
                let entry = Added(
                    id: try id(o["id"], key + ".id"), content: content,
                    flags: HFAddedTokenFlags(
                        singleWord: try bool(o["single_word"], key + ".single_word", default: false),
                        lstrip: try bool(o["lstrip"], key + ".lstrip", default: false),
                        rstrip: try bool(o["rstrip"], key + ".rstrip", default: false)),
                    normalized: try bool(o["normalized"], key + ".normalized", default: !special),
                    special: special)
                addedList.put(entry)
            }
        }
        let cfg = HFConfigReader(config: config, file: configFile)
        try cfg.merge(into: &addedList, vocabulary: table)
        let added = addedList.items
        for a in added { maxID = max(maxID, a.id) }

        let entries = Int(vocab.count) + added.count
        guard maxID >= 0 else { throw fail("model.vocab", "a non-empty vocabulary") }
        // Ids index per-token tables; a sparse id far past the entries would only waste memory.
        guard Int(maxID) < 2 * entries + 1024 else {
            throw fail("model.vocab", "ids below \(2 * entries + 1024) for \(entries) tokens (found id \(maxID))")
        }
        let size = Int(maxID) + 1

        var tokens = [[UInt32]?](repeating: nil, count: size)
        for (i, s) in spelling { tokens[Int(i)] = UnicodeText.scalars(s) }
        var special = [Bool](repeating: false, count: size)
        var addedContents = ByteStringTable(capacity: max(added.count, 1))
        var rawEntries: [(bytes: [UInt8], id: Int32, flags: HFAddedTokenFlags)] = []
        var normalizedEntries: [(bytes: [UInt8], id: Int32, flags: HFAddedTokenFlags)] = []
        for a in added {
            addedContents.insert(Array(a.content.utf8), id: a.id)
            var shown = UnicodeText.scalars(a.content)
            if a.normalized {
                var t = PipelineText(scalars: shown, origins: [Int](repeating: 0, count: shown.count))
                normalizer?.normalize(&t)
                shown = t.scalars
                var bytes: [UInt8] = []
                for v in shown { UnicodeText.appendUTF8(v, to: &bytes) }
                if !bytes.isEmpty { normalizedEntries.append((bytes, a.id, a.flags)) }
            } else {
                rawEntries.append((Array(a.content.utf8), a.id, a.flags))
            }
            tokens[Int(a.id)] = shown
            if a.special { special[Int(a.id)] = true }
        }

        let lookup: (String) -> Int32? = { addedContents.lookup($0) ?? table.lookup($0) }
        var template = try json["post_processor"].flatMap { $0.isNull ? nil : $0 }
            .map { try self.postProcessor($0, "post_processor", size: size) } ?? [.sequence]
        let bos = try cfg.tokenID("bos_token", lookup)
        let eos = try cfg.tokenID("eos_token", lookup)
        // The flags count only without a post-processor, as in transformers 5.24.
        let hasPostProcessor = json["post_processor"].map { !$0.isNull } ?? false
        if !hasPostProcessor, try cfg.flag("add_bos_token"), let bos, !Self.prefix(template).contains(bos) { template.insert(.special([bos]), at: 0) }
        if !hasPostProcessor, try cfg.flag("add_eos_token"), let eos, !Self.suffix(template).contains(eos) { template.append(.special([eos])) }
        // A bare tokenizer.json (no tokenizer_config.json): the template's first and last special
        // tokens. With a config, only the tokens it names, as in transformers.
        let templatePrefix = Self.prefix(template), templateSuffix = Self.suffix(template)
        let guessFromTemplate = config == nil

        return HFPipelineTokenizer(
            model: model, normalizer: normalizer, preTokenizer: preTokenizer, decoder: decoder,
            rawAdded: HFAddedTokenMatcher(rawEntries), normalizedAdded: HFAddedTokenMatcher(normalizedEntries),
            template: template, tokens: tokens, special: special, addedContents: addedContents, vocabulary: table,
            bosID: bos ?? (guessFromTemplate ? templatePrefix.first : nil),
            eosID: eos ?? (guessFromTemplate ? templateSuffix.last : nil),
            chatTemplate: chatTemplate)
    }

    /// The special ids a template puts before the first sequence.
    static func prefix(_ template: [TemplateItem]) -> [Int32] {
        var out: [Int32] = []
        for item in template {
            guard case .special(let s) = item else { break }
            out += s
        }
        return out
    }

    /// The special ids a template puts after the last sequence.
    static func suffix(_ template: [TemplateItem]) -> [Int32] {
        var out: [Int32] = []
        for item in template.reversed() {
            guard case .special(let s) = item else { break }
            out = s + out
        }
        return out
    }

    func quoted(_ s: String) -> String {
        let short = s.unicodeScalars.count > 40 ? String(String.UnicodeScalarView(s.unicodeScalars.prefix(40))) + "…" : s
        return "\"" + short + "\""
    }

    /// `model.merges`: "left right" strings (lines starting "#version" skipped) or [left, right] pairs.
    func mergeTable(_ model: JSONObject, _ table: ByteStringTable) throws -> MergeTable {
        guard let list = model["merges"]?.array else { throw fail("model.merges", "an array of merges") }
        var merges = MergeTable(capacity: list.count)
        var rank: UInt32 = 0
        var joined: [UInt8] = []
        for (k, item) in list.enumerated() {
            let key = "model.merges[\(k)]"
            let left: String, right: String
            if let rule = item.string {
                if rule.hasPrefix("#version") { continue }
                let parts = rule.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail(key, "two tokens separated by one space, not \(quoted(rule))") }
                left = String(parts[0])
                right = String(parts[1])
            } else if let pair = item.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                left = a
                right = b
            } else {
                throw fail(key, "a string \"left right\" or a pair [left, right]")
            }
            guard let l = table.lookup(left) else { throw TokenizerError.unknownToken(file: file, key: key, token: left) }
            guard let r = table.lookup(right) else { throw TokenizerError.unknownToken(file: file, key: key, token: right) }
            joined.removeAll(keepingCapacity: true)
            joined.append(contentsOf: left.utf8)
            joined.append(contentsOf: right.utf8)
            guard let m = table.lookup(joined) else { throw TokenizerError.unknownToken(file: file, key: key, token: left + right) }
            merges.insert(l, r, rank: rank, merged: m)
            rank &+= 1
        }
        return merges
    }

    // MARK: components

    func pattern(_ v: JSONValue?, _ key: String) throws -> HFPattern {
        let o = try object(v, key)
        if let s = o["String"]?.string { return .literal(UnicodeText.scalars(s)) }
        if let r = o["Regex"]?.string {
            if let kind = HFPattern.knownRegexes[r] { return .scanner(kind) }
            do { return .regex(try HFRegex(r)) } catch {
                throw TokenizerError.unsupportedPattern(file: file, key: key, pattern: r, reason: error.reason)
            }
        }
        throw fail(key, "{\"String\": …} or {\"Regex\": …}")
    }

    func behavior(_ v: JSONValue?, _ key: String, default d: SplitBehavior? = nil) throws -> SplitBehavior {
        if let d, v == nil || v?.isNull == true { return d }
        guard let s = v?.string, let b = SplitBehavior(rawValue: s) else {
            throw fail(key, "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
        }
        return b
    }

    func list(_ o: JSONObject, _ name: String, _ key: String) throws -> [JSONValue] {
        guard let a = o[name]?.array else { throw fail(key + "." + name, "an array") }
        return a
    }

    func normalizer(_ v: JSONValue, _ key: String) throws -> HFNormalizer {
        let o = try object(v, key)
        let t = try type(o, key)
        switch t {
        case "NFC": return .unicode(.nfc)
        case "NFD": return .unicode(.nfd)
        case "NFKC": return .unicode(.nfkc)
        case "NFKD": return .unicode(.nfkd)
        case "Lowercase": return .lowercase
        case "StripAccents": return .stripAccents
        case "ByteLevel": return .byteLevel
        case "Strip":
            return .strip(
                left: try bool(o["strip_left"], key + ".strip_left", default: true),
                right: try bool(o["strip_right"], key + ".strip_right", default: true))
        case "Replace":
            return .replace(try pattern(o["pattern"], key + ".pattern"), content: UnicodeText.scalars(try string(o["content"], key + ".content")))
        case "Prepend":
            return .prepend(UnicodeText.scalars(try string(o["prepend"], key + ".prepend")))
        case "Sequence":
            return .sequence(try list(o, "normalizers", key).enumerated().map { try normalizer($1, "\(key).normalizers[\($0)]") })
        default:
            throw unsupported(key, t)
        }
    }

    func preTokenizer(_ v: JSONValue, _ key: String) throws -> HFPreTokenizer {
        let o = try object(v, key)
        let t = try type(o, key)
        switch t {
        case "ByteLevel":
            return .byteLevel(
                addPrefixSpace: try bool(o["add_prefix_space"], key + ".add_prefix_space", default: true),
                useRegex: try bool(o["use_regex"], key + ".use_regex", default: true))
        case "Metaspace":
            return .metaspace(
                replacement: try character(o["replacement"], key + ".replacement"),
                prependScheme: try prependScheme(o, key), split: try bool(o["split"], key + ".split", default: true))
        case "Split":
            return .split(
                try pattern(o["pattern"], key + ".pattern"), try behavior(o["behavior"], key + ".behavior"),
                invert: try bool(o["invert"], key + ".invert", default: false))
        case "Digits":
            let individual = try bool(o["individual_digits"], key + ".individual_digits", default: false)
            return .split(.predicate(.numeric), individual ? .isolated : .contiguous, invert: false)
        case "Punctuation":
            return .split(.predicate(.punctuation), try behavior(o["behavior"], key + ".behavior", default: .isolated), invert: false)
        case "Whitespace":
            return .whitespace
        case "WhitespaceSplit":
            return .split(.predicate(.whitespace), .removed, invert: false)
        case "BertPreTokenizer":
            return .sequence([.split(.predicate(.whitespace), .removed, invert: false), .split(.predicate(.punctuation), .isolated, invert: false)])
        case "CharDelimiterSplit":
            return .split(.predicate(.equals(try character(o["delimiter"], key + ".delimiter"))), .removed, invert: false)
        case "Sequence":
            return .sequence(try list(o, "pretokenizers", key).enumerated().map { try preTokenizer($1, "\(key).pretokenizers[\($0)]") })
        default:
            throw unsupported(key, t)
        }
    }

    /// Metaspace's `prepend_scheme`, or the older `add_prefix_space` flag (false = never).
    func prependScheme(_ o: JSONObject, _ key: String) throws -> PrependScheme {
        if let v = o["prepend_scheme"], !v.isNull {
            guard let s = v.string, let scheme = PrependScheme(rawValue: s) else { throw fail(key + ".prepend_scheme", "first, always or never") }
            return scheme
        }
        return try bool(o["add_prefix_space"], key + ".add_prefix_space", default: true) ? .always : .never
    }

    func decoder(_ v: JSONValue, _ key: String) throws -> HFDecoder {
        let o = try object(v, key)
        let t = try type(o, key)
        switch t {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Metaspace":
            return .metaspace(replacement: try character(o["replacement"], key + ".replacement"), prependScheme: try prependScheme(o, key))
        case "Strip":
            return .strip(
                content: try character(o["content"], key + ".content"),
                start: try count(o["start"], key + ".start", default: 0), stop: try count(o["stop"], key + ".stop", default: 0))
        case "Replace":
            return .replace(try pattern(o["pattern"], key + ".pattern"), content: UnicodeText.scalars(try string(o["content"], key + ".content")))
        case "BPEDecoder":
            return .bpeSuffix(UnicodeText.scalars(try optionalString(o["suffix"], key + ".suffix") ?? "</w>"))
        case "Sequence":
            return .sequence(try list(o, "decoders", key).enumerated().map { try decoder($1, "\(key).decoders[\($0)]") })
        default:
            throw unsupported(key, t)
        }
    }

    /// The single-sequence template of a post-processor.
    func postProcessor(_ v: JSONValue, _ key: String, size: Int) throws -> [TemplateItem] {
        let o = try object(v, key)
        let t = try type(o, key)
        func checked(_ i: Int32, _ k: String) throws -> Int32 {
            guard Int(i) < size else { throw TokenizerError.tokenIDOutOfRange(key: "\(file): \(k)", id: Int(i), vocabularySize: size) }
            return i
        }
        switch t {
        case "ByteLevel":
            return [.sequence]
        case "TemplateProcessing":
            let specials = try object(o["special_tokens"], key + ".special_tokens")
            var items: [TemplateItem] = []
            for (k, piece) in try list(o, "single", key).enumerated() {
                let pk = "\(key).single[\(k)]"
                let p = try object(piece, pk)
                if let s = p["Sequence"] {
                    guard try string(try object(s, pk + ".Sequence")["id"], pk + ".Sequence.id") == "A" else {
                        throw fail(pk + ".Sequence.id", "\"A\" (a single-sequence template has no B)")
                    }
                    items.append(.sequence)
                } else if let s = p["SpecialToken"] {
                    let name = try string(try object(s, pk + ".SpecialToken")["id"], pk + ".SpecialToken.id")
                    guard let entry = specials[name]?.object else {
                        throw TokenizerError.unknownToken(file: file, key: key + ".special_tokens", token: name)
                    }
                    guard let ids = entry["ids"]?.array else { throw fail("\(key).special_tokens[\(quoted(name))].ids", "an array of ids") }
                    items.append(.special(try ids.enumerated().map { try checked(try id($1, "\(key).special_tokens[\(quoted(name))].ids[\($0)]"), key) }))
                } else {
                    throw fail(pk, "{\"Sequence\": …} or {\"SpecialToken\": …}")
                }
            }
            return items
        case "RobertaProcessing", "BertProcessing":
            func token(_ name: String) throws -> Int32 {
                guard let pair = o[name]?.array, pair.count == 2 else { throw fail("\(key).\(name)", "a pair [token, id]") }
                return try checked(try id(pair[1], "\(key).\(name)[1]"), "\(key).\(name)")
            }
            return [.special([try token("cls")]), .sequence, .special([try token("sep")])]
        case "Sequence":
            var items: [TemplateItem] = [.sequence]
            for (k, p) in try list(o, "processors", key).enumerated() {
                let outer = try postProcessor(p, "\(key).processors[\(k)]", size: size)
                items = outer.flatMap { $0 == .sequence ? items : [$0] }
            }
            return items
        default:
            throw unsupported(key, t)
        }
    }
}

/// The keys of tokenizer_config.json this engine reads (transformers 5's `TokenizersBackend`).
struct HFConfigReader {
    let config: JSONObject?
    let file: String

    static let namedTokens = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"]

    func fail(_ key: String, _ expected: String) -> TokenizerError {
        .invalidValue(file: file, key: key, expected: expected)
    }

    func flag(_ key: String) throws -> Bool {
        guard let v = config?[key], !v.isNull else { return false }
        guard let b = v.bool else { throw fail(key, "true or false") }
        return b
    }

    /// A token given as a string or an AddedToken object `{"content": …, "lstrip": …}`.
    func addedToken(_ v: JSONValue, _ key: String) throws -> (content: String, flags: HFAddedTokenFlags, normalized: Bool?, special: Bool?)? {
        if v.isNull { return nil }
        if let s = v.string { return (s, HFAddedTokenFlags(), nil, nil) }
        guard let o = v.object, let content = o["content"]?.string else { throw fail(key, "a token string or an object with a content string") }
        func b(_ name: String) throws -> Bool? {
            guard let x = o[name], !x.isNull else { return nil }
            guard let y = x.bool else { throw fail("\(key).\(name)", "true or false") }
            return y
        }
        return (content, HFAddedTokenFlags(singleWord: try b("single_word") ?? false, lstrip: try b("lstrip") ?? false, rstrip: try b("rstrip") ?? false),
                try b("normalized"), try b("special"))
    }

    /// The id of a named special token, if the config names one that exists.
    func tokenID(_ key: String, _ lookup: (String) -> Int32?) throws -> Int32? {
        guard let v = config?[key], let t = try addedToken(v, key) else { return nil }
        return lookup(t.content)
    }

    /// transformers' additions to the added tokens: `added_tokens_decoder` entries (which override
    /// the flags of a token with the same content), then named special tokens and
    /// `additional_special_tokens` / `extra_special_tokens` that are not added tokens yet. Tokens
    /// not in the vocabulary are ignored (transformers would give them new ids no model knows).
    func merge(into added: inout HFTokenizerBuilder.AddedList, vocabulary: ByteStringTable) throws {
        guard let config else { return }
        func add(_ content: String, _ flags: HFAddedTokenFlags, normalized: Bool, special: Bool, override: Bool) {
            if let k = added.position(of: content) {
                if override {
                    added.update(k) {
                        $0.flags = flags
                        $0.normalized = normalized
                        $0.special = special
                    }
                }
                return
            }
            guard let id = vocabulary.lookup(content) else { return }
            added.put(.init(id: id, content: content, flags: flags, normalized: normalized, special: special))
        }
        if let decoderEntries = config["added_tokens_decoder"], !decoderEntries.isNull {
            guard let o = decoderEntries.object else { throw fail("added_tokens_decoder", "an object of id → token") }
            for (idText, value) in o.pairs {
                let key = "added_tokens_decoder[\"\(idText)\"]"
                guard let t = try addedToken(value, key) else { continue }
                if t.content.isEmpty { continue }
                let special = t.special ?? false
                add(t.content, t.flags, normalized: t.normalized ?? !special, special: special, override: true)
            }
        }
        var named: [(JSONValue, String)] = Self.namedTokens.compactMap { k in config[k].map { ($0, k) } }
        for listKey in ["additional_special_tokens", "extra_special_tokens"] {
            guard let v = config[listKey], !v.isNull else { continue }
            if let a = v.array {
                named += a.enumerated().map { ($1, "\(listKey)[\($0)]") }
            } else if let o = v.object {
                named += o.pairs.map { ($1, "\(listKey)[\"\($0)\"]") }
            } else {
                throw fail(listKey, "a list of tokens")
            }
        }
        for (v, key) in named {
            guard let t = try addedToken(v, key), !t.content.isEmpty else { continue }
            add(t.content, t.flags, normalized: t.normalized ?? false, special: true, override: false)
        }
    }
}
