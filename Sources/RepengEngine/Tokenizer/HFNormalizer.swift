// tokenizer.json normalizers (Hugging Face tokenizers 0.23 `normalizers`) over text that remembers where each character came from.

import Foundation

/// Text moving through a `tokenizer.json` pipeline: Unicode scalar values, and for each the byte
/// offset in the encoded input of the character it came from.
///
/// Hugging Face tokenizers keeps full alignments; the only decision that reads them is
/// Metaspace's `prepend_scheme: "first"` ("does this piece start at the start of the input?"),
/// and the origin of a piece's first character answers it: characters a normalizer inserts take
/// the origin of the character they are attached to, as tokenizers' alignments do.
struct PipelineText: Sendable, Equatable {
    var scalars: [UInt32]
    var origins: [Int]

    init(scalars: [UInt32] = [], origins: [Int] = []) {
        self.scalars = scalars
        self.origins = origins
    }

    /// The scalars of valid UTF-8 `bytes`, with origins counted from `base`.
    init(utf8 bytes: UnsafeBufferPointer<UInt8>, base: Int) {
        scalars = []
        origins = []
        scalars.reserveCapacity(bytes.count)
        origins.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            var v: UInt32
            var len: Int
            if b0 < 0x80 {
                v = b0; len = 1
            } else if b0 < 0xE0 {
                v = b0 & 0x1F; len = 2
            } else if b0 < 0xF0 {
                v = b0 & 0x0F; len = 3
            } else {
                v = b0 & 0x07; len = 4
            }
            len = min(len, bytes.count - i)
            for k in 1 ..< max(len, 1) { v = (v << 6) | (UInt32(bytes[i + k]) & 0x3F) }
            scalars.append(v)
            origins.append(base + i)
            i += len
        }
    }

    var isEmpty: Bool { scalars.isEmpty }
    var count: Int { scalars.count }

    /// Characters `range` (scalar indices), keeping their origins.
    func slice(_ range: Range<Int>) -> PipelineText {
        PipelineText(scalars: Array(scalars[range]), origins: Array(origins[range]))
    }

    mutating func append(_ scalar: UInt32, origin: Int) {
        scalars.append(scalar)
        origins.append(origin)
    }

    /// The text as a Swift string (scalars that are not valid become U+FFFD; none are, since
    /// pipeline text comes from Swift strings and JSON strings).
    var string: String {
        var s = String.UnicodeScalarView()
        for v in scalars { s.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
        return String(s)
    }

    /// UTF-8 bytes of the text, and the scalar index each byte belongs to (plus the end).
    func utf8WithIndex() -> (bytes: [UInt8], scalarAt: [Int]) {
        var bytes: [UInt8] = []
        var at: [Int] = []
        bytes.reserveCapacity(scalars.count)
        for (k, v) in scalars.enumerated() {
            let before = bytes.count
            UnicodeText.appendUTF8(v, to: &bytes)
            for _ in before ..< bytes.count { at.append(k) }
        }
        at.append(scalars.count)
        return (bytes, at)
    }
}

