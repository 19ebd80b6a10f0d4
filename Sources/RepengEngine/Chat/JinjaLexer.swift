// Jinja tokenizer: template text to data and tag tokens, with whitespace control, trim_blocks and lstrip_blocks.
// Follows the Jinja2 3.1 Template Designer Documentation (Whitespace Control, Escaping, Literals), transformers 5.24 settings.
import Foundation

/// One token. Positions are byte offsets into the normalized source (see `JinjaSource`).
struct JinjaToken: Sendable {
    enum Kind: Sendable, Equatable {
        case data, variableBegin, variableEnd, blockBegin, blockEnd
        case name, string, integer, float, op, eof
    }

    var kind: Kind
    /// Data text, name, decoded string literal, or operator spelling.
    var text: String = ""
    var intValue: Int = 0
    var doubleValue: Double = 0
    var pos: Int
}

/// The template text after Jinja's newline handling, plus what error positions need.
struct JinjaSource: Sendable {
    let bytes: [UInt8]
    /// Byte offset of each line's first byte.
    let lineStarts: [Int]

    /// Jinja turns `\r\n` and `\r` into `\n` and, without `keep_trailing_newline`, drops one final newline.
    init(_ text: String) {
        var out = Array(text.utf8)
        // memchr keeps this fast for megabyte templates even in debug builds.
        let hasCR = out.withUnsafeBufferPointer { buf in
            buf.baseAddress.map { memchr($0, 0x0D, buf.count) != nil } ?? false
        }
        if hasCR {
            var normalized: [UInt8] = []
            normalized.reserveCapacity(out.count)
            var previousCR = false
            for byte in out {
                if byte == 0x0D {
                    normalized.append(0x0A)
                    previousCR = true
                } else {
                    if !(byte == 0x0A && previousCR) { normalized.append(byte) }
                    previousCR = false
                }
            }
            out = normalized
        }
        if out.last == 0x0A { out.removeLast() }
        bytes = out
        var starts = [0]
        out.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            var p = base
            let end = base + buf.count
            while p < end, let hit = memchr(p, 0x0A, end - p) {
                let newline = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self))
                starts.append(newline - base + 1)
                p = newline + 1
            }
        }
        lineStarts = starts
    }

    /// 1-based line and column (in Unicode scalars) of a byte offset.
    func location(_ pos: Int) -> (line: Int, column: Int) {
        let p = max(0, min(pos, bytes.count))
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= p { lo = mid } else { hi = mid - 1 }
        }
        var column = 1
        var i = lineStarts[lo]
        while i < p {
            if bytes[i] & 0xC0 != 0x80 { column += 1 }
            i += 1
        }
        return (lo + 1, column)
    }

    func syntaxError(_ message: String, at pos: Int) -> ChatTemplateError {
        let (line, column) = location(pos)
        return .syntax(message: message, line: line, column: column)
    }
}

