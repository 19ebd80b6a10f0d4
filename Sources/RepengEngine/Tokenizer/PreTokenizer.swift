// Pre-tokenizer split patterns (GPT-2, Llama 3, Qwen2, SmolLM2) as scanners reproducing the Oniguruma regexes of HF tokenizers.

/// How text is cut into pieces before BPE, selected by `tokenizer.ggml.pre`.
///
/// Each case reproduces one regex applied with Hugging Face tokenizers' `Split(..., "isolated")`
/// (every match is a piece; the patterns below match every character, so nothing falls between):
///
/// - `gpt2`:  `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - `llama3`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - `qwen2`: as `llama3` with `\p{N}` (one digit) in place of `\p{N}{1,3}`
/// - `digitsThenGPT2`: every `\p{N}` character is a piece of its own (HF `Digits(individual_digits)`),
///   then `gpt2` on the text between them (SmolLM2's published pre-tokenizer, llama.cpp `smollm`).
///
/// `\p{L}` is general category L*, `\p{N}` is N*, `\s` is the Unicode White_Space property
/// (what Oniguruma uses for `\s` on UTF-8 text).
public enum PreTokenizerKind: String, Sendable, CaseIterable {
    case gpt2
    case digitsThenGPT2
    case llama3
    case qwen2

    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, or nil when it is not supported.
    ///
    /// Names follow llama.cpp / transformers' GGUF tables. `default` and `gpt-2` (and a missing
    /// name) get the GPT-2 pattern, which is what transformers gives any byte-level GGUF without a
    /// more specific entry.
    public init?(ggmlPre name: String?) {
        switch name ?? "default" {
        case "default", "gpt-2", "gpt2":
            self = .gpt2
        case "smollm":
            self = .digitsThenGPT2
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
            "jina-v5-nano", "dbrx", "smaug-bpe":
            self = .llama3
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez":
            self = .qwen2
        default:
            return nil
        }
    }
}

/// Character classes the split patterns test, one bit each.
enum CharClass {
    static let letter: UInt8 = 1  // \p{L}
    static let number: UInt8 = 2  // \p{N}
    static let space: UInt8 = 4  // \s (White_Space)
    static let newline: UInt8 = 8  // \r or \n
    static let blank: UInt8 = 16  // U+0020 exactly (the " ?" of the patterns)

    /// Classes of the 128 ASCII scalars.
    static let ascii: [UInt8] = (0 ..< 128).map { classify(Unicode.Scalar(UInt8($0))) }

    /// The class bits of a scalar.
    @inline(__always)
    static func of(_ scalar: Unicode.Scalar) -> UInt8 {
        scalar.value < 128 ? ascii[Int(scalar.value)] : classify(scalar)
    }

    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        var bits: UInt8 = 0
        let p = scalar.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            bits |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            bits |= number
        default:
            break
        }
        if p.isWhitespace { bits |= space }
        if scalar == "\r" || scalar == "\n" { bits |= newline }
        if scalar == " " { bits |= blank }
        return bits
    }
}

/// Runs a split pattern over one segment of text.
///
/// `scalars` and `classes` describe the characters (parallel arrays); `emit` receives each piece
/// as a half-open range of character indices, in order, covering `range` exactly.
struct PreTokenizerScanner {
    let kind: PreTokenizerKind

    func split(
        scalars: UnsafeBufferPointer<UInt32>, classes: UnsafeBufferPointer<UInt8>, range: Range<Int>,
        emit: (Range<Int>) -> Void
    ) {
        switch kind {
        case .gpt2:
            scanGPT2(scalars, classes, range, emit)
        case .digitsThenGPT2:
            var start = range.lowerBound
            var i = range.lowerBound
            while i < range.upperBound {
                if classes[i] & CharClass.number != 0 {
                    if start < i { scanGPT2(scalars, classes, start ..< i, emit) }
                    emit(i ..< i + 1)
                    start = i + 1
                }
                i += 1
            }
            if start < range.upperBound { scanGPT2(scalars, classes, start ..< range.upperBound, emit) }
        case .llama3:
            scanLlama3(scalars, classes, range, maxDigits: 3, emit)
        case .qwen2:
            scanLlama3(scalars, classes, range, maxDigits: 1, emit)
        }
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (0 if none). Case-insensitive matching folds
    /// ASCII case and U+017F LATIN SMALL LETTER LONG S to "s", as Unicode simple case folding does.
    @inline(__always)
    private func contraction(
        _ s: UnsafeBufferPointer<UInt32>, _ i: Int, _ end: Int, caseInsensitive: Bool
    ) -> Int {
        guard s[i] == 0x27, i + 1 < end else { return 0 }
        @inline(__always) func fold(_ c: UInt32) -> UInt32 {
            guard caseInsensitive else { return c }
            if c >= 0x41 && c <= 0x5A { return c + 0x20 }
            if c == 0x17F { return 0x73 }
            return c
        }
        let c1 = fold(s[i + 1])
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64:  // s t m d
            return 2
        case 0x72, 0x76:  // r v → "re" "ve"
            if i + 2 < end && fold(s[i + 2]) == 0x65 { return 3 }
            return 0
        case 0x6C:  // l → "ll"
            if i + 2 < end && fold(s[i + 2]) == 0x6C { return 3 }
            return 0
        default:
            return 0
        }
    }

