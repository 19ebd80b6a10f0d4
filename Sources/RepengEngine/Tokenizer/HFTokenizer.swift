// A tokenizer running a Hugging Face tokenizer.json pipeline (tokenizers 0.23: added vocabulary, normalizer, pre-tokenizer, BPE, post-processor, decoder).

/// The BPE model of a tokenizer.json (`model.type` = "BPE"), run like tokenizers' `BPE::merge_word`:
/// each character's token (else its `<0xNN>` byte tokens with `byte_fallback`, else the unknown
/// token, fused over a run with `fuse_unk`), then merges by rank.
struct HFBPEModel: Sendable {
    /// Vocabulary spellings (UTF-8) → id.
    let table: ByteStringTable
    let merges: MergeTable
    /// Id of the one-character token for each scalar below 0x800, -1 if none.
    let smallScalar: [Int32]
    /// Ids of `<0x00>` … `<0xFF>` when `byte_fallback` is on (-1 where absent).
    let byteFallback: [Int32]?
    let unkID: Int32?
    let fuseUnk: Bool
    /// Llama-3's `ignore_merges`: a piece that is itself a token is that token.
    let ignoreMerges: Bool

    static let smallScalarLimit: UInt32 = 0x800

    init(table: ByteStringTable, merges: MergeTable, byteFallback: Bool, unkID: Int32?, fuseUnk: Bool, ignoreMerges: Bool) {
        self.table = table
        self.merges = merges
        var small = [Int32](repeating: -1, count: Int(Self.smallScalarLimit))
        var buffer: [UInt8] = []
        for v in 0 ..< Self.smallScalarLimit {
            buffer.removeAll(keepingCapacity: true)
            UnicodeText.appendUTF8(v, to: &buffer)
            small[Int(v)] = table.lookup(buffer) ?? -1
        }
        smallScalar = small
        if byteFallback {
            let hex = Array("0123456789ABCDEF".utf8)
            self.byteFallback = (0 ..< 256).map { b in
                table.lookup([0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]) ?? -1
            }
        } else {
            self.byteFallback = nil
        }
        self.unkID = unkID
        self.fuseUnk = fuseUnk
        self.ignoreMerges = ignoreMerges
    }

    func tokenize(_ piece: [UInt32], into out: inout [Int32], workspace w: inout BPEWorkspace) {
        if piece.isEmpty { return }
        if ignoreMerges {
            w.bytes.removeAll(keepingCapacity: true)
            for v in piece { UnicodeText.appendUTF8(v, to: &w.bytes) }
            if let id = table.lookup(w.bytes) {
                out.append(id)
                return
            }
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(piece.count)
        var unknownPending = false
        var char: [UInt8] = []
        char.reserveCapacity(4)
        for v in piece {
            var id: Int32 = -1
            if v < Self.smallScalarLimit {
                id = smallScalar[Int(v)]
            } else {
                char.removeAll(keepingCapacity: true)
                UnicodeText.appendUTF8(v, to: &char)
                id = table.lookup(char) ?? -1
            }
            if id >= 0 {
                if unknownPending, let unk = unkID {
                    symbols.append(unk)
                    unknownPending = false
                }
                symbols.append(id)
                continue
            }
            if let fallback = byteFallback {
                char.removeAll(keepingCapacity: true)
                UnicodeText.appendUTF8(v, to: &char)
                if char.allSatisfy({ fallback[Int($0)] >= 0 }) {
                    // tokenizers adds the byte tokens without first flushing a pending unknown token.
                    for b in char { symbols.append(fallback[Int(b)]) }
                    continue
                }
            }
            if let unk = unkID {
                if unknownPending && !fuseUnk { symbols.append(unk) }
                unknownPending = true
            }
        }
        if unknownPending, let unk = unkID { symbols.append(unk) }
        BPE.merge(&symbols, ranker: ByteLevelBPETokenizer.Ranker(merges: merges), workspace: &w)
        out.append(contentsOf: symbols)
    }
}

/// An added token's matching flags (tokenizers' `AddedToken`).
struct HFAddedTokenFlags: Sendable, Equatable {
    var singleWord = false
    var lstrip = false
    var rstrip = false
}

/// A run of text between added tokens, or an added token.
enum AddedSegment: Equatable {
    case text(Range<Int>)
    case token(Int32)
}

/// The added tokens matched in one text (raw, or normalized), with tokenizers' `find_matches`
/// rules: leftmost-longest matches, `single_word` matches dropped when a word character touches
/// them, `lstrip` / `rstrip` taking the whitespace on that side.
struct HFAddedTokenMatcher: Sendable {
    let trie: AddedTokenMatcher
    let flags: [Int32: HFAddedTokenFlags]

