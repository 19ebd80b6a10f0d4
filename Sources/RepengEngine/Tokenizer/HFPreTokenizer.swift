// tokenizer.json pre-tokenizers and split patterns (Hugging Face tokenizers 0.23 `pre_tokenizers`, `Pattern`, `SplitDelimiterBehavior`).

/// One entry of a pattern's matches over a text: the matches and the stretches between them, in
/// order, covering the text (tokenizers' `Pattern::find_matches`).
struct PatternMatch: Sendable, Equatable {
    var range: Range<Int>
    var isMatch: Bool
}

/// Characters a pre-tokenizer splits on, one character per match.
enum CharPredicate: Sendable {
    case numeric, punctuation, whitespace
    case equals(UInt32)

    @inline(__always)
    func test(_ v: UInt32) -> Bool {
        switch self {
        case .numeric: return UnicodeText.isNumeric(v)
        case .punctuation: return UnicodeText.isPunctuation(v)
        case .whitespace: return UnicodeText.isWhitespace(v)
        case .equals(let c): return v == c
        }
    }
}

/// A regex run with Swift's `Regex` on Unicode scalars, for patterns no hand-written scanner
/// reproduces. Oniguruma and Swift's engine agree on the usual syntax (classes, `\p{…}`,
/// `(?i:…)`, look-ahead, counted repetition) but not on every corner (`\h`, possessive forms,
/// POSIX brackets), so tokenizers using this path should be checked against the reference.
final class HFRegex: @unchecked Sendable {
    // Immutable after init; the regex program is compiled by the warm-up match in init.
    let pattern: String
    private let regex: Regex<AnyRegexOutput>

    /// Longest pattern accepted (real split patterns are a few hundred characters).
    static let maxPatternLength = 4096

    /// Compiles `pattern`; the error describes why Swift's `Regex` refuses it.
    init(_ pattern: String) throws(HFRegexError) {
        guard pattern.unicodeScalars.count <= Self.maxPatternLength else {
            throw HFRegexError(reason: "longer than \(Self.maxPatternLength) characters")
        }
        let compiled: Regex<AnyRegexOutput>
        do { compiled = try Regex(pattern) } catch { throw HFRegexError(reason: "\(error)") }
        self.pattern = pattern
        regex = compiled.matchingSemantics(.unicodeScalar)
        // Compiles the matching program now, so that a pattern the engine cannot run fails here.
        do { _ = try regex.firstMatch(in: "a 1") } catch { throw HFRegexError(reason: "\(error)") }
    }