    /// End of the run of characters from `i` whose classes intersect `mask` (or, with
    /// `invert`, avoid `mask`).
    @inline(__always)
    private func run(_ c: UnsafeBufferPointer<UInt8>, from i: Int, _ end: Int, _ mask: UInt8, invert: Bool = false) -> Int {
        var j = i
        if invert {
            while j < end && c[j] & mask == 0 { j += 1 }
        } else {
            while j < end && c[j] & mask != 0 { j += 1 }
        }
        return j
    }

    /// Shared tail of both patterns: `\s+(?!\S)|\s+` at a whitespace character `i`.
    @inline(__always)
    private func whitespaceTail(_ c: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let j = run(c, from: i, end, CharClass.space)
        // Greedy \s+ then (?!\S): the whole run at the end of the text, else one less so the next
        // character is still whitespace; a single whitespace before a non-space falls to \s+.
        if j == end { return j }
        if j - 1 > i { return j - 1 }
        return j
    }

    private func scanGPT2(
        _ s: UnsafeBufferPointer<UInt32>, _ c: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
        _ emit: (Range<Int>) -> Void
    ) {
        let end = range.upperBound
        let other = CharClass.letter | CharClass.number | CharClass.space
        var i = range.lowerBound
        while i < end {
            let k = contraction(s, i, end, caseInsensitive: false)
            if k > 0 {
                emit(i ..< i + k)
                i += k
                continue
            }
            // " ?" takes the blank only when the class after it matches.
            let afterBlank = c[i] & CharClass.blank != 0 && i + 1 < end ? i + 1 : -1
            var j = -1
            if afterBlank >= 0 {
                let next = c[afterBlank]
                if next & CharClass.letter != 0 {
                    j = run(c, from: afterBlank, end, CharClass.letter)
                } else if next & CharClass.number != 0 {
                    j = run(c, from: afterBlank, end, CharClass.number)
                } else if next & other == 0 {
                    j = run(c, from: afterBlank, end, other, invert: true)
                }
            }
            if j < 0 {
                let here = c[i]
                if here & CharClass.letter != 0 {
                    j = run(c, from: i, end, CharClass.letter)
                } else if here & CharClass.number != 0 {
                    j = run(c, from: i, end, CharClass.number)
                } else if here & other == 0 {
                    j = run(c, from: i, end, other, invert: true)
                } else {
                    j = whitespaceTail(c, i, end)
                }
            }
            emit(i ..< j)
            i = j
        }
    }

    private func scanLlama3(
        _ s: UnsafeBufferPointer<UInt32>, _ c: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
        maxDigits: Int, _ emit: (Range<Int>) -> Void
    ) {
        let end = range.upperBound
        let other = CharClass.letter | CharClass.number | CharClass.space
        var i = range.lowerBound
        while i < end {
            let k = contraction(s, i, end, caseInsensitive: true)
            if k > 0 {
                emit(i ..< i + k)
                i += k
                continue
            }
            let here = c[i]
            var j = -1
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if here & (CharClass.newline | CharClass.letter | CharClass.number) == 0, i + 1 < end,
                c[i + 1] & CharClass.letter != 0
            {
                j = run(c, from: i + 1, end, CharClass.letter)
            } else if here & CharClass.letter != 0 {
                j = run(c, from: i, end, CharClass.letter)
            } else if here & CharClass.number != 0 {
                // \p{N}{1,maxDigits}
                j = i + 1
                while j < end && j - i < maxDigits && c[j] & CharClass.number != 0 { j += 1 }
            } else {
                //  ?[^\s\p{L}\p{N}]+[\r\n]*
                var startOther = -1
                if here & CharClass.blank != 0 && i + 1 < end && c[i + 1] & other == 0 {
                    startOther = i + 1
                } else if here & other == 0 {
                    startOther = i
                }
                if startOther >= 0 {
                    j = run(c, from: startOther, end, other, invert: true)
                    j = run(c, from: j, end, CharClass.newline)
                } else {
                    // here is whitespace: \s*[\r\n]+ ends after the last \r or \n of the run.
                    let runEnd = run(c, from: i, end, CharClass.space)
                    var p = runEnd - 1
                    while p >= i && c[p] & CharClass.newline == 0 { p -= 1 }
                    j = p >= i ? p + 1 : whitespaceTail(c, i, end)
                }
            }
            emit(i ..< j)
            i = j
        }
    }
}
