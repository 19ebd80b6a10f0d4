// SentencePiece vocabularies (GGUF `tokenizer.ggml.model` = "llama") run as HF tokenizers' BPE, as transformers converts them.

/// A SentencePiece-vocabulary tokenizer reproducing transformers' GGUF conversion.
///
/// Gemma family (`general.architecture` gemma, gemma2, gemma3) — `GemmaTokenizer`:
/// - tokens made only of whitespace that contain a space are re-spelled as that many "▁";
/// - merges are every split `left + right` of a token into two tokens, ranked by the merged token's
///   position in the file, then longer left part first (transformers' `generate_merges` with the
///   position as score). They are not materialised: a pair merges when the concatenation is a
///   token, with that rank;
/// - normalizer: " " → "▁"; no prefix space; the whole text between added tokens is one BPE word;
/// - characters without a token become their `<0xNN>` byte tokens (then the unknown token);
/// - decoder: "▁" → " ", runs of byte tokens → their bytes as UTF-8 (one U+FFFD per byte when the
///   run is not valid UTF-8), concatenation.
///
/// Other architectures — `LlamaTokenizer`: the tokens as spelled; merges from the same splits ranked
/// by the merged token's score (higher first), then longer left part, longer right part, file
/// order; spaces → "▁" and one "▁" prepended to text that starts the input and does not already
/// start with "▁" (`Metaspace`, prepend scheme "first"); the decoder also strips one leading space
/// from the result. Phi-3 (`general.architecture` phi3) differs only in prepending "▁" to every run
/// of text between added tokens (a `Prepend` normalizer), whatever it starts with.
///
/// Control tokens are special added tokens and user-defined tokens ordinary added tokens, matched
/// in the raw text first. BOS is added by default unless `tokenizer.ggml.add_bos_token` says no.
final class SentencePieceBPETokenizer: Tokenizer, TokenPieceSource {
    enum Flavor: Sendable { case gemma, llama, phi3 }

    let common: TokenizerCommon
    let flavor: Flavor
    /// Bytes of each token's BPE spelling (after re-spelling): `pieceBytes[pieceStart[id] ..< pieceStart[id + 1]]`.
    let pieceBytes: [UInt8]
    let pieceStart: [Int]
    /// Length of the longest spelling, in bytes.
    let longestPiece: Int
    /// BPE spellings → id (later ids win for duplicate spellings, as in a Python dict).
    let table: ByteStringTable
    /// Per merged token: the major and minor merge rank, before the split tie-break.
    let rankMajor: [UInt64]
    let rankMinor: [UInt64]
    /// Characters in each token's spelling (the split tie-break).
    let pieceLength: [Int32]
    /// Token id of `<0xNN>` for each byte, -1 if absent.
    let byteFallback: [Int32]
    /// The byte a token decodes to when it is spelled `<0xNN>` (either hex case), else -1.
    let byteValue: [Int16]
    /// Token id of each ASCII character, -1 if absent (fast path for the initial symbols).
    let asciiToken: [Int32]
    /// The token for characters with neither a token nor byte tokens.
    let unkID: Int32?
    /// Spellings in the file that were re-spelled (Gemma's space runs) → id, for `tokenID`.
    let respelledIDs: [String: Int32]

    var vocabularySize: Int { common.vocabularySize }
    var bosID: Int32? { common.bosID }
    var eosID: Int32? { common.eosID }
    var chatTemplate: String? { common.chatTemplate }

    /// Architectures whose SentencePiece vocabularies transformers converts with `GemmaTokenizer`.
    static let gemmaArchitectures: Set<String> = ["gemma", "gemma2", "gemma3"]

    /// UTF-8 of "▁" (U+2581), SentencePiece's visible space.
    static let metaspace: [UInt8] = [0xE2, 0x96, 0x81]

