// Byte-level BPE (GPT-2, Radford et al. 2019; GGUF `tokenizer.ggml.model` = "gpt2") as transformers converts it from GGUF.

/// GPT-2's reversible byte ↔ character map (`bytes_to_unicode` in openai/gpt-2 encoder.py):
/// printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 and up, in order.
enum ByteUnicode {
    /// The character standing for each byte.
    static let characterForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0 ..< 256 {
            let printable = (0x21 ... 0x7E).contains(b) || (0xA1 ... 0xAC).contains(b) || (0xAE ... 0xFF).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + extra
                extra += 1
            }
        }
        return table
    }()

    /// The byte each alphabet character stands for, indexed by scalar value (< 324), or -1.
    static let byteForCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, c) in characterForByte.enumerated() { table[Int(c)] = Int16(b) }
        return table
    }()

    /// The bytes a vocabulary spelling stands for, or nil if it uses a character outside the
    /// byte alphabet.
    static func bytes<S: StringProtocol>(ofSpelling spelling: S) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(spelling.unicodeScalars.count)
        for s in spelling.unicodeScalars {
            guard s.value < 324 else { return nil }
            let b = byteForCharacter[Int(s.value)]
            guard b >= 0 else { return nil }
            out.append(UInt8(b))
        }
        return out
    }
}

/// A byte-level BPE tokenizer built from GGUF metadata.
///
/// Reproduces transformers' GGUF conversion (`GPT2Tokenizer` + `add_gguf_special_tokens` + the
/// split regex for the `pre` name): control tokens are special added tokens (when spelled in the
/// byte alphabet), user-defined tokens ordinary added tokens; between them the text is split by the
/// pre-tokenizer, each piece's UTF-8 bytes start as one symbol per byte and merge by rank. Bytes
/// with no token of their own are dropped (the HF model has no unknown token). Decoding maps each
/// token's characters back to bytes and decodes UTF-8 with U+FFFD for ill-formed bytes.
final class ByteLevelBPETokenizer: Tokenizer, TokenPieceSource {
    let common: TokenizerCommon
    let scanner: PreTokenizerScanner
    /// Token id of each single byte, -1 if the vocabulary lacks it.
    let byteToken: [Int32]
    let merges: MergeTable
    /// Bytes of each token: `pieceBytes[pieceStart[id] ..< pieceStart[id + 1]]`.
    let pieceBytes: [UInt8]
    let pieceStart: [Int]
    /// GGUF spellings → id, for `tokenID`.
    let spellings: ByteStringTable

    var vocabularySize: Int { common.vocabularySize }
    var bosID: Int32? { common.bosID }
    var eosID: Int32? { common.eosID }
    var chatTemplate: String? { common.chatTemplate }

    init(_ vocab: TokenizerVocabulary, preTokenizer: PreTokenizerKind) throws {
        guard let mergeRules = vocab.merges, !mergeRules.isEmpty else { throw TokenizerError.missingMerges }
        let n = vocab.tokens.count
        scanner = PreTokenizerScanner(kind: preTokenizer)

        // The bytes each token stands for. transformers re-spells a token that uses characters
        // outside the byte alphabet as its UTF-8 bytes, so those bytes are what it stands for.
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        starts.reserveCapacity(n + 1)
        var inAlphabet = [Bool](repeating: true, count: n)
        var table = ByteStringTable(capacity: n)
        var spellingTable = ByteStringTable(capacity: n)
        for (i, token) in vocab.tokens.enumerated() {
            let start = bytes.count
            if let b = ByteUnicode.bytes(ofSpelling: token) {
                bytes.append(contentsOf: b)
            } else {
                inAlphabet[i] = false
                bytes.append(contentsOf: token.utf8)
            }
            starts.append(bytes.count)
            bytes.withUnsafeBufferPointer { table.insert(UnsafeBufferPointer(rebasing: $0[start...]), id: Int32(i)) }
            var spelling = token
            spelling.withUTF8 { spellingTable.insert($0, id: Int32(i)) }
        }
        pieceBytes = bytes
        pieceStart = starts
        spellings = spellingTable

        var single = [Int32](repeating: -1, count: 256)
        for b in 0 ..< 256 {
            single[b] = table.lookup([UInt8(b)]) ?? -1
        }
        byteToken = single

        var mergeTable = MergeTable(capacity: mergeRules.count)
        for (rank, rule) in mergeRules.enumerated() {
            let parts = rule.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedMerge(index: rank, rule: rule)
            }
            // Merge rules are in the byte alphabet, like the (re-spelled) vocabulary keys.
            guard let left = ByteUnicode.bytes(ofSpelling: parts[0]), let leftID = table.lookup(left) else {
                throw TokenizerError.mergeTokenNotInVocabulary(index: rank, token: String(parts[0]))
            }
            guard let right = ByteUnicode.bytes(ofSpelling: parts[1]), let rightID = table.lookup(right) else {
                throw TokenizerError.mergeTokenNotInVocabulary(index: rank, token: String(parts[1]))
            }
            var joined = left
            joined.append(contentsOf: right)
            guard let mergedID = table.lookup(joined) else {
                throw TokenizerError.mergeTokenNotInVocabulary(index: rank, token: String(parts[0]) + String(parts[1]))
            }
            mergeTable.insert(leftID, rightID, rank: UInt32(truncatingIfNeeded: rank), merged: mergedID)
        }
        merges = mergeTable

