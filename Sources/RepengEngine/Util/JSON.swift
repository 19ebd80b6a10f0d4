// A strict JSON reader (RFC 8259) for model files (safetensors headers, config.json, tokenizer.json), bounded for hostile input.
//
// Beyond RFC 8259 it accepts what Python's `json` module writes (`NaN`, `Infinity`, `-Infinity`),
// since Hugging Face files are written by it. Objects keep their keys in file order and report
// duplicates; lookups take the last value for a key, as Python does. Lone UTF-16 surrogates in
// `\u` escapes (which Python accepts) become U+FFFD.

/// A parsed JSON value.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits in `Int`.
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { self == .null }

    /// An integer, or a double with an integral value that fits in `Int`.
    public var int: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d.isFinite && d.rounded() == d && abs(d) < 9.0e18 ? Int(d) : nil
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// `self[key]` of an object; nil for other values and absent keys.
    public subscript(key: String) -> JSONValue? { object?[key] }

    /// A short name of the value's kind for error messages.
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON object: keys in file order, values found by key (the last one for a repeated key).
public struct JSONObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSONValue] = []
    private var index: [String: Int] = [:]
    /// The first key that occurs more than once, if any.
    public private(set) var firstDuplicateKey: String?

    public init() {}

    mutating func append(_ key: String, _ value: JSONValue) {
        if index[key] != nil, firstDuplicateKey == nil { firstDuplicateKey = key }
        index[key] = values.count
        keys.append(key)
        values.append(value)
    }

    public subscript(key: String) -> JSONValue? { index[key].map { values[$0] } }

    public var count: Int { keys.count }

    /// Pairs in file order.
    public var pairs: Zip2Sequence<[String], [JSONValue]> { zip(keys, values) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool { a.keys == b.keys && a.values == b.values }
}

/// Why a JSON text was refused, with the byte offset.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int

    public var description: String { "\(message) at byte \(offset)" }
}

/// Parses JSON text.
public enum JSONReader {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 128

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var p = JSONParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.error("unexpected text after the JSON value") }
        return v
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        do {
            return try bytes.withUnsafeBytes { b throws(JSONError) in try parse(b) }
        } catch let e as JSONError {
            throw e
        } catch {
            throw JSONError(message: "\(error)", offset: 0)
        }
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue { try parse(Array(text.utf8)) }
}

private struct JSONParser {
    let b: UnsafeRawBufferPointer
    var i = 0

    init(bytes: UnsafeRawBufferPointer) { b = bytes }

    func error(_ m: String) -> JSONError { JSONError(message: m, offset: i) }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { return false }
        i += n
        return true
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard i < b.count else { throw error("unexpected end of JSON") }
        switch b[i] {
        case UInt8(ascii: "{"):
            guard depth < JSONReader.maxDepth else { throw error("JSON nested deeper than \(JSONReader.maxDepth)") }
            i += 1
            var o = JSONObject()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
                i += 1
                skipSpace()
                o.append(key, try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw error("unexpected end of JSON in an object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw error("expected ',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            guard depth < JSONReader.maxDepth else { throw error("JSON nested deeper than \(JSONReader.maxDepth)") }
            i += 1
            var a: [JSONValue] = []
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipSpace()
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw error("unexpected end of JSON in an array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw error("expected ',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            if literal("true") { return .bool(true) }
        case UInt8(ascii: "f"):
            if literal("false") { return .bool(false) }
        case UInt8(ascii: "n"):
            if literal("null") { return .null }
        case UInt8(ascii: "N"):
            if literal("NaN") { return .double(.nan) }
        case UInt8(ascii: "I"):
            if literal("Infinity") { return .double(.infinity) }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            break
        }
        throw error("unexpected character \(Self.show(b[i]))")
    }

    static func show(_ c: UInt8) -> String {
        (0x21..<0x7F).contains(c) ? "'\(Character(UnicodeScalar(c)))'" : "0x" + String(c, radix: 16)
    }

    mutating func number() throws(JSONError) -> JSONValue {
        let start = i
        if b[i] == UInt8(ascii: "-") {
            i += 1
            if literal("Infinity") { return .double(-.infinity) }
        }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.b.count, p.b[p.i] >= 0x30, p.b[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        let intStart = i
        let n = digits(&self)
        guard n > 0 else { throw error("expected digits") }
        guard !(n > 1 && b[intStart] == UInt8(ascii: "0")) else { throw JSONError(message: "a number with a leading zero", offset: intStart) }
        var integral = true
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            integral = false
            guard digits(&self) > 0 else { throw error("expected digits after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            integral = false
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw error("expected digits in an exponent") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
        if integral, let v = Int(text) { return .int(v) }
        guard let d = Double(text) else { throw JSONError(message: "bad number", offset: start) }
        return .double(d)
    }

    /// A string starting at the opening quote.
    mutating func string() throws(JSONError) -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
        guard i < b.count else { throw JSONError(message: "unterminated string", offset: start - 1) }
        if b[i] == UInt8(ascii: "\"") {
            let raw = UnsafeRawBufferPointer(rebasing: b[start..<i])
            guard let s = String(validating: raw, as: UTF8.self) else { throw JSONError(message: "invalid UTF-8 in a string", offset: start) }
            i += 1
            return s
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: b[start..<i]))
        while true {
            guard i < b.count else { throw JSONError(message: "unterminated string", offset: start - 1) }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            guard c >= 0x20 else { throw error("control character \(Self.show(c)) in a string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw error("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate: a low one must follow for a valid pair.
                    let save = i
                    if i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            i = save
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(scalar) {
                    scalar = 0xFFFD
                }
                out.append(contentsOf: String(Character(UnicodeScalar(scalar) ?? "\u{FFFD}")).utf8)
            default:
                throw JSONError(message: "unknown escape \\\(Character(UnicodeScalar(e)))", offset: i - 2)
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw JSONError(message: "invalid UTF-8 in a string", offset: start) }
        return s
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw error("bad hex digit in a \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }
}