    var isEmpty: Bool { trie.isEmpty }

    init(_ entries: [(bytes: [UInt8], id: Int32, flags: HFAddedTokenFlags)]) {
        trie = AddedTokenMatcher(entries.map { ($0.bytes, $0.id) })
        var f: [Int32: HFAddedTokenFlags] = [:]
        for e in entries where f[e.id] == nil { f[e.id] = e.flags }
        flags = f
    }

    /// Segments of valid UTF-8 `bytes` (byte ranges, possibly empty).
    func segments(_ bytes: UnsafeBufferPointer<UInt8>) -> [AddedSegment] {
        let n = bytes.count
        if trie.isEmpty { return [.text(0 ..< n)] }
        var out: [AddedSegment] = []
        var startOffset = 0
        var i = 0
        while i < n {
            guard let m = trie.longestMatch(bytes, at: i) else {
                i += 1
                continue
            }
            var start = i
            var stop = m.end
            i = m.end
            let f = flags[m.id] ?? HFAddedTokenFlags()
            if f.singleWord {
                let before = start == 0 ? nil : Self.scalar(before: start, in: bytes)
                let after = stop == n ? nil : Self.scalar(at: stop, in: bytes)
                if let b = before, UnicodeText.isWordCharacter(b.value) { continue }
                if let a = after, UnicodeText.isWordCharacter(a.value) { continue }
            }
            if f.lstrip {
                var s = start
                while s > 0, let c = Self.scalar(before: s, in: bytes), UnicodeText.isWhitespace(c.value) { s -= c.length }
                start = max(s, startOffset)
            }
            if f.rstrip {
                while stop < n, let c = Self.scalar(at: stop, in: bytes), UnicodeText.isWhitespace(c.value) { stop += c.length }
            }
            if startOffset < start { out.append(.text(startOffset ..< start)) }
            out.append(.token(m.id))
            startOffset = stop
        }
        if startOffset != n, startOffset < n { out.append(.text(startOffset ..< n)) }
        return out
    }

    /// The scalar starting at byte `i` and its length.
    static func scalar(at i: Int, in b: UnsafeBufferPointer<UInt8>) -> (value: UInt32, length: Int)? {
        guard i < b.count else { return nil }
        let len = min(UTF8Util.sequenceLength(b[i]), b.count - i)
        var v: UInt32 = len == 1 ? UInt32(b[i]) : len == 2 ? UInt32(b[i] & 0x1F) : len == 3 ? UInt32(b[i] & 0x0F) : UInt32(b[i] & 0x07)
        for k in 1 ..< max(len, 1) { v = (v << 6) | UInt32(b[i + k] & 0x3F) }
        return (v, len)
    }