        // Control tokens spelled outside the byte alphabet are llama.cpp mislabels that
        // transformers leaves out; user-defined ones must be vocabulary keys as spelled.
        // GPT2Tokenizer's default unk/bos/eos token.
        var addedSpecial: [Int32] = [table.lookup(Array("<|endoftext|>".utf8))].compactMap { $0 }
        var addedPlain: [Int32] = []
        if let types = vocab.tokenTypes {
            for (i, t) in types.enumerated() where inAlphabet[i] {
                if t == GGUFTokenType.control { addedSpecial.append(Int32(i)) }
                if t == GGUFTokenType.userDefined { addedPlain.append(Int32(i)) }
            }
        }
        common = TokenizerCommon(vocab, addedSpecial: addedSpecial, addedPlain: addedPlain, defaultAddBOS: false)
    }

    struct Ranker: BPEPairRanker {
        let merges: MergeTable
        @inline(__always)
        func merge(_ left: Int32, _ right: Int32) -> (rank: BPERank, merged: Int32)? {
            guard let m = merges.lookup(left, right) else { return nil }
            return (BPERank(UInt64(m.rank)), m.merged)
        }
    }

    func encode(_ text: String, addSpecial: Bool) -> [Int32] {
        let ranker = Ranker(merges: merges)
        return common.encode(text, addSpecial: addSpecial) { bytes, _, out, w in
            UTF8Util.decodeValid(bytes, scalars: &w.scalars, classes: &w.classes, offsets: &w.offsets)
            var symbols: [Int32] = []
            let scalars = w.scalars, classes = w.classes, offsets = w.offsets
            scalars.withUnsafeBufferPointer { s in
                classes.withUnsafeBufferPointer { c in
                    scanner.split(scalars: s, classes: c, range: 0 ..< s.count) { piece in
                        symbols.removeAll(keepingCapacity: true)
                        for k in offsets[piece.lowerBound] ..< offsets[piece.upperBound] {
                            let id = byteToken[Int(bytes[k])]
                            if id >= 0 { symbols.append(id) }
                        }
                        BPE.merge(&symbols, ranker: ranker, workspace: &w)
                        out.append(contentsOf: symbols)
                    }
                }
            }
        }
    }

    func tokenBytes(_ id: Int32) -> [UInt8] {
        guard common.contains(id) else { return [] }
        return Array(pieceBytes[pieceStart[Int(id)] ..< pieceStart[Int(id) + 1]])
    }

    func piece(_ id: Int32) -> TokenPiece {
        .bytes(tokenBytes(id))
    }

    var stripsLeadingSpace: Bool { false }

    func decode(_ ids: [Int32], skipSpecial: Bool) -> String {
        var bytes: [UInt8] = []
        for id in ids where common.contains(id) && !(skipSpecial && common.isSpecial(id)) {
            bytes.append(contentsOf: pieceBytes[pieceStart[Int(id)] ..< pieceStart[Int(id) + 1]])
        }
        return UTF8Util.lossy(bytes)
    }

    func isSpecial(_ id: Int32) -> Bool { common.isSpecial(id) }

    func tokenID(_ piece: String) -> Int32? { spellings.lookup(piece) }
}
