// Runtime values of the chat-template renderer: the Python objects templates see, and Python's text for scalars.
// Follows the Jinja2 3.1 Template Designer Documentation (Undefined, literals) and the Python 3.11 language reference.
import Foundation

/// Why a value is undefined; only read when an error message is needed.
final class JinjaUndefinedInfo {
    /// The variable, attribute or item that was missing.
    let name: String?
    /// Python's description of the object it was looked up on (`dict object`), if any.
    let owner: String?
    /// True for `x.name` / string keys, false for `x[3]`-style element access.
    let isAttribute: Bool
    /// A full message that replaces the generic one (sandbox refusals, empty `first`, …).
    let hint: String?
    /// Set when Jinja's sandbox refused the attribute: calling it is an error, not an undefined call.
    let unsafe: Bool

    init(name: String?, owner: String? = nil, isAttribute: Bool = true, hint: String? = nil, unsafe: Bool = false) {
        self.name = name
        self.owner = owner
        self.isAttribute = isAttribute
        self.hint = hint
        self.unsafe = unsafe
    }

    /// Jinja's `Undefined._undefined_message`.
    var message: String {
        if let hint { return hint }
        guard let name else { return "value is undefined" }
        guard let owner else { return "'\(name)' is undefined" }
        return isAttribute ? "'\(owner)' has no attribute '\(name)'" : "'\(owner)' has no element \(name)"
    }
}

/// A template namespace (`namespace(...)`): the one mutable object templates share by reference.
final class JinjaNamespace {
    var attributes: JinjaDict
    init(_ attributes: JinjaDict) { self.attributes = attributes }
}

/// A macro bound to the scope it was defined in (its closure).
final class JinjaMacroValue {
    let macro: JinjaMacro
    /// Cleared when the render ends, breaking the macro ↔ scope reference cycle.
    var closure: JinjaScope?
    init(_ macro: JinjaMacro, closure: JinjaScope) {
        self.macro = macro
        self.closure = closure
    }
}

/// The `loop` variable of one iteration.
struct JinjaLoop {
    let items: [JinjaValue]
    let index0: Int
}

/// Python's lazy sequences that filters and dict methods return: generators (`select`, `map`, `unique`,
/// `items`), reverse iterators, dict views and `range`. They behave differently from lists: a generator is
/// always truthy and has no `len()`, none of them is JSON serializable, and they print differently.
/// Materialized here (single-use consumption is not modelled).
struct JinjaIterator {
    enum Kind: String {
        case generator
        case reverseIterator = "list_reverseiterator"
        case dictKeys = "dict_keys", dictValues = "dict_values", dictItems = "dict_items"
        case range
    }

    let kind: Kind
    let items: [JinjaValue]
    /// A range's parameters, for printing and slicing.
    var range: (start: Int, stop: Int, step: Int)?
    /// A generator's work runs when it is iterated: an error it met is raised then, not where it was made.
    var failure: ChatTemplateError?

    /// Views and ranges have a length (and are truthy by it); generators and iterators do not.
    var hasLength: Bool {
        switch kind {
        case .generator, .reverseIterator: return false
        case .dictKeys, .dictValues, .dictItems, .range: return true
        }
    }
}

/// Global functions transformers' environment provides.
enum JinjaBuiltin: String {
    case range, dict, namespace
    case raiseException = "raise_exception"
    case strftimeNow = "strftime_now"
}

enum JinjaValue {
    case undefined(JinjaUndefinedInfo?)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// markupsafe's `Markup` (from `safe`/`escape`): `+` with a plain string escapes the plain side.
    case markup(String)
    case list([JinjaValue])
    case tuple([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case macro(JinjaMacroValue)
    case builtin(JinjaBuiltin)
    /// A method looked up on a value (`'x'.strip`, `d.items`), called later.
    indirect case method(JinjaValue, String)
    case loop(JinjaLoop)
    indirect case iterator(JinjaIterator)

    init(_ value: TemplateValue) {
        switch value {
        case .none: self = .none
        case .undefined: self = .undefined(nil)
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d): self = .double(d)
        case let .string(s): self = .string(s)
        case let .array(items): self = .list(items.map(JinjaValue.init))
        case let .object(pairs):
            var dict = JinjaDict()
            for (key, item) in pairs { dict.setString(key, JinjaValue(item)) }
            self = .dict(dict)
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// The string of a `str` or `Markup`.
    var stringValue: String? {
        switch self {
        case let .string(s), let .markup(s): return s
        default: return nil
        }
    }

    /// Python truthiness (`bool(x)`); Jinja's Undefined is falsy.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s), let .markup(s): return !s.isEmpty
        case let .list(items), let .tuple(items): return !items.isEmpty
        case let .dict(d): return d.count > 0
        case .namespace, .macro, .builtin, .method, .loop: return true
        case let .iterator(it): return it.hasLength ? !it.items.isEmpty : true
        }
    }

    /// Python's `type(x).__name__`.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .builtin: return "builtin_function_or_method"
        case .method: return "builtin_function_or_method"
        case .loop: return "LoopContext"
        case let .iterator(it): return it.kind.rawValue
        }
    }

    /// Jinja's `object_type_repr`, used in undefined-attribute messages.
    var ownerDescription: String {
        if case .none = self { return "None" }
        return "\(typeName) object"
    }

    /// Numbers as Python sees them in arithmetic (bool is an int).
    var asInt: Int? {
        switch self {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    var isNumber: Bool {
        switch self {
        case .int, .bool, .double: return true
        default: return false
        }
    }

    var asDouble: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .bool(b): return b ? 1 : 0
        case let .double(d): return d
        default: return nil
        }
    }
}

