// tokenizer.json decoders (Hugging Face tokenizers 0.23 `decoders`): token strings back to text, each step a `decode_chain` over the list.

/// A `tokenizer.json` decoder. Tokens are handled as arrays of Unicode scalar values.
indirect enum HFDecoder: Sendable {
    /// Characters of the GPT-2 byte alphabet back to bytes, all tokens joined, then UTF-8 with U+FFFD.
    case byteLevel
    /// The replacement character becomes a space; in the first token it is dropped unless the
    /// scheme is `never`.
    case metaspace(replacement: UInt32, prependScheme: PrependScheme)
    /// Runs of `<0xNN>` tokens become their bytes when those are valid UTF-8, else one U+FFFD each.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Up to `start` leading and `stop` trailing `content` characters removed from each token.
    case strip(content: UInt32, start: Int, stop: Int)
    /// Each match of the pattern in a token replaced by `content`.
    case replace(HFPattern, content: [UInt32])
    /// `suffix` in each token replaced by a space (by nothing in the last token).
    case bpeSuffix([UInt32])
    case sequence([HFDecoder])

    func decodeChain(_ tokens: [[UInt32]]) -> [[UInt32]] {
        switch self {
        case .sequence(let steps):
            var t = tokens
            for step in steps { t = step.decodeChain(t) }
            return t
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                if let b = ByteLevelMapping.bytes(ofAlphabet: token) {
                    bytes.append(contentsOf: b)
                } else {
                    for v in token { UnicodeText.appendUTF8(v, to: &bytes) }
                }
            }
            return [UnicodeText.scalars(UTF8Util.lossy(bytes))]
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { i, token in
                var out: [UInt32] = []
                out.reserveCapacity(token.count)
                for v in token {
                    if v == replacement {
                        if i == 0 && scheme != .never { continue }
                        out.append(0x20)
                    } else {
                        out.append(v)
                    }
                }
                return out
            }
        case .byteFallback:
            var out: [[UInt32]] = []
            var run: [UInt8] = []
            func flush() {
                if run.isEmpty { return }
                if let s = String(validating: run, as: UTF8.self) {
                    out.append(UnicodeText.scalars(s))
                } else {
                    for _ in run { out.append([0xFFFD]) }
                }
                run.removeAll(keepingCapacity: true)
            }
            for token in tokens {
                if let b = Self.fallbackByte(token) {
                    run.append(b)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.flatMap { $0 }]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var lo = 0
                while lo < min(start, token.count) && token[lo] == content { lo += 1 }
                var hi = token.count
                var removed = 0
                while removed < stop && hi > 0 && token[hi - 1] == content {
                    hi -= 1
                    removed += 1
                }
                // tokenizers panics when the two cuts cross; the engine returns nothing instead.
                return lo <= hi ? Array(token[lo ..< hi]) : []
            }
        case .replace(let pattern, let content):
            return tokens.map { Self.replace(pattern, content, in: $0) }
        case .bpeSuffix(let suffix):
            let last = tokens.count - 1
            return tokens.enumerated().map { i, token in
                Self.replace(.literal(suffix), i == last ? [] : [0x20], in: token)
            }
        }
    }

    static func replace(_ pattern: HFPattern, _ content: [UInt32], in token: [UInt32]) -> [UInt32] {
        let text = PipelineText(scalars: token, origins: [Int](repeating: 0, count: token.count))
        let matches = pattern.matches(in: text)
        var out: [UInt32] = []
        for m in matches {
            if m.isMatch { out.append(contentsOf: content) } else { out.append(contentsOf: token[m.range]) }
        }
        return out
    }

    /// The byte of a `<0xNN>` token as tokenizers' ByteFallback reads it: six bytes, `<0x`, two
    /// characters Rust's `u8::from_str_radix(_, 16)` accepts, `>`.
    static func fallbackByte(_ token: [UInt32]) -> UInt8? {
        guard token.count == 6 || token.count == 5 else { return nil }
        var bytes: [UInt8] = []
        for v in token { UnicodeText.appendUTF8(v, to: &bytes) }
        guard bytes.count == 6, bytes[0] == 0x3C, bytes[1] == 0x30, bytes[2] == 0x78, bytes[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30 ... 0x39: return c - 0x30
            case 0x41 ... 0x46: return c - 0x41 + 10
            case 0x61 ... 0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        if bytes[3] == 0x2B { return hex(bytes[4]) }  // from_str_radix accepts a leading '+'
        guard let hi = hex(bytes[3]), let lo = hex(bytes[4]) else { return nil }
        return hi << 4 | lo
    }

    /// Whether any step is (or contains) `step`.
    func contains(where test: (HFDecoder) -> Bool) -> Bool {
        if test(self) { return true }
        if case .sequence(let steps) = self { return steps.contains { $0.contains(where: test) } }
        return false
    }
}

extension ByteLevelMapping {
    /// The bytes of a token spelled in the GPT-2 byte alphabet, or nil if a character is outside it.
    static func bytes(ofAlphabet token: [UInt32]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        for v in token {
            guard v < 324 else { return nil }
            let b = ByteUnicode.byteForCharacter[Int(v)]
            guard b >= 0 else { return nil }
            out.append(UInt8(b))
        }
        return out
    }
}
