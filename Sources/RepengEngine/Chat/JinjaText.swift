// Python text behaviour templates observe: str/repr, json.dumps, % and str.format, str methods, strftime.
// Follows the Python 3.11 library reference (str, json, datetime.strftime) as Jinja2 3.1 and transformers 5.24 use it.
import Foundation

/// Byte-level string algorithms. UTF-8 is self-synchronizing, so byte matches are code-point matches.
enum JinjaText {
    /// First index of `needle` in `hay` at or after `from` (Knuth–Morris–Pratt: linear even on hostile input).
    static func find(_ needle: [UInt8], in hay: [UInt8], from start: Int) -> Int? {
        let m = needle.count
        if m == 0 { return start <= hay.count ? start : nil }
        if hay.count - start < m { return nil }
        var failure = [Int](repeating: 0, count: m)
        var k = 0
        for i in 1..<max(m, 1) {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        var q = 0
        var i = start
        while i < hay.count {
            while q > 0 && hay[i] != needle[q] { q = failure[q - 1] }
            if hay[i] == needle[q] { q += 1 }
            if q == m { return i - m + 1 }
            i += 1
        }
        return nil
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// `str.split(sep, maxsplit)` with an explicit separator.
    static func split(_ s: String, separator: String, maxSplit: Int) -> [String] {
        let hay = Array(s.utf8), sep = Array(separator.utf8)
        var parts: [String] = []
        var start = 0
        while maxSplit < 0 || parts.count < maxSplit, let at = find(sep, in: hay, from: start) {
            parts.append(string(hay[start..<at]))
            start = at + sep.count
        }
        parts.append(string(hay[start...]))
        return parts
    }

    /// `str.split()` without a separator: runs of whitespace, no empty strings.
    static func splitWhitespace(_ s: String, maxSplit: Int) -> [String] {
        var parts: [String] = []
        var current = String.UnicodeScalarView()
        var inWord = false
        var scalars = Array(s.unicodeScalars)[...]
        while let scalar = scalars.first {
            if JinjaUnicode.isSpace(scalar.value) {
                if inWord {
                    parts.append(String(current))
                    current = String.UnicodeScalarView()
                    inWord = false
                }
                scalars = scalars.dropFirst()
                continue
            }
            if !inWord && maxSplit >= 0 && parts.count >= maxSplit {
                // Python keeps the rest (minus trailing whitespace) as the last part.
                var rest = Array(scalars)
                while let last = rest.last, JinjaUnicode.isSpace(last.value) { rest.removeLast() }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: rest)
                parts.append(String(view))
                return parts
            }
            inWord = true
            current.append(scalar)
            scalars = scalars.dropFirst()
        }
        if inWord { parts.append(String(current)) }
        return parts
    }

    /// `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ s: String, separator: String?, maxSplit: Int) -> [String] {
        if maxSplit < 0 {
            return separator.map { split(s, separator: $0, maxSplit: -1) } ?? splitWhitespace(s, maxSplit: -1)
        }
        let reversedText = String(String.UnicodeScalarView(s.unicodeScalars.reversed()))
        let reversedSep = separator.map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
        let parts = reversedSep.map { split(reversedText, separator: $0, maxSplit: maxSplit) }
            ?? splitWhitespace(reversedText, maxSplit: maxSplit)
        return parts.reversed().map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
    }