/// A dict key: the hashable Python values, with Python's equalities (`1 == 1.0 == True`).
enum JinjaKey: Hashable {
    case none
    case int(Int)
    case double(Double)
    case string(String)
    case tuple([JinjaKey])

    /// nil for unhashable values (list, dict, …), as Python raises `TypeError: unhashable type`.
    init?(_ value: JinjaValue) {
        switch value {
        case .none: self = .none
        case let .bool(b): self = .int(b ? 1 : 0)
        case let .int(i): self = .int(i)
        case let .double(d):
            if d.rounded() == d, abs(d) < 9.2e18 { self = .int(Int(d)) } else { self = .double(d) }
        case let .string(s), let .markup(s): self = .string(s)
        case let .tuple(items):
            var keys: [JinjaKey] = []
            for item in items {
                guard let key = JinjaKey(item) else { return nil }
                keys.append(key)
            }
            self = .tuple(keys)
        default: return nil
        }
    }
}

/// An insertion-ordered dict, like Python's.
struct JinjaDict {
    private(set) var keys: [JinjaValue] = []
    private(set) var values: [JinjaValue] = []
    private var index: [JinjaKey: Int] = [:]

    var count: Int { keys.count }

    func get(_ key: JinjaKey) -> JinjaValue? {
        guard let i = index[key] else { return nil }
        return values[i]
    }

    func getString(_ key: String) -> JinjaValue? { get(.string(key)) }

    /// Python keeps the first key object and replaces the value (`{1: 'a', True: 'b'}` is `{1: 'b'}`).
    mutating func set(_ key: JinjaKey, original: JinjaValue, _ value: JinjaValue) {
        if let i = index[key] {
            values[i] = value
        } else {
            index[key] = keys.count
            keys.append(original)
            values.append(value)
        }
    }

    mutating func setString(_ key: String, _ value: JinjaValue) {
        set(.string(key), original: .string(key), value)
    }

    var pairs: [(key: JinjaValue, value: JinjaValue)] {
        Array(zip(keys, values)).map { (key: $0.0, value: $0.1) }
    }
}

/// Python text conventions for scalars.
enum JinjaFormat {
    /// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
    static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also shortest round-trip; only the layout differs from Python's.
        var text = "\(d)"
        var negative = false
        if text.hasPrefix("-") {
            negative = true
            text.removeFirst()
        }
        var mantissa = text
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(text[..<e])
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits = ""
        var pointPosition = mantissa.count
        if let dot = mantissa.firstIndex(of: ".") {
            pointPosition = mantissa.distance(from: mantissa.startIndex, to: dot)
            digits = mantissa.replacingOccurrences(of: ".", with: "")
        } else {
            digits = mantissa
        }
        // value = 0.digits × 10^decpt after removing leading zeros.
        var decpt = pointPosition + exponent
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            decpt -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        var out = negative ? "-" : ""
        if decpt > -4 && decpt <= 16 {
            if decpt <= 0 {
                out += "0." + String(repeating: "0", count: -decpt) + digits
            } else if decpt >= digits.count {
                out += digits + String(repeating: "0", count: decpt - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: decpt)
                out += digits[..<i] + "." + digits[i...]
            }
        } else {
            out += String(digits.prefix(1))
            if digits.count > 1 { out += "." + digits.dropFirst() }
            let e = decpt - 1
            out += (e < 0 ? "e-" : "e+") + (abs(e) < 10 ? "0" : "") + String(abs(e))
        }
        return out
    }

    /// Python's `str.isprintable()` for one character.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
    static func stringRepr(_ s: String) -> String {
        let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote {
                    out += "\\" + String(quote)
                } else if scalar.value < 0x20 || scalar.value == 0x7F || (scalar.value >= 0x80 && !isPrintable(scalar)) {
                    let hex = String(scalar.value, radix: 16)
                    if scalar.value < 0x100 {
                        out += "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                    } else if scalar.value < 0x10000 {
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out += "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// markupsafe's `escape`: `& < > " '` as `&amp; &lt; &gt; &#34; &#39;`.
    static func htmlEscape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
