// A TOML v1.0 reader (https://toml.io/en/v1.0.0) for the daemon's config file. The file is
// hostile input like any other: every rule of the specification is checked, nesting is bounded,
// and no input traps. Dates and times are refused (no setting takes one).

/// A TOML value. Integers are 64-bit, floats IEEE doubles.
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var int: Int? { if case let .integer(i) = self { i } else { nil } }
    public var double: Double? { if case let .float(d) = self { d } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
    public var array: [TOMLValue]? { if case let .array(a) = self { a } else { nil } }
    public var table: TOMLTable? { if case let .table(t) = self { t } else { nil } }
}

/// A TOML table: keys in the order the document first names them.
public struct TOMLTable: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    public init() {}

    public subscript(key: String) -> TOMLValue? { values[key] }

    mutating func append(_ key: String, _ value: TOMLValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }
}

/// Why a document is not valid TOML, with the line and column (1-based, in characters).
public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

public enum TOML {
    /// Deepest nesting of tables, arrays and inline tables together.
    public static let maxDepth = 64

    /// Parses a whole document.
    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(Array(text.utf8))
        return try parser.document()
    }
}

// MARK: - Parser

/// A table while the document is read. `explicit`: declared by a `[header]` (or created by dotted
/// keys in a section that has ended), so no later header or dotted key may define it again.
/// `frozen`: an inline table, complete once written.
private final class TableBox {
    var keys: [String] = []
    var entries: [String: Entry] = [:]
    var explicit = false
    var frozen = false
    let depth: Int
    init(depth: Int) { self.depth = depth }

    func insert(_ key: String, _ entry: Entry) {
        if entries.updateValue(entry, forKey: key) == nil { keys.append(key) }
    }

    func freeze() {
        frozen = true
        for key in keys { if case let .table(t) = entries[key] { t.freeze() } }
    }

    func value() -> TOMLTable {
        var out = TOMLTable()
        for key in keys {
            switch entries[key] {
            case let .value(v): out.append(key, v)
            case let .table(t): out.append(key, .table(t.value()))
            case let .tables(a): out.append(key, .array(a.items.map { .table($0.value()) }))
            case nil: break
            }
        }
        return out
    }
}

private final class TableArrayBox {
    var items: [TableBox] = []
}

private enum Entry {
    /// A value written with `=`, static arrays included.
    case value(TOMLValue)
    case table(TableBox)
    /// An array of tables (`[[name]]`).
    case tables(TableArrayBox)
}

private struct TOMLParser {
    let b: [UInt8]
    var pos = 0
    let root = TableBox(depth: 0)
    /// Tables created or extended by dotted keys in the current section; explicit once it ends.
    var pending: [TableBox] = []

    init(_ bytes: [UInt8]) { b = bytes }

    // MARK: Errors and characters

    func fail(_ message: String, at p: Int? = nil) -> TOMLError {
        let at = min(p ?? pos, b.count)
        var line = 1, lineStart = 0
        for i in 0 ..< at where b[i] == 0x0A { line += 1; lineStart = i + 1 }
        let column = String(decoding: b[lineStart ..< at], as: UTF8.self).count + 1
        return TOMLError(line: line, column: column, message: message)
    }

    var atEnd: Bool { pos >= b.count }
    func peek(_ offset: Int = 0) -> UInt8? { pos + offset < b.count ? b[pos + offset] : nil }

    static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    /// Control characters TOML allows nowhere except as noted (tab is allowed everywhere text is).
    static func isControl(_ c: UInt8) -> Bool { (c < 0x20 && c != 0x09) || c == 0x7F }

    func describe(_ c: UInt8?) -> String {
        guard let c else { return "the end of the file" }
        switch c {
        case 0x0A: return "a line break"
        case 0x0D: return "a carriage return"
        case 0x20 ..< 0x7F: return "'\(Character(Unicode.Scalar(c)))'"
        default: return c < 0x80 ? "the control character 0x\(String(c, radix: 16))" : "a non-ASCII character"
        }
    }