/// Unicode helpers shared by the lexer and the string functions (Python's notions, not Swift's).
enum JinjaUnicode {
    /// Python's `str.isspace()` / regex `\s` for `str` patterns.
    static func isSpace(_ v: UInt32) -> Bool {
        switch v {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Decodes the scalar starting at `i` (input is valid UTF-8: it came from a Swift String).
    static func scalar(at i: Int, in b: [UInt8]) -> (value: UInt32, length: Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        func cont(_ k: Int) -> UInt32 { i + k < b.count ? UInt32(b[i + k] & 0x3F) : 0 }
        if b0 < 0xE0 { return (((b0 & 0x1F) << 6) | cont(1), 2) }
        if b0 < 0xF0 { return (((b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3) }
        return (((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3), 4)
    }

    /// Start of the scalar that ends just before `end`.
    static func scalarStart(before end: Int, in b: [UInt8]) -> Int {
        var i = end - 1
        while i > 0 && b[i] & 0xC0 == 0x80 { i -= 1 }
        return i
    }

    /// Index after the whitespace run starting at `i`.
    static func skipSpace(from i: Int, in b: [UInt8]) -> Int {
        var j = i
        while j < b.count {
            let (v, n) = scalar(at: j, in: b)
            guard isSpace(v) else { break }
            j += n
        }
        return j
    }

    /// Start of the whitespace run that ends at `end` (not before `floor`).
    static func trimSpaceBackward(end: Int, floor: Int, in b: [UInt8]) -> Int {
        var j = end
        while j > floor {
            let s = scalarStart(before: j, in: b)
            guard s >= floor, isSpace(scalar(at: s, in: b).value) else { break }
            j = s
        }
        return j
    }
}

/// Turns normalized template bytes into tokens, on demand: the parser pulls them one at a time, so a template
/// that is too deep fails as soon as the limit is reached instead of after tokenizing a megabyte.
struct JinjaLexer {
    private let src: JinjaSource
    private var b: [UInt8] { src.bytes }
    /// Tokens produced by the last step and not yet handed out.
    private var tokens: [JinjaToken] = []
    private var head = 0
    private var pos = 0
    /// Inside `{% %}` (true) or `{{ }}` (false); nil between tags.
    private var tagIsBlock: Bool?
    /// Open brackets inside the current tag: a `}}` or `%}` there is operators, not the tag's end.
    private var balance: [UInt8] = []

    init(source: JinjaSource) { self.src = source }

    mutating func next() throws -> JinjaToken {
        while head >= tokens.count {
            tokens.removeAll(keepingCapacity: true)
            head = 0
            if let block = tagIsBlock {
                try tagStep(block: block)
            } else if pos >= b.count {
                return JinjaToken(kind: .eof, pos: b.count)
            } else {
                try rootStep()
            }
        }
        head += 1
        return tokens[head - 1]
    }

    private static let lbrace = UInt8(ascii: "{"), rbrace = UInt8(ascii: "}"), percent = UInt8(ascii: "%")
    private static let hash = UInt8(ascii: "#"), minus = UInt8(ascii: "-"), plus = UInt8(ascii: "+")
    private static let newline = UInt8(ascii: "\n")

    private mutating func emitData(_ start: Int, _ end: Int) {
        guard end > start else { return }
        tokens.append(JinjaToken(kind: .data, text: String(decoding: b[start..<end], as: UTF8.self), pos: start))
    }

    /// Template data up to the next tag, and that tag's opening token.
    private mutating func rootStep() throws {
        let bytes = b
        let n = bytes.count
        // Find the next tag opener: `{{`, `{%` or `{#`.
        var i = pos
        var found = -1
        while i + 1 < n {
            if bytes[i] == Self.lbrace {
                let c = bytes[i + 1]
                if c == Self.lbrace || c == Self.percent || c == Self.hash { found = i; break }
            }
            i += 1
        }
        if found < 0 {
            emitData(pos, n)
            pos = n
            return
        }
        let opener = bytes[found + 1]
        var afterOpen = found + 2
        var sign: UInt8 = 0
        if afterOpen < n && (bytes[afterOpen] == Self.minus || bytes[afterOpen] == Self.plus) {
            sign = bytes[afterOpen]
            afterOpen += 1
        }
        let raw = opener == Self.percent ? rawBlockEnd(from: afterOpen) : nil
        // Whitespace control before the tag: `-` strips all, otherwise lstrip_blocks for block-like tags.
        var textEnd = found
        if sign == Self.minus {
            textEnd = JinjaUnicode.trimSpaceBackward(end: found, floor: pos, in: bytes)
        } else if sign != Self.plus && opener != Self.lbrace {
            textEnd = lstripEnd(textStart: pos, tagStart: found)
        }
        emitData(pos, textEnd)

        if let rawEnd = raw {
            pos = try lexRawBody(from: rawEnd, openPos: found)
            return
        }
        switch opener {
        case Self.hash:
            pos = try lexComment(from: afterOpen, openPos: found)
        case Self.percent:
            tokens.append(JinjaToken(kind: .blockBegin, pos: found))
            pos = afterOpen
            tagIsBlock = true
            balance.removeAll()
        default:
            tokens.append(JinjaToken(kind: .variableBegin, pos: found))
            pos = afterOpen
            tagIsBlock = false
            balance.removeAll()
        }
    }

    /// lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag when nothing else is
    /// on that line before it. "Line start" includes the start right after a tag that ended with a newline.
    private func lstripEnd(textStart: Int, tagStart: Int) -> Int {
        let bytes = b
        var lineStart = tagStart
        while lineStart > textStart && bytes[lineStart - 1] != Self.newline { lineStart -= 1 }
        let atLineStart = lineStart > textStart || textStart == 0 || bytes[textStart - 1] == Self.newline
        guard atLineStart, lineStart < tagStart else { return tagStart }
        let wsEnd = JinjaUnicode.skipSpace(from: lineStart, in: bytes)
        return wsEnd >= tagStart ? lineStart : tagStart
    }

    /// If `{%` at this point opens `{% raw %}`, the index after its closing `%}` (and stripped whitespace).
    private func rawBlockEnd(from start: Int) -> Int? {
        let bytes = b
        var i = JinjaUnicode.skipSpace(from: start, in: bytes)
        guard matches("raw", at: i) else { return nil }
        i += 3
        i = JinjaUnicode.skipSpace(from: i, in: bytes)
        if i < bytes.count, bytes[i] == Self.minus, matches("%}", at: i + 1) {
            return JinjaUnicode.skipSpace(from: i + 3, in: bytes)
        }
        if matches("%}", at: i) { return i + 2 }
        return nil
    }

    private func matches(_ s: String, at i: Int) -> Bool {
        guard i >= 0 else { return false }
        var k = i
        for byte in s.utf8 {
            guard k < b.count, b[k] == byte else { return false }
            k += 1
        }
        return true
    }

    /// Raw body: everything up to `{% endraw %}` is data.
    private mutating func lexRawBody(from start: Int, openPos: Int) throws -> Int {
        let bytes = b
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == Self.lbrace && bytes[i + 1] == Self.percent {
                var j = i + 2
                var sign: UInt8 = 0
                if j < bytes.count && (bytes[j] == Self.minus || bytes[j] == Self.plus) { sign = bytes[j]; j += 1 }
                j = JinjaUnicode.skipSpace(from: j, in: bytes)
                if matches("endraw", at: j) {
                    j = JinjaUnicode.skipSpace(from: j + 6, in: bytes)
                    if let end = blockEnd(at: j) {
                        var textEnd = i
                        if sign == Self.minus {
                            textEnd = JinjaUnicode.trimSpaceBackward(end: i, floor: start, in: bytes)
                        } else if sign != Self.plus {
                            textEnd = lstripEnd(textStart: start, tagStart: i)
                        }
                        emitData(start, textEnd)
                        return end
                    }
                }
            }
            i += 1
        }
        throw src.syntaxError("Missing end of raw directive", at: openPos)
    }

    /// `+%}`, `-%}` plus following whitespace, or `%}` plus one newline (trim_blocks). Returns the index after.
    private func blockEnd(at i: Int) -> Int? {
        let bytes = b
        let n = bytes.count
        guard i < n else { return nil }
        let c = bytes[i]
        if (c == Self.plus || c == Self.minus), i + 2 < n, bytes[i + 1] == Self.percent, bytes[i + 2] == Self.rbrace {
            return c == Self.plus ? i + 3 : JinjaUnicode.skipSpace(from: i + 3, in: bytes)
        }
        if c == Self.percent, i + 1 < n, bytes[i + 1] == Self.rbrace {
            return (i + 2 < n && bytes[i + 2] == Self.newline) ? i + 3 : i + 2
        }
        return nil
    }

    private func variableEnd(at i: Int) -> Int? {
        let bytes = b
        let n = bytes.count
        guard i + 1 < n else { return nil }
        if bytes[i] == Self.minus, i + 2 < n, bytes[i + 1] == Self.rbrace, bytes[i + 2] == Self.rbrace {
            return JinjaUnicode.skipSpace(from: i + 3, in: bytes)
        }
        if bytes[i] == Self.rbrace, bytes[i + 1] == Self.rbrace { return i + 2 }
        return nil
    }

    private mutating func lexComment(from start: Int, openPos: Int) throws -> Int {
        let bytes = b
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == Self.hash && bytes[i + 1] == Self.rbrace {
                let signPos = i - 1
                if signPos >= start && bytes[signPos] == Self.minus {
                    return JinjaUnicode.skipSpace(from: i + 2, in: bytes)
                }
                if signPos >= start && bytes[signPos] == Self.plus { return i + 2 }
                return (i + 2 < bytes.count && bytes[i + 2] == Self.newline) ? i + 3 : i + 2
            }
            i += 1
        }
        throw src.syntaxError("Missing end of comment tag", at: openPos)
    }

    private static let oneCharOps: Set<UInt8> = Set("+-/*%~[](){}><=.:|,;".utf8)

    /// The next token inside `{{ }}` or `{% %}`, or the tag's end.
    private mutating func tagStep(block: Bool) throws {
        let bytes = b
        let n = bytes.count
        var i = pos
        defer { pos = i }
        while i < n {
            if balance.isEmpty {
                if block, let end = blockEnd(at: i) {
                    tokens.append(JinjaToken(kind: .blockEnd, pos: i))
                    i = end
                    tagIsBlock = nil
                    return
                }
                if !block, let end = variableEnd(at: i) {
                    tokens.append(JinjaToken(kind: .variableEnd, pos: i))
                    i = end
                    tagIsBlock = nil
                    return
                }
            }
            let c = bytes[i]
            let (scalar, scalarLen) = JinjaUnicode.scalar(at: i, in: bytes)
            if JinjaUnicode.isSpace(scalar) { i += scalarLen; continue }
            if isDigit(c) {
                i = try lexNumber(at: i)
                return
            }
            if isNameStart(scalar) {
                var j = i + scalarLen
                while j < n {
                    let (v, len) = JinjaUnicode.scalar(at: j, in: bytes)
                    guard isNameContinue(v) else { break }
                    j += len
                }
                tokens.append(JinjaToken(kind: .name, text: String(decoding: bytes[i..<j], as: UTF8.self), pos: i))
                i = j
                return
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                i = try lexString(at: i)
                return
            }
            if i + 1 < n, let two = Self.twoCharOp(c, bytes[i + 1]) {
                tokens.append(JinjaToken(kind: .op, text: two, pos: i))
                i += 2
                return
            }
            if Self.oneCharOps.contains(c) {
                switch c {
                case UInt8(ascii: "("): balance.append(UInt8(ascii: ")"))
                case UInt8(ascii: "["): balance.append(UInt8(ascii: "]"))
                case UInt8(ascii: "{"): balance.append(UInt8(ascii: "}"))
                case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}"):
                    guard let expected = balance.popLast() else {
                        throw src.syntaxError("unexpected '\(Character(Unicode.Scalar(c)))'", at: i)
                    }
                    if expected != c {
                        throw src.syntaxError(
                            "unexpected '\(Character(Unicode.Scalar(c)))', expected '\(Character(Unicode.Scalar(expected)))'",
                            at: i)
                    }
                default: break
                }
                tokens.append(JinjaToken(kind: .op, text: String(Character(Unicode.Scalar(c))), pos: i))
                i += 1
                return
            }
            let shown = Unicode.Scalar(scalar).map { String(Character($0)) } ?? "?"
            throw src.syntaxError("unexpected char '\(shown)'", at: i)
        }
        // End of text inside a tag: the parser reports what it was waiting for.
        tokens.append(JinjaToken(kind: .eof, pos: n))
    }

    private static func twoCharOp(_ a: UInt8, _ b: UInt8) -> String? {
        switch (a, b) {
        case (UInt8(ascii: "/"), UInt8(ascii: "/")): return "//"
        case (UInt8(ascii: "*"), UInt8(ascii: "*")): return "**"
        case (UInt8(ascii: "="), UInt8(ascii: "=")): return "=="
        case (UInt8(ascii: "!"), UInt8(ascii: "=")): return "!="
        case (UInt8(ascii: ">"), UInt8(ascii: "=")): return ">="
        case (UInt8(ascii: "<"), UInt8(ascii: "=")): return "<="
        default: return nil
        }
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private func isNameStart(_ v: UInt32) -> Bool {
        if v < 0x80 {
            return (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        return Unicode.Scalar(v)?.properties.isXIDStart ?? false
    }

    private func isNameContinue(_ v: UInt32) -> Bool {
        if v < 0x80 {
            return (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F || (v >= 0x30 && v <= 0x39)
        }
        return Unicode.Scalar(v)?.properties.isXIDContinue ?? false
    }

    /// Digits with single underscores between them (`1_000`); returns the end index.
    private func digitRun(_ i: Int, _ accept: (UInt8) -> Bool) -> Int {
        let bytes = b
        guard i < bytes.count, accept(bytes[i]) else { return i }
        var j = i + 1
        while j < bytes.count {
            if accept(bytes[j]) { j += 1; continue }
            if bytes[j] == UInt8(ascii: "_"), j + 1 < bytes.count, accept(bytes[j + 1]) { j += 2; continue }
            break
        }
        return j
    }

    /// Float (`1.5`, `1e3`, `2.5E-3`) if one matches here, else an integer (decimal, 0b, 0o, 0x).
    private mutating func lexNumber(at i: Int) throws -> Int {
        let bytes = b
        let n = bytes.count
        let intEnd = digitRun(i, isDigit)
        // Jinja's float rule does not start right after a dot (`x.0.1` is item access, not a float).
        let afterDot = i > 0 && bytes[i - 1] == UInt8(ascii: ".")
        if !afterDot {
            var j = intEnd
            var isFloat = false
            if j + 1 < n && bytes[j] == UInt8(ascii: "."), isDigit(bytes[j + 1]) {
                j = digitRun(j + 1, isDigit)
                isFloat = true
            }
            if j < n && (bytes[j] == UInt8(ascii: "e") || bytes[j] == UInt8(ascii: "E")) {
                var k = j + 1
                if k < n && (bytes[k] == UInt8(ascii: "+") || bytes[k] == UInt8(ascii: "-")) { k += 1 }
                let expEnd = digitRun(k, isDigit)
                if expEnd > k { j = expEnd; isFloat = true }
            }
            if isFloat {
                let text = String(decoding: bytes[i..<j], as: UTF8.self).replacingOccurrences(of: "_", with: "")
                guard let value = Double(text) else { throw src.syntaxError("invalid float literal", at: i) }
                tokens.append(JinjaToken(kind: .float, doubleValue: value, pos: i))
                return j
            }
        }
        if bytes[i] == UInt8(ascii: "0"), i + 1 < n {
            let p = bytes[i + 1] | 0x20
            let radix: Int? = p == UInt8(ascii: "b") ? 2 : p == UInt8(ascii: "o") ? 8 : p == UInt8(ascii: "x") ? 16 : nil
            if let radix {
                let accept: (UInt8) -> Bool = { c in
                    guard let d = Self.digitValue(c) else { return false }
                    return d < radix
                }
                // `0x_1f` is allowed: one underscore may follow the prefix.
                var s = i + 2
                if s < n && bytes[s] == UInt8(ascii: "_") { s += 1 }
                let end = digitRun(s, accept)
                if end > s {
                    let digits = String(decoding: bytes[s..<end], as: UTF8.self).replacingOccurrences(of: "_", with: "")
                    guard let value = Int(digits, radix: radix) else {
                        throw src.syntaxError("integer literal too large", at: i)
                    }
                    tokens.append(JinjaToken(kind: .integer, intValue: value, pos: i))
                    return end
                }
            }
            // `0` followed by more zeros only (`00`, `0_0`); `01` lexes as `0` then `1`, as in Jinja.
            var j = i + 1
            while j < n {
                if bytes[j] == UInt8(ascii: "0") { j += 1; continue }
                if bytes[j] == UInt8(ascii: "_"), j + 1 < n, bytes[j + 1] == UInt8(ascii: "0") { j += 2; continue }
                break
            }
            tokens.append(JinjaToken(kind: .integer, intValue: 0, pos: i))
            return j
        }
        let digits = String(decoding: bytes[i..<intEnd], as: UTF8.self).replacingOccurrences(of: "_", with: "")
        guard let value = Int(digits) else { throw src.syntaxError("integer literal too large", at: i) }
        tokens.append(JinjaToken(kind: .integer, intValue: value, pos: i))
        return intEnd
    }

    private static func digitValue(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case 0x61...0x66: return Int(c - 0x61 + 10)
        case 0x41...0x46: return Int(c - 0x41 + 10)
        default: return nil
        }
    }

    /// A quoted literal, decoded like Python's `unicode_escape` (what Jinja applies to string tokens).
    private mutating func lexString(at start: Int) throws -> Int {
        let bytes = b
        let quote = bytes[start]
        var i = start + 1
        var out: [UInt8] = []
        func appendScalar(_ v: UInt32) {
            // Lone surrogates cannot live in a Swift String; U+FFFD stands in for them.
            let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while true {
            guard i < bytes.count else { throw src.syntaxError("unexpected char '\(Character(Unicode.Scalar(quote)))'", at: start) }
            let c = bytes[i]
            if c == quote { i += 1; break }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < bytes.count else {
                throw src.syntaxError("unexpected char '\(Character(Unicode.Scalar(quote)))'", at: start)
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\n"): break
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "'"): out.append(UInt8(ascii: "'"))
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = UInt32(e - 0x30)
                var k = 0
                while k < 2, i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x37 {
                    value = value * 8 + UInt32(bytes[i] - 0x30)
                    i += 1
                    k += 1
                }
                appendScalar(value)
            case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
                let width = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : 8
                var value: UInt32 = 0
                for k in 0..<width {
                    guard i + k < bytes.count, let d = Self.digitValue(bytes[i + k]) else {
                        let what = e == UInt8(ascii: "x") ? "\\xXX" : e == UInt8(ascii: "u") ? "\\uXXXX" : "\\UXXXXXXXX"
                        throw src.syntaxError("truncated \(what) escape", at: start)
                    }
                    value = value * 16 + UInt32(d)
                }
                i += width
                guard value <= 0x10FFFF else { throw src.syntaxError("illegal Unicode character", at: start) }
                appendScalar(value)
            case UInt8(ascii: "N"):
                throw src.syntaxError("\\N{...} escapes are not supported", at: start)
            default:
                if e >= 0x80 {
                    // Jinja backslash-escapes non-ASCII text before decoding, so `\é` becomes the text `\xe9`.
                    let (v, len) = JinjaUnicode.scalar(at: i - 1, in: bytes)
                    i += len - 1
                    let hex = String(v, radix: 16)
                    let spelled = v < 0x100 ? "x" + String(repeating: "0", count: 2 - hex.count) + hex
                        : v < 0x10000 ? "u" + String(repeating: "0", count: 4 - hex.count) + hex
                        : "U" + String(repeating: "0", count: 8 - hex.count) + hex
                    out.append(UInt8(ascii: "\\"))
                    out.append(contentsOf: Array(spelled.utf8))
                } else {
                    // Unknown escapes keep their backslash, as in Python.
                    out.append(UInt8(ascii: "\\"))
                    out.append(e)
                }
            }
        }
        tokens.append(JinjaToken(kind: .string, text: String(decoding: out, as: UTF8.self), pos: start))
        return i
    }
}