    /// `str.replace(old, new, count)`.
    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        if old.isEmpty {
            // Python inserts `new` around every character.
            var out = ""
            var done = 0
            for scalar in s.unicodeScalars {
                if count < 0 || done < count {
                    out += new
                    done += 1
                }
                out.unicodeScalars.append(scalar)
            }
            if count < 0 || done < count { out += new }
            return out
        }
        let hay = Array(s.utf8), pattern = Array(old.utf8)
        var out: [UInt8] = []
        var start = 0
        var done = 0
        while count < 0 || done < count, let at = find(pattern, in: hay, from: start) {
            out.append(contentsOf: hay[start..<at])
            out.append(contentsOf: new.utf8)
            start = at + pattern.count
            done += 1
        }
        out.append(contentsOf: hay[start...])
        return String(decoding: out, as: UTF8.self)
    }

    /// Non-overlapping occurrences (`str.count`).
    static func count(_ s: String, _ sub: String) -> Int {
        if sub.isEmpty { return s.unicodeScalars.count + 1 }
        let hay = Array(s.utf8), pattern = Array(sub.utf8)
        var n = 0
        var start = 0
        while let at = find(pattern, in: hay, from: start) {
            n += 1
            start = at + pattern.count
        }
        return n
    }

    /// `str.strip(chars)` / `lstrip` / `rstrip`; nil chars means whitespace.
    static func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars.map { $0.value }) }
        func strippable(_ scalar: Unicode.Scalar) -> Bool {
            if let set { return set.contains(scalar.value) }
            return JinjaUnicode.isSpace(scalar.value)
        }
        let scalars = Array(s.unicodeScalars)
        var lo = 0, hi = scalars.count
        if leading { while lo < hi && strippable(scalars[lo]) { lo += 1 } }
        if trailing { while hi > lo && strippable(scalars[hi - 1]) { hi -= 1 } }
        if lo == 0 && hi == scalars.count { return s }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lo..<hi])
        return String(view)
    }

    /// `str.splitlines(keepends)`.
    static func splitLines(_ s: String, keepEnds: Bool = false) -> [String] {
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        let scalars = Array(s.unicodeScalars)
        var i = 0
        while i < scalars.count {
            let v = scalars[i].value
            let isBreak = v == 0x0A || v == 0x0D || v == 0x0B || v == 0x0C || v == 0x1C || v == 0x1D || v == 0x1E
                || v == 0x85 || v == 0x2028 || v == 0x2029
            if isBreak {
                var end = String.UnicodeScalarView([scalars[i]])
                if v == 0x0D && i + 1 < scalars.count && scalars[i + 1].value == 0x0A {
                    end.append(scalars[i + 1])
                    i += 1
                }
                if keepEnds { current.append(contentsOf: end) }
                lines.append(String(current))
                current = String.UnicodeScalarView()
            } else {
                current.append(scalars[i])
            }
            i += 1
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    private static func titleCase(_ scalar: Unicode.Scalar) -> String { scalar.properties.titlecaseMapping }

    /// `str.capitalize()`: first character title-cased, the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return titleCase(first) + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
    }

    /// `str.title()`: a cased character after an uncased one starts a word.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in s.unicodeScalars {
            out += previousCased ? scalar.properties.lowercaseMapping : titleCase(scalar)
            previousCased = scalar.properties.isCased
        }
        return out
    }

    /// Jinja's `title` filter: words split at `-`, whitespace and opening brackets; each word
    /// upper-cases its first character and lower-cases the rest.
    static func jinjaTitle(_ s: String) -> String {
        func isSeparator(_ v: UInt32) -> Bool {
            v == 0x2D || v == 0x28 || v == 0x7B || v == 0x5B || v == 0x3C || JinjaUnicode.isSpace(v)
        }
        var out = ""
        var chunk = String.UnicodeScalarView()
        var chunkIsSeparator = false
        func flush() {
            if let first = chunk.first {
                out += String(first).uppercased() + String(String.UnicodeScalarView(chunk.dropFirst())).lowercased()
            }
            chunk = String.UnicodeScalarView()
        }
        for scalar in s.unicodeScalars {
            let sep = isSeparator(scalar.value)
            if !chunk.isEmpty && sep != chunkIsSeparator { flush() }
            chunkIsSeparator = sep
            chunk.append(scalar)
        }
        flush()
        return out
    }

    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.numericType != nil }

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.numericType == .decimal || scalar.properties.numericType == .digit
    }

    /// Regex `\w` for `str` patterns.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || isLetter(scalar) || isNumeric(scalar)
    }

    /// JSON string literal as Python's json module writes it.
    static func jsonString(_ s: String, ensureASCII: Bool) -> String {
        var out = "\""
        func hex4(_ v: UInt32) -> String {
            let h = String(v, radix: 16)
            return "\\u" + String(repeating: "0", count: 4 - h.count) + h
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let v = scalar.value
                if v < 0x20 || (ensureASCII && v >= 0x7F) {
                    if v >= 0x10000 {
                        let u = v - 0x10000
                        out += hex4(0xD800 | (u >> 10)) + hex4(0xDC00 | (u & 0x3FF))
                    } else {
                        out += hex4(v)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August",
                                 "September", "October", "November", "December"]

    /// `datetime.now().strftime(format)` in the C locale for the local time zone. The datetime is naive,
    /// so `%z` and `%Z` are empty, as in Python.
    static func strftime(_ format: String, _ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond],
                                        from: date)
        let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
        let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0
        let weekday0 = ((c.weekday ?? 1) - 1 + 7) % 7  // Sunday = 0
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        var iso = Calendar(identifier: .iso8601)
        iso.timeZone = TimeZone.current
        let isoWeek = iso.component(.weekOfYear, from: date)
        let isoYear = iso.component(.yearForWeekOfYear, from: date)
        let hour12 = hour % 12 == 0 ? 12 : hour % 12

        func pad(_ v: Int, _ width: Int, _ fill: Character, _ flag: Character?) -> String {
            let digits = String(abs(v))
            if flag == "-" { return (v < 0 ? "-" : "") + digits }
            let f: Character = flag == "_" ? " " : flag == "0" ? "0" : fill
            let body = digits.count < width ? String(repeating: f, count: width - digits.count) + digits : digits
            return (v < 0 ? "-" : "") + body
        }

        var out = ""
        let chars = Array(format)
        var i = 0
        while i < chars.count {
            let ch = chars[i]
            guard ch == "%", i + 1 < chars.count else {
                out.append(ch)
                i += 1
                continue
            }
            var j = i + 1
            var flag: Character?
            if "-_0".contains(chars[j]), j + 1 < chars.count {
                flag = chars[j]
                j += 1
            }
            let d = chars[j]
            var piece: String?
            switch d {
            case "a": piece = String(weekdays[weekday0].prefix(3))
            case "A": piece = weekdays[weekday0]
            case "b", "h": piece = String(months[month - 1].prefix(3))
            case "B": piece = months[month - 1]
            case "c":
                piece = "\(weekdays[weekday0].prefix(3)) \(months[month - 1].prefix(3)) \(pad(day, 2, " ", nil)) "
                    + "\(pad(hour, 2, "0", nil)):\(pad(minute, 2, "0", nil)):\(pad(second, 2, "0", nil)) \(year)"
            case "C": piece = pad(year / 100, 2, "0", flag)
            case "d": piece = pad(day, 2, "0", flag)
            case "D": piece = "\(pad(month, 2, "0", nil))/\(pad(day, 2, "0", nil))/\(pad(year % 100, 2, "0", nil))"
            case "e": piece = pad(day, 2, " ", flag)
            case "f": piece = pad((c.nanosecond ?? 0) / 1000, 6, "0", nil)
            case "F": piece = "\(pad(year, 4, "0", nil))-\(pad(month, 2, "0", nil))-\(pad(day, 2, "0", nil))"
            case "G": piece = String(isoYear)
            case "g": piece = pad(isoYear % 100, 2, "0", flag)
            case "H": piece = pad(hour, 2, "0", flag)
            case "I": piece = pad(hour12, 2, "0", flag)
            case "j": piece = pad(dayOfYear, 3, "0", flag)
            case "k": piece = pad(hour, 2, " ", flag)
            case "l": piece = pad(hour12, 2, " ", flag)
            case "m": piece = pad(month, 2, "0", flag)
            case "M": piece = pad(minute, 2, "0", flag)
            case "n": piece = "\n"
            case "p": piece = hour < 12 ? "AM" : "PM"
            case "P": piece = hour < 12 ? "am" : "pm"
            case "r": piece = "\(pad(hour12, 2, "0", nil)):\(pad(minute, 2, "0", nil)):\(pad(second, 2, "0", nil)) \(hour < 12 ? "AM" : "PM")"
            case "R": piece = "\(pad(hour, 2, "0", nil)):\(pad(minute, 2, "0", nil))"
            case "s": piece = String(Int(date.timeIntervalSince1970.rounded(.down)))
            case "S": piece = pad(second, 2, "0", flag)
            case "t": piece = "\t"
            case "T", "X": piece = "\(pad(hour, 2, "0", nil)):\(pad(minute, 2, "0", nil)):\(pad(second, 2, "0", nil))"
            case "u": piece = String(weekday0 == 0 ? 7 : weekday0)
            case "U": piece = pad((dayOfYear - 1 + 7 - weekday0) / 7, 2, "0", flag)
            case "V": piece = pad(isoWeek, 2, "0", flag)
            case "w": piece = String(weekday0)
            case "W": piece = pad((dayOfYear - 1 + 7 - (weekday0 + 6) % 7) / 7, 2, "0", flag)
            case "x": piece = "\(pad(month, 2, "0", nil))/\(pad(day, 2, "0", nil))/\(pad(year % 100, 2, "0", nil))"
            case "y": piece = pad(year % 100, 2, "0", flag)
            case "Y": piece = pad(year, 1, "0", flag)
            case "z", "Z": piece = ""
            case "%": piece = "%"
            default: piece = nil
            }
            if let piece {
                out += piece
            } else {
                // glibc copies unknown conversions through unchanged.
                out += String(chars[i...j])
            }
            i = j + 1
        }
        return out
    }
}