    mutating func skipBlanks() { while let c = peek(), c == 0x20 || c == 0x09 { pos += 1 } }

    /// A comment (from `#`) up to the end of the line, which is not consumed.
    mutating func skipComment() throws(TOMLError) {
        guard peek() == 0x23 else { return }
        pos += 1
        while let c = peek(), c != 0x0A {
            if c == 0x0D, peek(1) == 0x0A { return }
            if Self.isControl(c) { throw fail("\(describe(c)) in a comment") }
            pos += 1
        }
    }

    /// Consumes one line break (LF or CRLF); false if there is none here.
    mutating func newline() throws(TOMLError) -> Bool {
        if peek() == 0x0A { pos += 1; return true }
        if peek() == 0x0D {
            guard peek(1) == 0x0A else { throw fail("a carriage return must be followed by a line feed") }
            pos += 2
            return true
        }
        return false
    }

    /// Blanks, an optional comment, then a line break or the end of the file.
    mutating func endOfLine(_ after: String) throws(TOMLError) {
        skipBlanks()
        try skipComment()
        if atEnd { return }
        guard try newline() else { throw fail("expected the end of the line after \(after), found \(describe(peek()))") }
    }

    /// Blanks, comments and line breaks (inside arrays).
    mutating func skipBlankLines() throws(TOMLError) {
        while true {
            skipBlanks()
            try skipComment()
            guard try newline() else { return }
        }
    }

    // MARK: Document

    mutating func document() throws(TOMLError) -> TOMLTable {
        var current = root
        while true {
            skipBlanks()
            try skipComment()
            if atEnd { break }
            if try newline() { continue }
            if peek() == 0x5B {
                current = try header()
            } else {
                try keyValue(into: current)
                try endOfLine("a value")
            }
        }
        return root.value()
    }

