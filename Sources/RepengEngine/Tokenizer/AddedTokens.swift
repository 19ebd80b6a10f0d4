// Added (special and user-defined) tokens, cut out of raw text leftmost-longest like Hugging Face tokenizers' AddedVocabulary.

/// A byte trie over the spellings of the added tokens, matched leftmost-longest.
///
/// All added tokens built from GGUF metadata are `normalized=False`, `lstrip/rstrip/single_word=False`
/// in transformers' conversion, so they are matched on the raw text, exactly as written.
struct AddedTokenMatcher: Sendable {
    /// Child of the root for each first byte (-1 if none).
    private var root: [Int32] = .init(repeating: -1, count: 256)
    /// Per node: the byte on the edge into it, its first child, its next sibling (children are in
    /// increasing byte order), and the token id ending there (-1 if none). Node 0 is the root.
    private var nodeByte: [UInt8] = [0]
    private var firstChild: [Int32] = [-1]
    private var nextSibling: [Int32] = [-1]
    private var terminal: [Int32] = [-1]

    /// Whether any token was added.
    private(set) var isEmpty = true

    /// Builds the trie. When two entries have the same spelling the first one is kept.
    init(_ entries: [(bytes: [UInt8], id: Int32)]) {
        // Insert in byte order (stable, so the first of equal spellings comes first): the child to
        // descend into is then always the most recently created child of its parent.
        let order = entries.indices.filter { !entries[$0].bytes.isEmpty }.sorted { a, b in
            let x = entries[a].bytes, y = entries[b].bytes
            return x.lexicographicallyPrecedes(y) || (x == y && a < b)
        }
        var lastChild: [Int32] = [-1]
        for e in order {
            var node = 0
            for b in entries[e].bytes {
                let last = Int(lastChild[node])
                if last >= 0 && nodeByte[last] == b {
                    node = last
                    continue
                }
                let fresh = Int32(nodeByte.count)
                nodeByte.append(b)
                firstChild.append(-1)
                nextSibling.append(-1)
                terminal.append(-1)
                lastChild.append(-1)
                if last >= 0 { nextSibling[last] = fresh } else { firstChild[node] = fresh }
                lastChild[node] = fresh
                if node == 0 { root[Int(b)] = fresh }
                node = Int(fresh)
            }
            if terminal[node] < 0 { terminal[node] = entries[e].id }
            isEmpty = false
        }
    }

    @inline(__always)
    private func child(_ node: Int, _ byte: UInt8) -> Int {
        if node == 0 { return Int(root[Int(byte)]) }
        var c = Int(firstChild[node])
        while c >= 0 {
            let b = nodeByte[c]
            if b == byte { return c }
            if b > byte { return -1 }
            c = Int(nextSibling[c])
        }
        return -1
    }

    /// The longest added token starting at `start`: `(id, end)`.
    @inline(__always)
    func longestMatch(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> (id: Int32, end: Int)? {
        var node = 0
        var best: (id: Int32, end: Int)? = nil
        var i = start
        while i < bytes.count {
            node = child(node, bytes[i])
            if node < 0 { break }
            i += 1
            let t = terminal[node]
            if t >= 0 { best = (t, i) }
        }
        return best
    }

    /// Cuts `bytes` into runs of ordinary text (`text`, byte ranges, never empty) and added tokens
    /// (`token`), in order.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, text: (Range<Int>) -> Void, token: (Int32) -> Void) {
        if isEmpty {
            if !bytes.isEmpty { text(0 ..< bytes.count) }
            return
        }
        var segmentStart = 0
        var i = 0
        while i < bytes.count {
            if root[Int(bytes[i])] >= 0, let m = longestMatch(bytes, at: i) {
                if segmentStart < i { text(segmentStart ..< i) }
                token(m.id)
                i = m.end
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < bytes.count { text(segmentStart ..< bytes.count) }
    }
}

/// The parts of a tokenizer that do not depend on its model: added tokens, special flags,
/// BOS/EOS handling and the chat template.
struct TokenizerCommon: Sendable {
    let vocabularySize: Int
    let bosID: Int32?
    let eosID: Int32?
    let addBOS: Bool
    let addEOS: Bool
    let chatTemplate: String?
    let matcher: AddedTokenMatcher
    /// One flag per id: special tokens (dropped by `decode(skipSpecial: true)`).
    let special: [Bool]

    /// - Parameters:
    ///   - addedSpecial: ids taken as special added tokens: the control tokens, and the tokens
    ///     spelled like the default special tokens of the transformers class the conversion uses
    ///     (e.g. `<s>` for LlamaTokenizer), which it registers as special when the vocabulary has them.
    ///   - addedPlain: ids of user-defined tokens taken as ordinary added tokens.
    ///   - defaultAddBOS: the BOS flag when the file has none.
    init(_ vocab: TokenizerVocabulary, addedSpecial: [Int32], addedPlain: [Int32], defaultAddBOS: Bool) {
        vocabularySize = vocab.tokens.count
        bosID = vocab.bosID
        eosID = vocab.eosID
        addBOS = (vocab.addBOS ?? defaultAddBOS) && vocab.bosID != nil
        addEOS = (vocab.addEOS ?? false) && vocab.eosID != nil
        chatTemplate = vocab.chatTemplate
        // The special tokens transformers names (bos/eos/unk/pad) are special added tokens too.
        let n = vocab.tokens.count
        var specialIDs = addedSpecial
        for id in [vocab.bosID, vocab.eosID, vocab.unkID, vocab.padID] {
            if let id { specialIDs.append(id) }
        }
        specialIDs.removeAll { $0 < 0 || Int($0) >= n }
        let plainIDs = addedPlain.filter { $0 >= 0 && Int($0) < n }
        var flags = [Bool](repeating: false, count: n)
        for id in specialIDs { flags[Int(id)] = true }
        special = flags
        var entries: [(bytes: [UInt8], id: Int32)] = []
        entries.reserveCapacity(specialIDs.count + plainIDs.count)
        for id in specialIDs + plainIDs {
            entries.append((Array(vocab.tokens[Int(id)].utf8), id))
        }
        matcher = AddedTokenMatcher(entries)
    }

    @inline(__always)
    func isSpecial(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < special.count && special[Int(id)]
    }

    @inline(__always)
    func contains(_ id: Int32) -> Bool {
        id >= 0 && Int(id) < vocabularySize
    }

    /// The full encode pipeline: BOS, added tokens cut out, `segment` for the text between, EOS.
    /// `segment` gets the UTF-8 bytes of one run of text, whether it starts the input, the output
    /// to append to and scratch space.
    func encode(
        _ text: String, addSpecial: Bool,
        segment: (UnsafeBufferPointer<UInt8>, Bool, inout [Int32], inout BPEWorkspace) -> Void
    ) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 4)
        if addSpecial && addBOS, let bos = bosID { out.append(bos) }
        var workspace = BPEWorkspace()
        var copy = text
        copy.withUTF8 { bytes in
            matcher.split(
                bytes,
                text: { range in
                    segment(UnsafeBufferPointer(rebasing: bytes[range]), range.lowerBound == 0, &out, &workspace)
                },
                token: { id in out.append(id) })
        }
        if addSpecial && addEOS, let eos = eosID { out.append(eos) }
        return out
    }
}