    /// Python's `str.isspace()` for one scalar (White_Space, plus U+001C ... U+001F).
    private static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C ... 0x1F).contains(s.value)
    }

    init(_ vocab: TokenizerVocabulary) throws {
        let n = vocab.tokens.count
        let architecture = vocab.architecture ?? ""
        let flavor: Flavor = Self.gemmaArchitectures.contains(architecture) ? .gemma : architecture == "phi3" ? .phi3 : .llama
        self.flavor = flavor

        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        var lengths: [Int32] = []
        starts.reserveCapacity(n + 1)
        lengths.reserveCapacity(n)
        var t = ByteStringTable(capacity: n)
        var respelled: [String: Int32] = [:]
        var byteValues = [Int16](repeating: -1, count: n)
        var longest = 0
        for (i, token) in vocab.tokens.enumerated() {
            let start = bytes.count
            var spelling = token
            spelling.withUTF8 { utf8 in
                // Characters = bytes that are not UTF-8 continuation bytes.
                var characters = 0
                for b in utf8 where b & 0xC0 != 0x80 { characters += 1 }
                lengths.append(Int32(clamping: characters))
                if flavor == .gemma, utf8.contains(0x20), token.unicodeScalars.allSatisfy(Self.isPythonSpace) {
                    // "  " is stored with real spaces; GemmaTokenizer looks it up as "▁▁".
                    for _ in 0 ..< characters { bytes.append(contentsOf: Self.metaspace) }
                    respelled[token] = Int32(i)
                } else {
                    bytes.append(contentsOf: utf8)
                }
                if utf8.count == 6 { byteValues[i] = Self.parseByteToken(utf8) }
            }
            starts.append(bytes.count)
            longest = max(longest, bytes.count - start)
            bytes.withUnsafeBufferPointer { t.insert(UnsafeBufferPointer(rebasing: $0[start...]), id: Int32(i)) }
        }
        pieceBytes = bytes
        pieceStart = starts
        pieceLength = lengths
        longestPiece = longest
        table = t
        byteValue = byteValues
        respelledIDs = respelled

        switch flavor {
        case .gemma:
            // generate_merges with score = -position: earlier merged tokens first.
            rankMajor = (0 ..< n).map { UInt64($0) << 32 }
            rankMinor = [UInt64](repeating: 0, count: n)
        case .llama, .phi3:
            // generate_merges with the file's scores: higher score first; equal scores compare the
            // split lengths (added per pair) and then fall back to file order.
            let scores = vocab.scores ?? [Float](repeating: 0, count: n)
            let distinct = Array(Set(scores.filter { !$0.isNaN })).sorted(by: >)
            var denseRank: [Float: UInt64] = [:]
            for (r, s) in distinct.enumerated() { denseRank[s] = UInt64(r) }
            let nanRank = UInt64(distinct.count)
            rankMajor = scores.map { (denseRank[$0] ?? nanRank) << 32 }
            rankMinor = (0 ..< n).map { UInt64($0) }
        }

        var fallback = [Int32](repeating: -1, count: 256)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in 0 ..< 256 {
            let spelled: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]  // "<0xNN>"
            fallback[b] = t.lookup(spelled) ?? -1
        }
        byteFallback = fallback
        var ascii = [Int32](repeating: -1, count: 128)
        for c in 0 ..< 128 where c != 0x20 { ascii[c] = t.lookup([UInt8(c)]) ?? -1 }
        asciiToken = ascii
        unkID = vocab.unkID ?? t.lookup("<unk>")

        // The default special tokens of GemmaTokenizer / LlamaTokenizer.
        let classDefaults = flavor == .gemma ? ["<unk>", "<bos>", "<eos>", "<pad>", "<mask>"] : ["<unk>", "<s>", "</s>"]
        var addedSpecial: [Int32] = classDefaults.compactMap { t.lookup($0) }
        var addedPlain: [Int32] = []
        if let types = vocab.tokenTypes {
            for (i, type) in types.enumerated() {
                if type == GGUFTokenType.control { addedSpecial.append(Int32(i)) }
                // A re-spelled token is no longer a vocabulary key as written, so it is not added.
                if type == GGUFTokenType.userDefined && respelled[vocab.tokens[i]] != Int32(i) {
                    addedPlain.append(Int32(i))
                }
            }
        }
        common = TokenizerCommon(vocab, addedSpecial: addedSpecial, addedPlain: addedPlain, defaultAddBOS: true)
    }

    /// The byte of a `<0xNN>` spelling (hex digits in either case), else -1.
    static func parseByteToken(_ u: UnsafeBufferPointer<UInt8>) -> Int16 {
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return -1 }
        func digit(_ c: UInt8) -> Int16? {
            switch c {
            case 0x30 ... 0x39: return Int16(c - 0x30)
            case 0x41 ... 0x46: return Int16(c - 0x41 + 10)
            case 0x61 ... 0x66: return Int16(c - 0x61 + 10)
            default: return nil
            }
        }
        guard let hi = digit(u[3]), let lo = digit(u[4]) else { return -1 }
        return hi * 16 + lo
    }

    /// Ranks a pair by looking up the concatenation of the two spellings.
    struct Ranker: BPEPairRanker {
        let tokenizer: SentencePieceBPETokenizer
        let scratch: UnsafeMutableBufferPointer<UInt8>

        @inline(__always)
        func merge(_ left: Int32, _ right: Int32) -> (rank: BPERank, merged: Int32)? {
            let t = tokenizer
            let ls = t.pieceStart[Int(left)], le = t.pieceStart[Int(left) + 1]
            let rs = t.pieceStart[Int(right)], re = t.pieceStart[Int(right) + 1]
            let total = (le - ls) + (re - rs)
            guard total <= scratch.count else { return nil }
            t.pieceBytes.withUnsafeBufferPointer { p in
                var k = 0
                for i in ls ..< le {
                    scratch[k] = p[i]
                    k += 1
                }
                for i in rs ..< re {
                    scratch[k] = p[i]
                    k += 1
                }
            }
            guard let merged = t.table.lookup(UnsafeBufferPointer(rebasing: scratch[0 ..< total])) else { return nil }
            let lengthLeft = UInt64(UInt32(clamping: t.pieceLength[Int(left)]))
            switch t.flavor {
            case .gemma:
                // Same merged token: the longer left part first.
                return (BPERank(t.rankMajor[Int(merged)] | (0xFFFF_FFFF - lengthLeft)), merged)
            case .llama, .phi3:
                let lengthRight = UInt64(UInt32(clamping: t.pieceLength[Int(right)]))
                let l = 0xFFFF - min(lengthLeft, 0xFFFF), r = 0xFFFF - min(lengthRight, 0xFFFF)
                return (BPERank(t.rankMajor[Int(merged)] | l << 16 | r, t.rankMinor[Int(merged)]), merged)
            }
        }
    }

    func encode(_ text: String, addSpecial: Bool) -> [Int32] {
        let scratch = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(longestPiece, 1))
        defer { scratch.deallocate() }
        let ranker = Ranker(tokenizer: self, scratch: scratch)
        return common.encode(text, addSpecial: addSpecial) { bytes, atStart, out, w in
            var symbols: [Int32] = []
            symbols.reserveCapacity(bytes.count + 1)
            var unknownRun = false
            Self.metaspace.withUnsafeBufferPointer { space in
                // Metaspace "first": one "▁" before text that starts the input, unless it starts with a
                // space; Phi-3's Prepend normalizer: one "▁" before every run of text.
                let startsWithSpace = bytes.first == 0x20 || (bytes.count >= 3 && bytes[0] == 0xE2 && bytes[1] == 0x96 && bytes[2] == 0x81)
                if (flavor == .llama && atStart && !startsWithSpace) || flavor == .phi3 {
                    unknownRun = appendSymbols(space, into: &symbols, afterUnknown: unknownRun)
                }
                var i = 0
                while i < bytes.count {
                    let b = bytes[i]
                    if b < 0x80, asciiToken[Int(b)] >= 0 {
                        symbols.append(asciiToken[Int(b)])
                        unknownRun = false
                        i += 1
                    } else if b == 0x20 {
                        unknownRun = appendSymbols(space, into: &symbols, afterUnknown: unknownRun)
                        i += 1
                    } else {
                        let len = min(UTF8Util.sequenceLength(b), bytes.count - i)
                        let char = UnsafeBufferPointer(rebasing: bytes[i ..< i + len])
                        unknownRun = appendSymbols(char, into: &symbols, afterUnknown: unknownRun)
                        i += len
                    }
                }
            }
            BPE.merge(&symbols, ranker: ranker, workspace: &w)
            out.append(contentsOf: symbols)
        }
    }

    /// Initial symbols for one character: its token, else its byte tokens, else the unknown token
    /// (a run of unknown characters fused into one). Returns whether the character was unknown.
    @inline(__always)
    private func appendSymbols(_ char: UnsafeBufferPointer<UInt8>, into symbols: inout [Int32], afterUnknown: Bool) -> Bool {
        if let id = table.lookup(char) {
            symbols.append(id)
            return false
        }
        if char.allSatisfy({ byteFallback[Int($0)] >= 0 }) {
            for b in char { symbols.append(byteFallback[Int(b)]) }
            return false
        }
        guard let unk = unkID else { return false }
        if !afterUnknown { symbols.append(unk) }
        return true
    }

    /// What a token contributes to decoded text: "▁" read as a space, or the byte of a `<0xNN>` token.
    func piece(_ id: Int32) -> TokenPiece {
        guard common.contains(id) else { return .text([]) }
        let b = byteValue[Int(id)]
        if b >= 0 { return .fallbackByte(UInt8(b)) }
        return .text(spaced(id))
    }

    /// The spelling of a token with "▁" replaced by " ".
    private func spaced(_ id: Int32) -> [UInt8] {
        let start = pieceStart[Int(id)], end = pieceStart[Int(id) + 1]
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var i = start
        while i < end {
            if i + 2 < end, pieceBytes[i] == 0xE2, pieceBytes[i + 1] == 0x96, pieceBytes[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(pieceBytes[i])
                i += 1
            }
        }
        return out
    }

    var stripsLeadingSpace: Bool { flavor != .gemma }

    func tokenBytes(_ id: Int32) -> [UInt8] {
        switch piece(id) {
        case .fallbackByte(let b): return [b]
        case .text(let t), .bytes(let t): return t
        }
    }

    func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        // HF: Replace("▁", " "), ByteFallback (a run of byte tokens is its bytes if they are valid
        // UTF-8, else one U+FFFD per byte), Fuse, and for LlamaTokenizer Strip(left: 1).
        var out: [UInt8] = []
        var run: [UInt8] = []
        func flushRun() {
            if run.isEmpty { return }
            if String(validating: run, as: UTF8.self) != nil {
                out.append(contentsOf: run)
            } else {
                for _ in run { out.append(contentsOf: [0xEF, 0xBF, 0xBD]) }
            }
            run.removeAll(keepingCapacity: true)
        }
        for id in ids where common.contains(id) && !(skipSpecial && common.isSpecial(id)) {
            switch piece(id) {
            case .fallbackByte(let b):
                run.append(b)
            case .text(let t), .bytes(let t):
                flushRun()
                out.append(contentsOf: t)
            }
        }
        flushRun()
        if stripsLeadingSpace, out.first == 0x20 { out.removeFirst() }
        return UTF8Util.lossy(out)
    }

    func isSpecial(_ id: Int32) -> Bool { common.isSpecial(id) }

    func tokenID(_ piece: String) -> Int32? {
        if let id = respelledIDs[piece] { return id }
        return table.lookup(piece)
    }
}