    /// `[a.b]` or `[[a.b]]`; returns the table the following key/values go into.
    mutating func header() throws(TOMLError) -> TableBox {
        let start = pos
        for t in pending { t.explicit = true }
        pending.removeAll()
        let isArray = peek(1) == 0x5B
        pos += isArray ? 2 : 1
        skipBlanks()
        let path = try key()
        skipBlanks()
        guard peek() == 0x5D, !isArray || peek(1) == 0x5D else {
            throw fail("expected '\(isArray ? "]]" : "]")' to close the table header, found \(describe(peek()))")
        }
        pos += isArray ? 2 : 1
        let name = path.joined(separator: ".")
        guard path.count < TOML.maxDepth else { throw fail("table [\(name)] is nested deeper than \(TOML.maxDepth) levels", at: start) }

        var parent = root
        for k in path.dropLast() {
            switch parent.entries[k] {
            case nil:
                let t = TableBox(depth: parent.depth + 1)
                parent.insert(k, .table(t))
                parent = t
            case let .table(t):
                guard !t.frozen else { throw fail("'\(k)' in [\(name)] is an inline table, which cannot be extended", at: start) }
                parent = t
            case let .tables(a):
                guard let last = a.items.last else { throw fail("'\(k)' in [\(name)] is an empty array of tables", at: start) }
                parent = last
            case .value:
                throw fail("'\(k)' in [\(name)] is a value, not a table", at: start)
            }
        }
        let last = path[path.count - 1]
        let table = TableBox(depth: parent.depth + 1)
        table.explicit = true
        switch (parent.entries[last], isArray) {
        case (nil, false):
            parent.insert(last, .table(table))
        case (nil, true):
            let a = TableArrayBox()
            a.items.append(table)
            parent.insert(last, .tables(a))
        case let (.table(t), false):
            guard !t.explicit, !t.frozen else { throw fail("table [\(name)] is defined twice", at: start) }
            t.explicit = true
            try endOfLine("a table header")
            return t
        case let (.tables(a), true):
            a.items.append(table)
        case (.table, true):
            throw fail("[[\(name)]] names a table, not an array of tables", at: start)
        case (.tables, false):
            throw fail("[\(name)] names an array of tables; use [[\(name)]]", at: start)
        case (.value, _):
            throw fail("[\(isArray ? "[" : "")\(name)\(isArray ? "]" : "")] names a key that already has a value", at: start)
        }
        try endOfLine("a table header")
        return table
    }

    // MARK: Keys

    /// A dotted key: one or more simple keys joined by `.` (blanks allowed around the dots).
    mutating func key() throws(TOMLError) -> [String] {
        var parts = [try simpleKey()]
        while true {
            let save = pos
            skipBlanks()
            guard peek() == 0x2E else { pos = save; return parts }
            pos += 1
            skipBlanks()
            parts.append(try simpleKey())
            guard parts.count <= TOML.maxDepth else { throw fail("a key with more than \(TOML.maxDepth) parts") }
        }
    }

    mutating func simpleKey() throws(TOMLError) -> String {
        switch peek() {
        case 0x22:
            if peek(1) == 0x22, peek(2) == 0x22 { throw fail("a key cannot be a multi-line string") }
            return try basicString()
        case 0x27:
            if peek(1) == 0x27, peek(2) == 0x27 { throw fail("a key cannot be a multi-line string") }
            return try literalString()
        case let c? where Self.isBareKey(c):
            let start = pos
            while let c = peek(), Self.isBareKey(c) { pos += 1 }
            return String(decoding: b[start ..< pos], as: UTF8.self)
        case let c:
            throw fail("expected a key, found \(describe(c))")
        }
    }

    /// `key = value` into `table` (the section's table or an inline table being read).
    mutating func keyValue(into table: TableBox) throws(TOMLError) {
        let start = pos
        let path = try key()
        skipBlanks()
        guard peek() == 0x3D else { throw fail("expected '=' after the key '\(path.joined(separator: "."))', found \(describe(peek()))") }
        pos += 1
        skipBlanks()
        let name = path.joined(separator: ".")
        var parent = table
        for k in path.dropLast() {
            switch parent.entries[k] {
            case nil:
                guard parent.depth + 1 < TOML.maxDepth else { throw fail("the key '\(name)' is nested deeper than \(TOML.maxDepth) levels", at: start) }
                let t = TableBox(depth: parent.depth + 1)
                parent.insert(k, .table(t))
                pending.append(t)
                parent = t
            case let .table(t):
                guard !t.frozen else { throw fail("'\(k)' in '\(name)' is an inline table, which cannot be extended", at: start) }
                guard !t.explicit else { throw fail("'\(k)' in '\(name)' is a table defined elsewhere, which a dotted key cannot extend", at: start) }
                pending.append(t)
                parent = t
            case .tables:
                throw fail("'\(k)' in '\(name)' is an array of tables, which a dotted key cannot extend", at: start)
            case .value:
                throw fail("'\(k)' in '\(name)' already has a value, which is not a table", at: start)
            }
        }
        let last = path[path.count - 1]
        guard parent.entries[last] == nil else { throw fail("the key '\(name)' is defined twice", at: start) }
        let v = try value(depth: parent.depth + 1)
        parent.insert(last, v)
    }

    // MARK: Values

    mutating func value(depth: Int) throws(TOMLError) -> Entry {
        guard depth < TOML.maxDepth else { throw fail("values nested deeper than \(TOML.maxDepth) levels") }
        switch peek() {
        case 0x22:
            if peek(1) == 0x22, peek(2) == 0x22 { return .value(.string(try multilineString(quote: 0x22))) }
            return .value(.string(try basicString()))
        case 0x27:
            if peek(1) == 0x27, peek(2) == 0x27 { return .value(.string(try multilineString(quote: 0x27))) }
            return .value(.string(try literalString()))
        case 0x5B:
            return .value(.array(try array(depth: depth)))
        case 0x7B:
            return .table(try inlineTable(depth: depth))
        case nil, 0x0A, 0x0D, 0x23:
            throw fail("expected a value, found \(describe(peek()))")
        default:
            return .value(try scalar())
        }
    }

    mutating func array(depth: Int) throws(TOMLError) -> [TOMLValue] {
        let start = pos
        pos += 1
        var items: [TOMLValue] = []
        while true {
            try skipBlankLines()
            if peek() == 0x5D { pos += 1; return items }
            guard !atEnd else { throw fail("the array that starts here is not closed with ']'", at: start) }
            switch try value(depth: depth + 1) {
            case let .value(v): items.append(v)
            case let .table(t): items.append(.table(t.value()))
            case .tables: throw fail("an array of tables inside an array")
            }
            try skipBlankLines()
            if peek() == 0x2C { pos += 1; continue }
            if peek() == 0x5D { pos += 1; return items }
            throw fail("expected ',' or ']' in the array, found \(describe(peek()))")
        }
    }

    mutating func inlineTable(depth: Int) throws(TOMLError) -> TableBox {
        pos += 1
        let table = TableBox(depth: depth)
        let outerPending = pending
        pending = []
        defer { pending = outerPending }
        skipBlanks()
        if peek() == 0x7D { pos += 1; table.freeze(); return table }
        while true {
            skipBlanks()
            try keyValue(into: table)
            skipBlanks()
            if peek() == 0x2C {
                pos += 1
                skipBlanks()
                if peek() == 0x7D { throw fail("a trailing comma is not allowed in an inline table") }
                continue
            }
            if peek() == 0x7D { pos += 1; table.freeze(); return table }
            throw fail("expected ',' or '}' in the inline table, found \(describe(peek()))")
        }
    }

    /// Booleans and numbers: the bare token up to the next delimiter, then checked in full.
    mutating func scalar() throws(TOMLError) -> TOMLValue {
        let start = pos
        while let c = peek(), Self.isBareKey(c) || c == 0x2B || c == 0x2E || c == 0x3A { pos += 1 }
        let token = Array(b[start ..< pos])
        guard !token.isEmpty else { throw fail("expected a value, found \(describe(peek()))") }
        let text = String(decoding: token, as: UTF8.self)
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if looksLikeDateOrTime(token) {
            throw fail("'\(text)' is a date or time, which no setting takes", at: start)
        }
        if let v = Self.integer(token) { return .integer(v) }
        if let v = Self.float(token) { return .float(v) }
        if Self.integerShaped(token) { throw fail("the integer \(text) does not fit in 64 bits", at: start) }
        throw fail("'\(text)' is not a valid value (strings need quotes)", at: start)
    }

    func looksLikeDateOrTime(_ t: [UInt8]) -> Bool {
        func digits(_ r: Range<Int>) -> Bool { r.upperBound <= t.count && t[r].allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        return (digits(0 ..< 4) && t.count > 4 && t[4] == 0x2D) || (digits(0 ..< 2) && t.count > 2 && t[2] == 0x3A)
    }

    /// Digits with single underscores between them; `digit` says which characters are digits.
    static func digitRun(_ t: ArraySlice<UInt8>, _ digit: (UInt8) -> Bool) -> Bool {
        guard let f = t.first, let l = t.last, digit(f), digit(l) else { return false }
        var previousUnderscore = false
        for c in t {
            if c == 0x5F {
                if previousUnderscore { return false }
                previousUnderscore = true
            } else {
                guard digit(c) else { return false }
                previousUnderscore = false
            }
        }
        return true
    }

    static func isDecimal(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// `[+-]?(0|[1-9](_?[0-9])*)`, or 0x / 0o / 0b without a sign.
    static func integerShaped(_ t: [UInt8]) -> Bool {
        if t.count > 2, t[0] == 0x30, [0x78, 0x6F, 0x62].contains(t[1]) {
            let d = digitPredicate(radix(t[1]))
            return digitRun(t[2...], d)
        }
        var body = t[...]
        if let f = body.first, f == 0x2B || f == 0x2D { body = body.dropFirst() }
        guard digitRun(body, isDecimal) else { return false }
        return body.count == 1 || body.first != 0x30
    }

    static func radix(_ c: UInt8) -> Int { c == 0x78 ? 16 : c == 0x6F ? 8 : 2 }

    static func digitPredicate(_ radix: Int) -> (UInt8) -> Bool {
        switch radix {
        case 16: { isDecimal($0) || ($0 >= 0x41 && $0 <= 0x46) || ($0 >= 0x61 && $0 <= 0x66) }
        case 8: { $0 >= 0x30 && $0 <= 0x37 }
        default: { $0 == 0x30 || $0 == 0x31 }
        }
    }

    static func integer(_ t: [UInt8]) -> Int? {
        guard integerShaped(t) else { return nil }
        var radix = 10
        var body = t[...]
        var negative = false
        if t.count > 2, t[0] == 0x30, [0x78, 0x6F, 0x62].contains(t[1]) {
            radix = Self.radix(t[1])
            body = t[2...]
        } else if let f = body.first, f == 0x2B || f == 0x2D {
            negative = f == 0x2D
            body = body.dropFirst()
        }
        var magnitude: UInt64 = 0
        for c in body where c != 0x5F {
            let d: UInt64 = isDecimal(c) ? UInt64(c - 0x30) : UInt64((c | 0x20) - 0x61 + 10)
            let (m, o1) = magnitude.multipliedReportingOverflow(by: UInt64(radix))
            let (s, o2) = m.addingReportingOverflow(d)
            guard !o1, !o2 else { return nil }
            magnitude = s
        }
        if negative {
            guard magnitude <= UInt64(Int.max) + 1 else { return nil }
            return magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
        }
        guard magnitude <= UInt64(Int.max) else { return nil }
        return Int(magnitude)
    }

    /// `[+-]?(inf|nan)`, or an integer part with a fraction and/or an exponent.
    static func float(_ t: [UInt8]) -> Double? {
        var body = t[...]
        var sign = ""
        if let f = body.first, f == 0x2B || f == 0x2D {
            sign = f == 0x2D ? "-" : ""
            body = body.dropFirst()
        }
        if body.elementsEqual("inf".utf8) { return sign == "-" ? -.infinity : .infinity }
        if body.elementsEqual("nan".utf8) { return .nan }
        let exponentAt = body.firstIndex { $0 == 0x65 || $0 == 0x45 }
        let mantissa = body[..<(exponentAt ?? body.endIndex)]
        let dot = mantissa.firstIndex(of: 0x2E)
        let intPart = mantissa[..<(dot ?? mantissa.endIndex)]
        guard digitRun(intPart, isDecimal), intPart.count == 1 || intPart.first != 0x30 else { return nil }
        if let dot {
            guard digitRun(mantissa[(dot + 1)...], isDecimal) else { return nil }
        }
        if let e = exponentAt {
            var exp = body[(e + 1)...]
            if let f = exp.first, f == 0x2B || f == 0x2D { exp = exp.dropFirst() }
            guard digitRun(exp, isDecimal) else { return nil }
        }
        guard dot != nil || exponentAt != nil else { return nil }
        return Double(sign + String(decoding: body.filter { $0 != 0x5F }, as: UTF8.self))
    }

    // MARK: Strings

    /// `"..."` with escapes, on one line.
    mutating func basicString() throws(TOMLError) -> String {
        let start = pos
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("the string that starts here is not closed", at: start) }
            switch c {
            case 0x22:
                pos += 1
                return String(decoding: out, as: UTF8.self)
            case 0x5C:
                try escape(into: &out)
            case 0x0A, 0x0D:
                throw fail("a line break in a single-line string (use \"\"\" for several lines)")
            default:
                if Self.isControl(c) { throw fail("\(describe(c)) in a string (write it as an escape)") }
                out.append(c)
                pos += 1
            }
        }
    }

    /// `'...'`: no escapes, one line.
    mutating func literalString() throws(TOMLError) -> String {
        let start = pos
        pos += 1
        let first = pos
        while true {
            guard let c = peek() else { throw fail("the string that starts here is not closed", at: start) }
            if c == 0x27 {
                pos += 1
                return String(decoding: b[first ..< pos - 1], as: UTF8.self)
            }
            if c == 0x0A || c == 0x0D { throw fail("a line break in a single-line string (use ''' for several lines)") }
            if Self.isControl(c) { throw fail("\(describe(c)) in a literal string") }
            pos += 1
        }
    }

    /// `"""..."""` (escapes) or `'''...'''` (none): a line break right after the opening quotes is
    /// dropped; in a basic one, a backslash at the end of a line drops it and the blanks and line
    /// breaks after it.
    mutating func multilineString(quote: UInt8) throws(TOMLError) -> String {
        let start = pos
        pos += 3
        _ = try newline()
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw fail("the string that starts here is not closed", at: start) }
            switch c {
            case quote:
                if try closeMultiline(quote: quote, into: &out) { return String(decoding: out, as: UTF8.self) }
            case 0x5C where quote == 0x22:
                var p = pos + 1
                while p < b.count, b[p] == 0x20 || b[p] == 0x09 { p += 1 }
                if p < b.count, b[p] == 0x0A || b[p] == 0x0D {
                    pos = p
                    while true {
                        skipBlanks()
                        guard try newline() else { break }
                    }
                } else {
                    try escape(into: &out)
                }
            case 0x0A, 0x0D:
                guard try newline() else { throw fail("a carriage return must be followed by a line feed") }
                out.append(0x0A)
            default:
                if Self.isControl(c) { throw fail("\(describe(c)) in a string (write it as an escape)") }
                out.append(c)
                pos += 1
            }
        }
    }

    /// At a run of quotes inside a multi-line string: three close it, and up to two more before
    /// them belong to the text. Fewer than three are text.
    mutating func closeMultiline(quote: UInt8, into out: inout [UInt8]) throws(TOMLError) -> Bool {
        var n = 0
        while peek(n) == quote { n += 1 }
        pos += n
        if n < 3 {
            out.append(contentsOf: repeatElement(quote, count: n))
            return false
        }
        guard n <= 5 else { throw fail("\(n) quotes in a row end a multi-line string (at most five)") }
        out.append(contentsOf: repeatElement(quote, count: n - 3))
        return true
    }

    /// At a backslash: `\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`.
    mutating func escape(into out: inout [UInt8]) throws(TOMLError) {
        let start = pos
        pos += 1
        guard let c = peek() else { throw fail("the string ends inside an escape") }
        pos += 1
        switch c {
        case 0x62: out.append(0x08)
        case 0x74: out.append(0x09)
        case 0x6E: out.append(0x0A)
        case 0x66: out.append(0x0C)
        case 0x72: out.append(0x0D)
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x75, 0x55:
            let n = c == 0x75 ? 4 : 8
            var v: UInt32 = 0
            for _ in 0 ..< n {
                guard let h = peek(), Self.digitPredicate(16)(h) else {
                    throw fail("\\\(c == 0x75 ? "u" : "U") takes \(n) hexadecimal digits", at: start)
                }
                v = v << 4 | UInt32(Self.isDecimal(h) ? h - 0x30 : (h | 0x20) - 0x61 + 10)
                pos += 1
            }
            guard let scalar = Unicode.Scalar(v) else {
                throw fail("\\\(c == 0x75 ? "u" : "U")\(String(v, radix: 16, uppercase: true)) is not a Unicode scalar value", at: start)
            }
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            if c >= 0x21, c < 0x7F { throw fail("\\\(Character(Unicode.Scalar(c))) is not a TOML escape", at: start) }
            throw fail("a backslash followed by \(describe(c)) is not a TOML escape", at: start)
        }
    }
}