    /// The scalar ending just before byte `i` and its length.
    static func scalar(before i: Int, in b: UnsafeBufferPointer<UInt8>) -> (value: UInt32, length: Int)? {
        guard i > 0 else { return nil }
        var s = i - 1
        while s > 0 && i - s < 4 && b[s] & 0xC0 == 0x80 { s -= 1 }
        guard let c = scalar(at: s, in: b) else { return nil }
        return (c.value, i - s)
    }
}

/// One item of the post-processing template for a single sequence.
enum TemplateItem: Sendable, Equatable {
    case sequence
    case special([Int32])
}

/// A tokenizer built from a Hugging Face `tokenizer.json` (and `tokenizer_config.json`).
final class HFPipelineTokenizer: Tokenizer, TokenPieceSource {
    let model: HFBPEModel
    let normalizer: HFNormalizer?
    let preTokenizer: HFPreTokenizer?
    let decoder: HFDecoder?
    /// Added tokens with `normalized: false`, matched on the raw text.
    let rawAdded: HFAddedTokenMatcher
    /// Added tokens with `normalized: true`, matched (in normalized spelling) on normalized text.
    let normalizedAdded: HFAddedTokenMatcher
    /// What `encode(_:addSpecial: true)` puts around the ids.
    let template: [TemplateItem]
    /// Each id's token as decoding sees it (the added token's content, normalized when the token
    /// is; else the vocabulary spelling): `tokenScalars[tokenStart[id] ..< tokenStart[id + 1]]`.
    let tokenScalars: [UInt32]
    let tokenStart: [Int]
    let present: [Bool]
    let special: [Bool]
    /// Added tokens' contents, then vocabulary spellings → id (tokenizers' `token_to_id`).
    let addedContents: ByteStringTable
    let vocabulary: ByteStringTable

    let vocabularySize: Int
    let bosID: Int32?
    let eosID: Int32?
    let chatTemplate: String?

    init(
        model: HFBPEModel, normalizer: HFNormalizer?, preTokenizer: HFPreTokenizer?, decoder: HFDecoder?,
        rawAdded: HFAddedTokenMatcher, normalizedAdded: HFAddedTokenMatcher, template: [TemplateItem],
        tokens: [[UInt32]?], special: [Bool], addedContents: ByteStringTable, vocabulary: ByteStringTable,
        bosID: Int32?, eosID: Int32?, chatTemplate: String?
    ) {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.rawAdded = rawAdded
        self.normalizedAdded = normalizedAdded
        self.template = template
        var scalars: [UInt32] = []
        var starts: [Int] = [0]
        starts.reserveCapacity(tokens.count + 1)
        for t in tokens {
            if let t { scalars.append(contentsOf: t) }
            starts.append(scalars.count)
        }
        tokenScalars = scalars
        tokenStart = starts
        present = tokens.map { $0 != nil }
        self.special = special
        self.addedContents = addedContents
        self.vocabulary = vocabulary
        vocabularySize = tokens.count
        self.bosID = bosID
        self.eosID = eosID
        self.chatTemplate = chatTemplate
    }

    @inline(__always)
    private func contains(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabularySize && present[Int(id)] }

    private func token(_ id: Int32) -> [UInt32] {
        Array(tokenScalars[tokenStart[Int(id)] ..< tokenStart[Int(id) + 1]])
    }

    func encode(_ text: String, addSpecial: Bool) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        var workspace = BPEWorkspace()
        var copy = text
        copy.withUTF8 { bytes in
            for segment in rawAdded.segments(bytes) {
                switch segment {
                case .token(let id):
                    ids.append(id)
                case .text(let range):
                    if range.isEmpty { continue }
                    var piece = PipelineText(utf8: UnsafeBufferPointer(rebasing: bytes[range]), base: range.lowerBound)
                    normalizer?.normalize(&piece)
                    encodeNormalized(piece, into: &ids, workspace: &workspace)
                }
            }
        }
        guard addSpecial else { return ids }
        var out: [Int32] = []
        out.reserveCapacity(ids.count + 4)
        for item in template {
            switch item {
            case .sequence: out.append(contentsOf: ids)
            case .special(let s): out.append(contentsOf: s)
            }
        }
        return out
    }