    /// Non-overlapping matches, leftmost first, as scalar ranges; an empty match right where the
    /// previous match ended is skipped and the search moves on one character (the Rust `onig`
    /// crate's `find_iter`).
    func matchRanges(_ text: PipelineText) -> [Range<Int>] {
        let string = text.string
        var index: [String.Index] = []
        index.reserveCapacity(text.count + 1)
        var i = string.unicodeScalars.startIndex
        while i < string.unicodeScalars.endIndex {
            index.append(i)
            i = string.unicodeScalars.index(after: i)
        }
        index.append(string.unicodeScalars.endIndex)
        func offset(_ target: String.Index, from lower: Int) -> Int {
            var lo = lower, hi = index.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if index[mid] < target { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        var out: [Range<Int>] = []
        var searchFrom = 0
        var lastMatchEnd = -1
        while searchFrom <= text.count {
            guard let m = try? regex.firstMatch(in: string[index[searchFrom]...]) else { break }
            let start = offset(m.range.lowerBound, from: searchFrom)
            let end = offset(m.range.upperBound, from: start)
            if start == end && end == lastMatchEnd {
                searchFrom += 1
                continue
            }
            out.append(start ..< end)
            lastMatchEnd = end
            searchFrom = end == start ? end + 1 : end
            if start == end && end >= text.count { break }
        }
        return out
    }
}

/// Why Swift's `Regex` cannot run a pattern.
struct HFRegexError: Error {
    let reason: String
}

/// The pattern of a `Split` pre-tokenizer or a `Replace` normalizer/decoder.
enum HFPattern: Sendable {
    /// A `{"String": …}` pattern: the literal text.
    case literal([UInt32])
    /// A `{"Regex": …}` pattern one of the hand-written scanners reproduces; its matches cover
    /// every character.
    case scanner(PreTokenizerKind)
    /// Any other regex.
    case regex(HFRegex)
    /// Every character satisfying the predicate is a match of its own.
    case predicate(CharPredicate)

    /// The known split regexes, by their exact text in tokenizer.json.
    static let knownRegexes: [String: PreTokenizerKind] = [
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .qwen2,
    ]

    /// The matches and the stretches between them, covering `text`.
    func matches(in text: PipelineText) -> [PatternMatch] {
        let n = text.count
        if n == 0 { return [] }
        switch self {
        case .scanner(let kind):
            var out: [PatternMatch] = []
            let classes = text.scalars.map { Unicode.Scalar($0).map(CharClass.of) ?? 0 }
            text.scalars.withUnsafeBufferPointer { s in
                classes.withUnsafeBufferPointer { c in
                    PreTokenizerScanner(kind: kind).split(scalars: s, classes: c, range: 0 ..< n) { r in
                        out.append(PatternMatch(range: r, isMatch: true))
                    }
                }
            }
            return out
        case .predicate(let p):
            var out: [PatternMatch] = []
            var last = 0
            for (k, v) in text.scalars.enumerated() where p.test(v) {
                if last < k { out.append(PatternMatch(range: last ..< k, isMatch: false)) }
                out.append(PatternMatch(range: k ..< k + 1, isMatch: true))
                last = k + 1
            }
            if last < n { out.append(PatternMatch(range: last ..< n, isMatch: false)) }
            return out
        case .literal(let needle):
            return Self.cover(Self.literalRanges(needle, in: text.scalars), count: n)
        case .regex(let r):
            return Self.cover(r.matchRanges(text), count: n)
        }
    }

    /// Occurrences of `needle`, leftmost first, not overlapping; an empty needle matches at every
    /// position (the escaped-literal regex tokenizers builds, iterated like `onig`'s `find_iter`).
    static func literalRanges(_ needle: [UInt32], in hay: [UInt32]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        if needle.isEmpty {
            for k in 0 ... hay.count { out.append(k ..< k) }
            return out
        }
        guard needle.count <= hay.count else { return out }
        var i = 0
        let first = needle[0]
        while i + needle.count <= hay.count {
            if hay[i] == first {
                var k = 1
                while k < needle.count && hay[i + k] == needle[k] { k += 1 }
                if k == needle.count {
                    out.append(i ..< i + needle.count)
                    i += needle.count
                    continue
                }
            }
            i += 1
        }
        return out
    }

    /// Regex matches plus the stretches between them (tokenizers' `find_matches` for a regex).
    static func cover(_ ranges: [Range<Int>], count n: Int) -> [PatternMatch] {
        var out: [PatternMatch] = []
        var prev = 0
        for r in ranges {
            if prev != r.lowerBound, prev < r.lowerBound { out.append(PatternMatch(range: prev ..< r.lowerBound, isMatch: false)) }
            out.append(PatternMatch(range: r, isMatch: true))
            prev = r.upperBound
        }
        if prev < n { out.append(PatternMatch(range: prev ..< n, isMatch: false)) }
        return out
    }
}

/// What a split does with the matched delimiters (tokenizers' `SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// The ranges to keep, in order (empty ones included; callers drop them).
    func apply(_ matches: [PatternMatch]) -> [Range<Int>] {
        switch self {
        case .isolated:
            return matches.map(\.range)
        case .removed:
            return matches.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var out: [Range<Int>] = []
            var previous = false
            for m in matches {
                if m.isMatch == previous, let last = out.last {
                    out[out.count - 1] = last.lowerBound ..< m.range.upperBound
                } else {
                    out.append(m.range)
                }
                previous = m.isMatch
            }
            return out
        case .mergedWithPrevious:
            var out: [Range<Int>] = []
            var previous = false
            for m in matches {
                if m.isMatch && !previous, let last = out.last {
                    out[out.count - 1] = last.lowerBound ..< m.range.upperBound
                } else {
                    out.append(m.range)
                }
                previous = m.isMatch
            }
            return out
        case .mergedWithNext:
            var out: [Range<Int>] = []
            var previous = false
            for m in matches.reversed() {
                if m.isMatch && !previous, let last = out.last {
                    out[out.count - 1] = m.range.lowerBound ..< last.upperBound
                } else {
                    out.append(m.range)
                }
                previous = m.isMatch
            }
            return out.reversed()
        }
    }
}

/// Metaspace's rule for adding the replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    case first, never, always
}

