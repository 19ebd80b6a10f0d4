// Streaming detokenization: text for ids fed one at a time, never splitting a UTF-8 character.

/// What one token contributes to decoded text.
enum TokenPiece: Sendable, Equatable {
    /// Byte-level BPE bytes: concatenated with the neighbours' bytes, then decoded as UTF-8.
    case bytes([UInt8])
    /// Complete UTF-8 text (a SentencePiece token with "▁" read as a space).
    case text([UInt8])
    /// A SentencePiece `<0xNN>` byte-fallback token: runs of them are decoded together.
    case fallbackByte(UInt8)
}

/// Tokenizers that expose their decoding rules piece by piece.
protocol TokenPieceSource: Sendable {
    func piece(_ id: Int32) -> TokenPiece
    /// Whether the decoder drops one leading space of the whole text (LlamaTokenizer's Strip).
    var stripsLeadingSpace: Bool { get }
}

/// Streaming decode that never emits half a UTF-8 character: feed ids one by one, get the newly
/// completed text.
///
/// The concatenation of everything `append` and `flush` return equals
/// `tokenizer.decode(ids, skipSpecial:)` for the same ids, with one exception for SentencePiece
/// byte-fallback runs: Hugging Face turns a whole run of `<0xNN>` tokens into U+FFFD per byte when
/// any part of it is ill-formed, while this decoder emits the characters completed so far as soon
/// as they are complete, and U+FFFD only for the ill-formed bytes. The two agree whenever every run
/// is well-formed UTF-8, as it always is for text the tokenizer encoded.
public struct IncrementalDecoder: Sendable {
    private let tokenizer: any Tokenizer
    private let skipSpecial: Bool
    private let source: (any TokenPieceSource)?
    /// Bytes not yet emitted: an incomplete UTF-8 character, or a byte-fallback run in progress.
    private var pending: [UInt8] = []
    /// Whether the pending bytes are a byte-fallback run (SentencePiece) rather than byte-level bytes.
    private var pendingIsRun = false
    /// Whether anything has been emitted yet (for the leading-space strip).
    private var started = false

    /// A decoder for ids from `tokenizer`; `skipSpecial` drops special tokens like `decode` does.
    public init(tokenizer: any Tokenizer, skipSpecial: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
        self.source = tokenizer as? any TokenPieceSource
    }

    /// Feeds one id; returns the text it completes (possibly empty).
    public mutating func append(_ id: Int32) -> String {
        guard id >= 0, Int(id) < tokenizer.vocabularySize else { return "" }
        if skipSpecial && tokenizer.isSpecial(id) { return "" }
        let piece = source?.piece(id) ?? .bytes(tokenizer.tokenBytes(id))
        var out: [UInt8] = []
        switch piece {
        case .bytes(let b):
            pending.append(contentsOf: b)
            let keep = UTF8Util.incompleteTail(pending)
            out = Array(pending[0 ..< pending.count - keep])
            pending.removeFirst(pending.count - keep)
        case .text(let t):
            out = flushRun()
            out.append(contentsOf: t)
        case .fallbackByte(let b):
            pendingIsRun = true
            pending.append(b)
            // Emit the run as soon as it is complete characters; ill-formed bytes become U+FFFD now.
            let keep = UTF8Util.incompleteTail(pending)
            if keep < pending.count {
                out = Array(pending[0 ..< pending.count - keep])
                pending.removeFirst(pending.count - keep)
            }
        }
        return emit(out)
    }

    /// Returns whatever is still buffered (an unfinished character becomes U+FFFD) and resets.
    public mutating func flush() -> String {
        let out = pendingIsRun ? flushRun() : pending
        pending.removeAll()
        pendingIsRun = false
        return emit(out)
    }

    /// Ends a byte-fallback run: an unfinished character left in it is one U+FFFD per byte.
    private mutating func flushRun() -> [UInt8] {
        guard pendingIsRun else { return [] }
        var out: [UInt8] = []
        for _ in pending { out.append(contentsOf: [0xEF, 0xBF, 0xBD]) }
        pending.removeAll()
        pendingIsRun = false
        return out
    }

    private mutating func emit(_ bytes: [UInt8]) -> String {
        var bytes = bytes
        if !started, !bytes.isEmpty {
            started = true
            if source?.stripsLeadingSpace == true, bytes.first == 0x20 { bytes.removeFirst() }
        }
        return UTF8Util.lossy(bytes)
    }
}