    /// Normalized text: its normalized added tokens, then pre-tokenizer and model for the rest.
    private func encodeNormalized(_ piece: PipelineText, into ids: inout [Int32], workspace: inout BPEWorkspace) {
        if piece.isEmpty { return }
        var pieces: [PipelineText] = []
        if normalizedAdded.isEmpty {
            pieces = [piece]
        } else {
            let (bytes, scalarAt) = piece.utf8WithIndex()
            let segments = bytes.withUnsafeBufferPointer { normalizedAdded.segments($0) }
            for segment in segments {
                switch segment {
                case .token(let id):
                    for p in pieces { run(p, into: &ids, workspace: &workspace) }
                    pieces.removeAll()
                    ids.append(id)
                case .text(let r):
                    let s = scalarAt[r.lowerBound], e = scalarAt[r.upperBound]
                    if s < e { pieces.append(piece.slice(s ..< e)) }
                }
            }
        }
        for p in pieces { run(p, into: &ids, workspace: &workspace) }
    }

    private func run(_ piece: PipelineText, into ids: inout [Int32], workspace: inout BPEWorkspace) {
        if let pre = preTokenizer {
            for p in pre.run([piece]) { model.tokenize(p.scalars, into: &ids, workspace: &workspace) }
        } else {
            model.tokenize(piece.scalars, into: &ids, workspace: &workspace)
        }
    }

    func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        var tokens: [[UInt32]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids where contains(id) && !(skipSpecial && special[Int(id)]) { tokens.append(token(id)) }
        var out = String.UnicodeScalarView()
        func add(_ t: [UInt32]) { for v in t { out.append(Unicode.Scalar(v) ?? "\u{FFFD}") } }
        if let decoder {
            for t in decoder.decodeChain(tokens) { add(t) }
        } else {
            // No decoder: tokenizers joins the tokens with spaces.
            for (k, t) in tokens.enumerated() {
                if k > 0 { out.append(" ") }
                add(t)
            }
        }
        return String(out)
    }

    func tokenBytes(_ id: Int32) -> [UInt8] {
        switch piece(id) {
        case .fallbackByte(let b): return [b]
        case .bytes(let b), .text(let b): return b
        }
    }

    /// What a token contributes when streaming: byte-level bytes, a `<0xNN>` byte, or its text
    /// after the decoder's per-token replacements (Replace, Metaspace's replacement → space).
    func piece(_ id: Int32) -> TokenPiece {
        guard contains(id) else { return .text([]) }
        let t = token(id)
        var bytes: [UInt8] = []
        if let decoder, decoder.contains(where: { if case .byteLevel = $0 { return true }; return false }) {
            if let b = ByteLevelMapping.bytes(ofAlphabet: t) { return .bytes(b) }
            for v in t { UnicodeText.appendUTF8(v, to: &bytes) }
            return .bytes(bytes)
        }
        if let decoder, decoder.contains(where: { if case .byteFallback = $0 { return true }; return false }),
            let b = HFDecoder.fallbackByte(t)
        {
            return .fallbackByte(b)
        }
        for v in streamingText(t, decoder) { UnicodeText.appendUTF8(v, to: &bytes) }
        return .text(bytes)
    }

    private func streamingText(_ t: [UInt32], _ d: HFDecoder?) -> [UInt32] {
        guard let d else { return t }
        switch d {
        case .sequence(let steps):
            var x = t
            for s in steps { x = streamingText(x, s) }
            return x
        case .replace(let pattern, let content):
            return HFDecoder.replace(pattern, content, in: t)
        case .metaspace(let replacement, _):
            return t.map { $0 == replacement ? 0x20 : $0 }
        case .bpeSuffix(let suffix):
            return HFDecoder.replace(.literal(suffix), [0x20], in: t)
        case .byteLevel, .byteFallback, .fuse, .strip:
            return t
        }
    }

    /// Whether decoding drops a leading space of the text (a Strip of spaces, or Metaspace dropping
    /// the replacement in the first token).
    var stripsLeadingSpace: Bool {
        decoder?.contains(where: {
            switch $0 {
            case .strip(let c, let start, _): return c == 0x20 && start > 0
            case .metaspace(_, let scheme): return scheme != .never
            default: return false
            }
        }) ?? false
    }

    func isSpecial(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabularySize && special[Int(id)] }

    func tokenID(_ piece: String) -> Int32? { addedContents.lookup(piece) ?? vocabulary.lookup(piece) }
}