extension JinjaRenderer {
    /// Python `str(x)`, which is also what `{{ x }}` prints (Undefined prints nothing).
    func str(_ value: JinjaValue) throws -> String {
        switch value {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return JinjaFormat.floatRepr(d)
        case let .string(s), let .markup(s): return s
        default: return try repr(value)
        }
    }

    /// Python `repr(x)`.
    func repr(_ value: JinjaValue) throws -> String {
        var out = ""
        try writeRepr(value, into: &out, level: 0)
        return try noteString(out)
    }

    private func writeRepr(_ value: JinjaValue, into out: inout String, level: Int) throws {
        try tick()
        if level > Self.maxValueNesting {
            throw ChatTemplateError.limitExceeded("repr of values nested deeper than \(Self.maxValueNesting)")
        }
        try checkStringSize(out.utf8.count)
        switch value {
        case .undefined: out += "Undefined"
        case .none, .bool, .int, .double: out += try str(value)
        case let .string(s):
            try checkStringSize(out.utf8.count + s.utf8.count + 2)
            out += JinjaFormat.stringRepr(s)
        case let .markup(s):
            try checkStringSize(out.utf8.count + s.utf8.count + 10)
            out += "Markup(" + JinjaFormat.stringRepr(s) + ")"
        case let .list(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += ", " }
                try writeRepr(item, into: &out, level: level + 1)
            }
            out += "]"
        case let .tuple(items):
            out += "("
            for (i, item) in items.enumerated() {
                if i > 0 { out += ", " }
                try writeRepr(item, into: &out, level: level + 1)
            }
            out += items.count == 1 ? ",)" : ")"
        case let .dict(dict):
            try writeDictRepr(dict, into: &out, level: level)
        case let .namespace(namespace):
            out += "<Namespace "
            try writeDictRepr(namespace.attributes, into: &out, level: level)
            out += ">"
        case let .macro(macro): out += "<Macro '\(macro.macro.name)'>"
        case let .builtin(builtin): out += "<function \(builtin.rawValue)>"
        case let .method(receiver, name): out += "<built-in method \(name) of \(receiver.typeName) object>"
        case let .loop(loop): out += "<LoopContext \(loop.index0 + 1)/\(loop.items.count)>"
        case let .iterator(it):
            switch it.kind {
            case .range:
                let r = it.range ?? (0, it.items.count, 1)
                out += r.step == 1 ? "range(\(r.start), \(r.stop))" : "range(\(r.start), \(r.stop), \(r.step))"
            case .dictKeys, .dictValues, .dictItems:
                out += it.kind.rawValue + "("
                try writeRepr(.list(it.items), into: &out, level: level)
                out += ")"
            case .generator, .reverseIterator:
                // Python adds the object's address here; there is nothing stable to print instead.
                out += "<\(it.kind.rawValue) object>"
            }
        }
    }

    private func writeDictRepr(_ dict: JinjaDict, into out: inout String, level: Int) throws {
        out += "{"
        for (i, pair) in dict.pairs.enumerated() {
            if i > 0 { out += ", " }
            try writeRepr(pair.key, into: &out, level: level + 1)
            out += ": "
            try writeRepr(pair.value, into: &out, level: level + 1)
        }
        out += "}"
    }

    struct JSONOptions {
        var ensureASCII = false
        var indent: String?
        var itemSeparator = ", "
        var keySeparator = ": "
        var sortKeys = false
    }

    /// `json.dumps(value, ...)` as transformers' `tojson` calls it.
    func json(_ value: JinjaValue, _ options: JSONOptions, _ pos: Int) throws -> String {
        var out = ""
        try writeJSON(value, options, into: &out, level: 0, pos)
        return try noteString(out)
    }

    private func writeJSON(_ value: JinjaValue, _ o: JSONOptions, into out: inout String, level: Int, _ pos: Int) throws {
        try tick()
        if level > Self.maxValueNesting {
            throw ChatTemplateError.limitExceeded("JSON of values nested deeper than \(Self.maxValueNesting)")
        }
        try checkStringSize(out.utf8.count)
        func newline(_ depth: Int) throws {
            guard let indent = o.indent else { return }
            try checkStringSize(out.utf8.count + 1 + indent.utf8.count * depth)
            out += "\n" + String(repeating: indent, count: depth)
        }
        switch value {
        case .none: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JinjaFormat.floatRepr(d)
        case let .string(s), let .markup(s):
            try checkStringSize(out.utf8.count + s.utf8.count + 2)
            out += JinjaText.jsonString(s, ensureASCII: o.ensureASCII)
        case let .list(items), let .tuple(items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += o.itemSeparator }
                try newline(level + 1)
                try writeJSON(item, o, into: &out, level: level + 1, pos)
            }
            try newline(level)
            out += "]"
        case let .dict(dict):
            if dict.count == 0 {
                out += "{}"
                return
            }
            var entries: [(key: String, value: JinjaValue)] = []
            for (key, item) in dict.pairs {
                let name: String
                switch key {
                case let .string(s), let .markup(s): name = s
                case .none: name = "null"
                case let .bool(b): name = b ? "true" : "false"
                case let .int(i): name = String(i)
                case let .double(d):
                    name = d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JinjaFormat.floatRepr(d)
                default:
                    throw typeError("keys must be str, int, float, bool or None, not \(key.typeName)", pos)
                }
                entries.append((name, item))
            }
            if o.sortKeys { entries.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } }
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += o.itemSeparator }
                try newline(level + 1)
                out += JinjaText.jsonString(entry.key, ensureASCII: o.ensureASCII) + o.keySeparator
                try writeJSON(entry.value, o, into: &out, level: level + 1, pos)
            }
            try newline(level)
            out += "}"
        default:
            throw typeError("Object of type \(value.typeName) is not JSON serializable", pos)
        }
    }

    /// Python's `str.format(*args, **kwargs)`: `{}`, `{0}`, `{name}`, `.attr`/`[key]` lookups, `!r`/`!s`, and
    /// the common format specs (fill, alignment, sign, width, precision, `s d f e g x o b %`).
    func strFormat(_ format: String, _ args: Arguments, _ pos: Int) throws -> String {
        let chars = Array(format.unicodeScalars)
        var out = String.UnicodeScalarView()
        var automatic = 0
        var numbering: Bool?  // true: automatic, false: manual
        var i = 0
        func fail(_ message: String) -> ChatTemplateError { typeError(message, pos) }
        while i < chars.count {
            let ch = chars[i]
            if ch == "}" {
                guard i + 1 < chars.count, chars[i + 1] == "}" else { throw fail("Single '}' encountered in format string") }
                out.append("}")
                i += 2
                continue
            }
            guard ch == "{" else {
                out.append(ch)
                i += 1
                continue
            }
            if i + 1 < chars.count, chars[i + 1] == "{" {
                out.append("{")
                i += 2
                continue
            }
            // Field up to the matching `}` (nested `{}` inside the spec are not supported).
            var j = i + 1
            while j < chars.count, chars[j] != "}" {
                if chars[j] == "{" { throw fail("nested replacement fields are not supported") }
                j += 1
            }
            guard j < chars.count else { throw fail("Single '{' encountered in format string") }
            var field = String(String.UnicodeScalarView(chars[(i + 1)..<j]))
            i = j + 1
            var spec = ""
            if let colon = field.firstIndex(of: ":") {
                spec = String(field[field.index(after: colon)...])
                field = String(field[..<colon])
            }
            var conversion: Character?
            if let bang = field.firstIndex(of: "!") {
                conversion = field[field.index(after: bang)...].first
                field = String(field[..<bang])
            }
            // The first name or index, then `.attr` / `[key]` steps.
            let head = field.prefix { $0 != "." && $0 != "[" }
            var rest = field.dropFirst(head.count)
            var value: JinjaValue
            if head.isEmpty {
                if numbering == false { throw fail("cannot switch from manual field specification to automatic field numbering") }
                numbering = true
                guard automatic < args.positional.count else {
                    throw fail("Replacement index \(automatic) out of range for positional args tuple")
                }
                value = args.positional[automatic]
                automatic += 1
            } else if let index = Int(head), head.allSatisfy({ $0.isASCII && $0.isNumber }) {
                if numbering == true { throw fail("cannot switch from automatic field numbering to manual field specification") }
                numbering = false
                guard index < args.positional.count else {
                    throw fail("Replacement index \(index) out of range for positional args tuple")
                }
                value = args.positional[index]
            } else {
                guard let found = args.keywords.first(where: { $0.name == head })?.value else { throw fail("KeyError: '\(head)'") }
                value = found
            }
            while let first = rest.first {
                if first == "." {
                    rest = rest.dropFirst()
                    let name = rest.prefix { $0 != "." && $0 != "[" }
                    rest = rest.dropFirst(name.count)
                    value = try getattr(value, String(name), pos)
                } else {
                    rest = rest.dropFirst()
                    let key = rest.prefix { $0 != "]" }
                    rest = rest.dropFirst(key.count + 1)
                    value = try getitem(value, Int(key).map { .int($0) } ?? .string(String(key)), pos)
                }
            }
            if conversion == "r" || conversion == "a" {
                value = .string(try repr(value))
            } else if conversion == "s" {
                value = .string(try str(value))
            }
            out.append(contentsOf: try formatSpec(value, spec, pos).unicodeScalars)
            try checkStringSize(out.count)
        }
        return String(out)
    }

    /// Python's format-spec mini-language for the common cases.
    private func formatSpec(_ value: JinjaValue, _ spec: String, _ pos: Int) throws -> String {
        if spec.isEmpty { return try str(value) }
        var s = Array(spec)
        var fill: Character = " "
        var align: Character?
        if s.count >= 2, "<>^=".contains(s[1]) {
            fill = s[0]
            align = s[1]
            s.removeFirst(2)
        } else if let first = s.first, "<>^=".contains(first) {
            align = first
            s.removeFirst()
        }
        var sign: Character = "-"
        if let first = s.first, "+- ".contains(first) {
            sign = first
            s.removeFirst()
        }
        if s.first == "0" {
            fill = "0"
            align = align ?? "="
            s.removeFirst()
        }
        var width = 0
        while let d = s.first?.wholeNumberValue, s.first?.isASCII == true {
            width = min(width * 10 + d, 10_000)
            s.removeFirst()
        }
        var precision: Int?
        if s.first == "." {
            s.removeFirst()
            var p = 0
            while let d = s.first?.wholeNumberValue, s.first?.isASCII == true {
                p = min(p * 10 + d, 1_000)
                s.removeFirst()
            }
            precision = p
        }
        guard s.count <= 1 else { throw typeError("Invalid format specifier '\(spec)'", pos) }
        let type = s.first
        var body: String
        var numeric = false
        switch type {
        case nil where value.stringValue != nil, "s":
            guard let text = value.stringValue else {
                throw typeError("Unknown format code 's' for object of type '\(value.typeName)'", pos)
            }
            body = precision.map { String(String.UnicodeScalarView(text.unicodeScalars.prefix($0))) } ?? text
        case nil where value.asInt != nil, "d", "x", "X", "o", "b":
            guard let n = value.asInt else {
                throw typeError("Unknown format code '\(type.map(String.init) ?? "d")' for object of type '\(value.typeName)'", pos)
            }
            numeric = true
            let radix = type == "x" || type == "X" ? 16 : type == "o" ? 8 : type == "b" ? 2 : 10
            body = String(n.magnitude, radix: radix, uppercase: type == "X")
            if n < 0 { body = "-" + body } else if sign != "-" { body = String(sign) + body }
        case nil, "f", "F", "e", "E", "g", "G", "%":
            guard let d = value.asDouble else {
                throw typeError("Unknown format code '\(type.map(String.init) ?? "")' for object of type '\(value.typeName)'", pos)
            }
            numeric = true
            if type == nil && precision == nil {
                body = try str(value.isNumber ? .double(d) : value)
            } else if type == "%" {
                body = String(format: "%.\(precision ?? 6)f", d * 100) + "%"
            } else {
                body = String(format: "%.\(precision ?? 6)\(type.map(String.init) ?? "g")", d)
            }
            if d >= 0 && sign != "-" { body = String(sign) + body }
        default:
            throw typeError("Unknown format code '\(type.map(String.init) ?? "")' for object of type '\(value.typeName)'", pos)
        }
        let length = body.unicodeScalars.count
        guard width > length else { return body }
        let padding = width - length
        switch align ?? (numeric ? ">" : "<") {
        case "<": return body + String(repeating: fill, count: padding)
        case "^":
            let left = padding / 2
            return String(repeating: fill, count: left) + body + String(repeating: fill, count: padding - left)
        case "=":
            if let first = body.first, "+- ".contains(first) {
                return String(first) + String(repeating: fill, count: padding) + body.dropFirst()
            }
            return String(repeating: fill, count: padding) + body
        default: return String(repeating: fill, count: padding) + body
        }
    }

    /// Python's printf-style `format % values` for the common conversions (`s r d i f x o e g %`).
    func percentFormat(_ format: String, _ values: [JinjaValue], _ pos: Int, allowUnused: Bool = false) throws -> String {
        var out = ""
        let chars = Array(format)
        var i = 0
        var next = 0
        func take() throws -> JinjaValue {
            guard next < values.count else { throw typeError("not enough arguments for format string", pos) }
            next += 1
            return values[next - 1]
        }
        while i < chars.count {
            guard chars[i] == "%" else {
                out.append(chars[i])
                i += 1
                continue
            }
            i += 1
            guard i < chars.count else { throw typeError("incomplete format", pos) }
            var flags = ""
            while i < chars.count, "-+ 0#".contains(chars[i]) { flags.append(chars[i]); i += 1 }
            var width = 0
            while i < chars.count, let d = chars[i].wholeNumberValue, chars[i].isASCII {
                width = min(width * 10 + d, 10_000)
                i += 1
            }
            var precision: Int?
            if i < chars.count, chars[i] == "." {
                i += 1
                var p = 0
                while i < chars.count, let d = chars[i].wholeNumberValue, chars[i].isASCII {
                    p = min(p * 10 + d, 1_000)
                    i += 1
                }
                precision = p
            }
            guard i < chars.count else { throw typeError("incomplete format", pos) }
            let conversion = chars[i]
            i += 1
            var piece: String
            switch conversion {
            case "%":
                out += "%"
                continue
            case "s":
                piece = try str(try take())
                if let precision { piece = String(piece.unicodeScalars.prefix(precision).map(Character.init)) }
            case "r":
                piece = try repr(try take())
            case "d", "i", "x", "X", "o":
                let v = try take()
                let number: Int
                if let n = v.asInt {
                    number = n
                } else if case let .double(d) = v, d.isFinite, abs(d) < 9.2e18 {
                    number = Int(d)
                } else {
                    throw typeError("%\(conversion) format: a real number is required, not \(v.typeName)", pos)
                }
                let radix = conversion == "d" || conversion == "i" ? 10 : conversion == "o" ? 8 : 16
                piece = String(number.magnitude, radix: radix, uppercase: conversion == "X")
                if number < 0 { piece = "-" + piece } else if flags.contains("+") { piece = "+" + piece }
            case "f", "F", "e", "E", "g", "G":
                let v = try take()
                guard let d = v.asDouble else {
                    throw typeError("must be real number, not \(v.typeName)", pos)
                }
                piece = String(format: "%\(flags.contains("+") ? "+" : "").\(precision ?? 6)\(conversion)", d)
            default:
                throw typeError("unsupported format character '\(conversion)'", pos)
            }
            let length = piece.unicodeScalars.count
            if width > length {
                let fill = String(repeating: flags.contains("0") && !flags.contains("-") && conversion != "s" ? "0" : " ",
                                  count: width - length)
                piece = flags.contains("-") ? piece + fill : fill + piece
            }
            out += piece
            try checkStringSize(out.utf8.count)
        }
        if next < values.count && !allowUnused {
            throw typeError("not all arguments converted during string formatting", pos)
        }
        return out
    }
}