/// A `tokenizer.json` pre-tokenizer.
indirect enum HFPreTokenizer: Sendable {
    /// Optional space in front of each piece, optional GPT-2 split, then the byte alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: UInt32, prependScheme: PrependScheme, split: Bool)
    case split(HFPattern, SplitBehavior, invert: Bool)
    /// `\w+|[^\w\s]+` kept, whitespace dropped (Rust `regex` classes).
    case whitespace
    case sequence([HFPreTokenizer])

    /// Splits every piece; empty pieces are dropped, as tokenizers does.
    func run(_ pieces: [PipelineText]) -> [PipelineText] {
        switch self {
        case .sequence(let steps):
            var current = pieces
            for step in steps { current = step.run(current) }
            return current
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [PipelineText] = []
            for var piece in pieces {
                if addPrefixSpace && piece.scalars.first != 0x20 {
                    piece.scalars.insert(0x20, at: 0)
                    piece.origins.insert(piece.origins.first ?? 0, at: 0)
                }
                if useRegex {
                    for r in SplitBehavior.isolated.apply(HFPattern.scanner(.gpt2).matches(in: piece)) where !r.isEmpty {
                        out.append(ByteLevelMapping.map(piece.slice(r)))
                    }
                } else if !piece.isEmpty {
                    out.append(ByteLevelMapping.map(piece))
                }
            }
            return out
        case .metaspace(let replacement, let scheme, let split):
            var out: [PipelineText] = []
            for var piece in pieces {
                for k in piece.scalars.indices where piece.scalars[k] == 0x20 { piece.scalars[k] = replacement }
                let startsWithReplacement = piece.scalars.first == replacement
                let prepend: Bool
                switch scheme {
                case .always: prepend = !startsWithReplacement
                case .first: prepend = !startsWithReplacement && piece.origins.first == 0
                case .never: prepend = false
                }
                if prepend {
                    piece.scalars.insert(replacement, at: 0)
                    piece.origins.insert(piece.origins.first ?? 0, at: 0)
                }
                if split {
                    let m = HFPattern.predicate(.equals(replacement)).matches(in: piece)
                    for r in SplitBehavior.mergedWithNext.apply(m) where !r.isEmpty { out.append(piece.slice(r)) }
                } else if !piece.isEmpty {
                    out.append(piece)
                }
            }
            return out
        case .split(let pattern, let behavior, let invert):
            var out: [PipelineText] = []
            for piece in pieces {
                var m = pattern.matches(in: piece)
                if invert { for k in m.indices { m[k].isMatch.toggle() } }
                for r in behavior.apply(m) where !r.isEmpty { out.append(piece.slice(r)) }
            }
            return out
        case .whitespace:
            var out: [PipelineText] = []
            for piece in pieces {
                var i = 0
                let s = piece.scalars
                while i < s.count {
                    if UnicodeText.isWordCharacter(s[i]) {
                        var j = i + 1
                        while j < s.count && UnicodeText.isWordCharacter(s[j]) { j += 1 }
                        out.append(piece.slice(i ..< j))
                        i = j
                    } else if !UnicodeText.isWhitespace(s[i]) {
                        var j = i + 1
                        while j < s.count && !UnicodeText.isWordCharacter(s[j]) && !UnicodeText.isWhitespace(s[j]) { j += 1 }
                        out.append(piece.slice(i ..< j))
                        i = j
                    } else {
                        i += 1
                    }
                }
            }
            return out
        }
    }
}