/// Unicode helpers matching the Rust definitions Hugging Face tokenizers uses.
enum UnicodeText {
    static func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
        if v < 0x80 {
            out.append(UInt8(v))
        } else if v < 0x800 {
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else if v < 0x10000 {
            out.append(UInt8(0xE0 | (v >> 12)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (v >> 18)))
            out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    static func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    /// Rust `char::is_whitespace` and the `\s` of Rust's `regex` and Oniguruma: White_Space.
    @inline(__always)
    static func isWhitespace(_ v: UInt32) -> Bool {
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return Unicode.Scalar(v)?.properties.isWhitespace ?? false
    }

    /// `\w` of Rust's `regex` crate (UTS #18): Alphabetic, marks, Nd, Pc, Join_Control.
    static func isWordCharacter(_ v: UInt32) -> Bool {
        if v < 0x80 {
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        guard let s = Unicode.Scalar(v) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Rust `char::is_numeric`: general categories Nd, Nl, No.
    static func isNumeric(_ v: UInt32) -> Bool {
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        guard let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// tokenizers' `is_punc`: ASCII punctuation (which includes symbols such as `$+<=>^`|~`)
    /// or a Unicode punctuation category (Pc Pd Ps Pe Pi Pf Po).
    static func isPunctuation(_ v: UInt32) -> Bool {
        if v < 0x80 {
            return (v >= 0x21 && v <= 0x2F) || (v >= 0x3A && v <= 0x40) || (v >= 0x5B && v <= 0x60) || (v >= 0x7B && v <= 0x7E)
        }
        guard let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// Combining marks (general category M), which `StripAccents` removes.
    static func isCombiningMark(_ v: UInt32) -> Bool {
        guard v >= 0x300, let s = Unicode.Scalar(v) else { return false }
        switch s.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}

/// The Unicode normalization forms (UAX #15).
enum UnicodeForm: Sendable {
    case nfc, nfd, nfkc, nfkd

    func apply(_ s: String) -> String {
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        }
    }
}

/// A `tokenizer.json` normalizer.
indirect enum HFNormalizer: Sendable {
    case unicode(UnicodeForm)
    case lowercase
    case strip(left: Bool, right: Bool)
    case stripAccents
    case replace(HFPattern, content: [UInt32])
    case prepend([UInt32])
    /// Each character becomes the GPT-2 byte-alphabet characters of its UTF-8 bytes.
    case byteLevel
    case sequence([HFNormalizer])

    func normalize(_ text: inout PipelineText) {
        switch self {
        case .unicode(let form):
            text = Self.unicodeNormalize(text, form)
        case .lowercase:
            var out = PipelineText()
            out.scalars.reserveCapacity(text.count)
            out.origins.reserveCapacity(text.count)
            for (v, o) in zip(text.scalars, text.origins) {
                if v < 0x80 {
                    out.append(v >= 0x41 && v <= 0x5A ? v + 0x20 : v, origin: o)
                } else if let s = Unicode.Scalar(v) {
                    for l in s.properties.lowercaseMapping.unicodeScalars { out.append(l.value, origin: o) }
                } else {
                    out.append(v, origin: o)
                }
            }
            text = out
        case .strip(let left, let right):
            var start = 0, end = text.count
            if left { while start < end && UnicodeText.isWhitespace(text.scalars[start]) { start += 1 } }
            if right { while end > start && UnicodeText.isWhitespace(text.scalars[end - 1]) { end -= 1 } }
            if start != 0 || end != text.count { text = text.slice(start ..< end) }
        case .stripAccents:
            guard text.scalars.contains(where: UnicodeText.isCombiningMark) else { return }
            var out = PipelineText()
            for (v, o) in zip(text.scalars, text.origins) where !UnicodeText.isCombiningMark(v) { out.append(v, origin: o) }
            text = out
        case .replace(let pattern, let content):
            let matches = pattern.matches(in: text)
            guard matches.contains(where: { $0.isMatch }) else { return }
            var out = PipelineText()
            for m in matches {
                if m.isMatch {
                    // Replacement characters take the origin of the match (or of what follows an empty one).
                    let o = m.range.isEmpty
                        ? (m.range.lowerBound < text.count ? text.origins[m.range.lowerBound] : (text.origins.last ?? 0))
                        : text.origins[m.range.lowerBound]
                    for c in content { out.append(c, origin: o) }
                } else {
                    out.scalars.append(contentsOf: text.scalars[m.range])
                    out.origins.append(contentsOf: text.origins[m.range])
                }
            }
            text = out
        case .prepend(let prefix):
            guard !text.isEmpty else { return }
            let o = text.origins[0]
            text.scalars.insert(contentsOf: prefix, at: 0)
            text.origins.insert(contentsOf: [Int](repeating: o, count: prefix.count), at: 0)
        case .byteLevel:
            text = ByteLevelMapping.map(text)
        case .sequence(let steps):
            for step in steps { step.normalize(&text) }
        }
    }

    /// NFC/NFD/NFKC/NFKD of the whole text. Origins: the text is cut before each character of
    /// canonical combining class 0, pieces that normalization joins are kept together, and every
    /// character a piece normalizes to takes the origin of the piece's first character.
    static func unicodeNormalize(_ text: PipelineText, _ form: UnicodeForm) -> PipelineText {
        if text.scalars.allSatisfy({ $0 < 0x80 }) { return text }
        let whole = form.apply(text.string)
        if whole.unicodeScalars.elementsEqual(text.scalars.compactMap(Unicode.Scalar.init)) { return text }
        // Cut points: starters.
        var cuts: [Int] = []
        for (k, v) in text.scalars.enumerated() {
            let ccc = Unicode.Scalar(v)?.properties.canonicalCombiningClass.rawValue ?? 0
            if k == 0 || ccc == 0 { cuts.append(k) }
        }
        cuts.append(text.count)
        var out = PipelineText()
        var groupStart = 0
        var groupText = ""
        var k = 0
        while k + 1 < cuts.count {
            let piece = text.slice(cuts[k] ..< cuts[k + 1]).string
            if groupText.isEmpty {
                groupStart = cuts[k]
                groupText = piece
            } else {
                let joined = form.apply(groupText + piece)
                let separate = form.apply(groupText) + form.apply(piece)
                if joined.unicodeScalars.elementsEqual(separate.unicodeScalars) {
                    for s in form.apply(groupText).unicodeScalars { out.append(s.value, origin: text.origins[groupStart]) }
                    groupStart = cuts[k]
                    groupText = piece
                } else {
                    groupText += piece
                }
            }
            k += 1
        }
        if !groupText.isEmpty {
            for s in form.apply(groupText).unicodeScalars { out.append(s.value, origin: text.origins[groupStart]) }
        }
        // Should the piecewise result ever differ from normalizing the whole text, the whole
        // text's characters win (with the first origin): the ids must not depend on the cutting.
        if !out.scalars.elementsEqual(whole.unicodeScalars.map(\.value)) {
            let o = text.origins.first ?? 0
            return PipelineText(scalars: UnicodeText.scalars(whole), origins: [Int](repeating: o, count: whole.unicodeScalars.count))
        }
        return out
    }
}

/// GPT-2's byte ↔ character alphabet applied to pipeline text.
enum ByteLevelMapping {
    /// Each character becomes the alphabet characters of its UTF-8 bytes, with its origin.
    static func map(_ text: PipelineText) -> PipelineText {
        var out = PipelineText()
        out.scalars.reserveCapacity(text.count)
        out.origins.reserveCapacity(text.count)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4)
        for (v, o) in zip(text.scalars, text.origins) {
            if v < 0x80 {
                out.append(ByteUnicode.characterForByte[Int(v)], origin: o)
                continue
            }
            buffer.removeAll(keepingCapacity: true)
            UnicodeText.appendUTF8(v, to: &buffer)
            for b in buffer { out.append(ByteUnicode.characterForByte[Int(b)], origin: o) }
        }
        return out
    }
}
