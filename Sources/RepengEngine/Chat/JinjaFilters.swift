// Jinja filters and tests used by chat templates.
// Follows the Jinja2 3.1 Template Designer Documentation (List of Builtin Filters, List of Builtin Tests), transformers 5.24 tojson.
import Foundation

extension JinjaRenderer {
    func applyFilter(_ call: JinjaFilterCall, to value: JinjaValue, _ scope: JinjaScope) throws -> JinjaValue {
        let args = try evalArguments(call.arguments, scope, call.pos)
        return try callFilter(call.name, value, args, call.pos)
    }

    private func unknownFilter(_ name: String, _ pos: Int) -> ChatTemplateError {
        let (line, column) = location(pos)
        return .unknownFilter(name: name, line: line, column: column)
    }

    /// Jinja's `make_attrgetter`: `"a.b.0"` looks up `a`, then `b`, then item 0.
    private func attributeGetter(_ attribute: JinjaValue?, _ pos: Int) -> (JinjaValue) throws -> JinjaValue {
        guard let attribute else { return { $0 } }
        var parts: [JinjaValue] = []
        if let path = attribute.stringValue {
            for part in path.split(separator: ".", omittingEmptySubsequences: false) {
                if let i = Int(part), part.allSatisfy({ $0.isASCII && $0.isNumber }) { parts.append(.int(i)) } else {
                    parts.append(.string(String(part)))
                }
            }
        } else if case .none = attribute {
            return { $0 }
        } else {
            parts = [attribute]
        }
        return { item in
            var current = item
            for part in parts { current = try self.getitem(current, part, pos) }
            return current
        }
    }

    /// Jinja's `ignore_case` (sort keys, unique, min/max): strings compare lower-cased unless case-sensitive.
    private func caseKey(_ value: JinjaValue, _ caseSensitive: Bool) -> JinjaValue {
        if !caseSensitive, let s = value.stringValue { return .string(s.lowercased()) }
        return value
    }

    private func stableSort(_ items: [JinjaValue], keys: [JinjaValue], reverse: Bool, _ pos: Int) throws -> [JinjaValue] {
        try tick(items.count)
        var order = Array(items.indices)
        // Python's sort is stable, also with reverse=True.
        try order.sort { i, j in
            if reverse {
                if try less(keys[j], keys[i], pos) { return true }
                if try less(keys[i], keys[j], pos) { return false }
            } else {
                if try less(keys[i], keys[j], pos) { return true }
                if try less(keys[j], keys[i], pos) { return false }
            }
            return i < j
        }
        return order.map { items[$0] }
    }

    func callFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        try tick()
        switch name {
        case "trim":
            let slots = try bind(args, ["chars"], name, pos)
            let chars = try stringArgument(slots[0], "trim chars", pos)
            return keepingMarkup(value, JinjaText.strip(try str(value), chars, leading: true, trailing: true))
        case "upper":
            _ = try bind(args, [], name, pos)
            return keepingMarkup(value, try noteString(JinjaText.upper(try str(value))))
        case "lower":
            _ = try bind(args, [], name, pos)
            return keepingMarkup(value, try noteString(JinjaText.lower(try str(value))))
        case "capitalize":
            _ = try bind(args, [], name, pos)
            return keepingMarkup(value, try noteString(JinjaText.capitalize(try str(value))))
        case "title":
            _ = try bind(args, [], name, pos)
            return .string(try noteString(JinjaText.jinjaTitle(try str(value))))
        case "replace":
            let slots = try bind(args, ["old", "new", "count"], name, pos)
            guard let old = slots[0], let new = slots[1] else {
                throw typeError("replace() missing required arguments 'old' and 'new'", pos)
            }
            let count = try intArgument(slots[2], "count", pos) ?? -1
            return try callMethod(.string(try str(value)), "replace",
                                  Arguments(positional: [.string(try str(old)), .string(try str(new)), .int(count)]), pos)
        case "length", "count":
            _ = try bind(args, [], name, pos)
            switch value {
            case let .string(s), let .markup(s): return .int(s.unicodeScalars.count)
            case let .list(items), let .tuple(items): return .int(items.count)
            case let .dict(dict): return .int(dict.count)
            case .undefined: return .int(0)
            case let .iterator(it) where it.hasLength: return .int(it.items.count)
            default: throw typeError("object of type '\(value.typeName)' has no len()", pos)
            }
        case "list":
            _ = try bind(args, [], name, pos)
            return .list(try iterate(value, pos: pos))
        case "first":
            _ = try bind(args, [], name, pos)
            return try iterate(value, pos: pos).first
                ?? .undefined(JinjaUndefinedInfo(name: nil, hint: "No first item, sequence was empty."))
        case "last":
            _ = try bind(args, [], name, pos)
            var reversible = false
            switch value {
            case .list, .tuple, .string, .markup, .dict, .undefined: reversible = true
            case let .iterator(it): reversible = it.hasLength
            default: break
            }
            guard reversible else { throw typeError("'\(value.typeName)' object is not reversible", pos) }
            return try iterate(value, pos: pos).last
                ?? .undefined(JinjaUndefinedInfo(name: nil, hint: "No last item, sequence was empty."))
        case "join":
            let slots = try bind(args, ["d", "attribute"], name, pos)
            let separator = try slots[0].map { try str($0) } ?? ""
            let getter = attributeGetter(slots[1], pos)
            var parts: [String] = []
            var size = 0
            for item in try iterate(value, pos: pos) {
                try tick()
                let text = try str(try getter(item))
                size += text.utf8.count + separator.utf8.count
                try checkStringSize(size)
                parts.append(text)
            }
            return .string(try noteString(parts.joined(separator: separator)))
        case "default", "d":
            let slots = try bind(args, ["default_value", "boolean"], name, pos)
            if value.isUndefined || ((slots[1]?.truthy ?? false) && !value.truthy) {
                return slots[0] ?? .string("")
            }
            return value
        case "string":
            _ = try bind(args, [], name, pos)
            if case .markup = value { return value }
            return .string(try str(value))
        case "int":
            let slots = try bind(args, ["default", "base"], name, pos)
            let fallback = slots[0] ?? .int(0)
            let base = try intArgument(slots[1], "base", pos) ?? 10
            return try toInt(value, base: base, pos) ?? fallback
        case "float":
            let slots = try bind(args, ["default"], name, pos)
            return try toFloat(value, pos).map { .double($0) } ?? slots[0] ?? .double(0)
        case "abs":
            _ = try bind(args, [], name, pos)
            switch value {
            case let .int(i):
                guard i != Int.min else { throw ChatTemplateError.limitExceeded("integer overflow in abs") }
                return .int(abs(i))
            case let .bool(b): return .int(b ? 1 : 0)
            case let .double(d): return .double(abs(d))
            default: throw typeError("bad operand type for abs(): '\(value.typeName)'", pos)
            }
        case "round":
            let slots = try bind(args, ["precision", "method"], name, pos)
            let precision = try intArgument(slots[0], "precision", pos) ?? 0
            let method = try stringArgument(slots[1], "method", pos) ?? "common"
            return try round(value, precision: precision, method: method, pos)
        case "safe":
            _ = try bind(args, [], name, pos)
            return .markup(try str(value))
        case "e", "escape", "forceescape":
            _ = try bind(args, [], name, pos)
            if case let .markup(s) = value, name != "forceescape" { return .markup(s) }
            return .markup(try noteString(JinjaFormat.htmlEscape(try str(value))))
        case "select", "reject", "selectattr", "rejectattr":
            return try generator { try self.selectOrReject(name, value, args, pos) }
        case "map":
            return try generator { try self.map(value, args, pos) }
        case "unique":
            return try generator { try self.unique(value, args, pos) }
        case "items":
            _ = try bind(args, [], name, pos)
            switch value {
            case .undefined: return .iterator(JinjaIterator(kind: .generator, items: []))
            case let .dict(dict):
                return .iterator(JinjaIterator(kind: .generator, items: dict.pairs.map { .tuple([$0.key, $0.value]) }))
            default:
                return .iterator(JinjaIterator(kind: .generator, items: [],
                                               failure: typeError("Can only get item pairs from a mapping.", pos)))
            }
        default:
            return try callCollectionFilter(name, value, args, pos)
        }
    }

    /// These filters call the str method on the value itself, and Markup's methods return Markup.
    private func keepingMarkup(_ original: JinjaValue, _ text: String) -> JinjaValue {
        if case .markup = original { return .markup(text) }
        return .string(text)
    }

    /// Runs a generator filter now; a Python error (not a limit) is kept for when the generator is iterated.
    private func generator(_ body: () throws -> [JinjaValue]) throws -> JinjaValue {
        do {
            return .iterator(JinjaIterator(kind: .generator, items: try body()))
        } catch let error as ChatTemplateError {
            if case .limitExceeded = error { throw error }
            return .iterator(JinjaIterator(kind: .generator, items: [], failure: error))
        }
    }

    private func unique(_ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> [JinjaValue] {
        let slots = try bind(args, ["case_sensitive", "attribute"], "unique", pos)
        let caseSensitive = slots[0]?.truthy ?? false
        let getter = attributeGetter(slots[1], pos)
        var seen = Set<JinjaKey>()
        var result: [JinjaValue] = []
        for item in try iterate(value, pos: pos) {
            try tick()
            let keyValue = caseKey(try getter(item), caseSensitive)
            guard let key = JinjaKey(keyValue) else { throw typeError("unhashable type: '\(keyValue.typeName)'", pos) }
            if seen.insert(key).inserted { result.append(item) }
        }
        return result
    }

    /// The rest of the filter table (two switches, not one: a single huge switch gets a huge stack frame).
    private func callCollectionFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        switch name {
        case "sort":
            let slots = try bind(args, ["reverse", "case_sensitive", "attribute"], name, pos)
            let items = try iterate(value, pos: pos)
            let caseSensitive = slots[1]?.truthy ?? false
            var keys: [JinjaValue] = []
            if let attribute = slots[2], let path = attribute.stringValue, path.contains(",") {
                // Several attributes: sort by the tuple of their values.
                let getters = path.split(separator: ",").map { attributeGetter(.string(String($0)), pos) }
                for item in items {
                    keys.append(.list(try getters.map { caseKey(try $0(item), caseSensitive) }))
                }
            } else {
                let getter = attributeGetter(slots[2], pos)
                for item in items { keys.append(caseKey(try getter(item), caseSensitive)) }
            }
            return .list(try stableSort(items, keys: keys, reverse: slots[0]?.truthy ?? false, pos))
        case "reverse":
            _ = try bind(args, [], name, pos)
            switch value {
            case let .string(s), let .markup(s):
                return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            case .list, .tuple, .dict, .undefined:
                return .iterator(JinjaIterator(kind: .reverseIterator, items: try iterate(value, pos: pos).reversed()))
            case let .iterator(it) where it.hasLength:
                return .iterator(JinjaIterator(kind: .reverseIterator, items: it.items.reversed()))
            case .iterator:
                // Not reversible: Jinja falls back to a reversed list (running the generator).
                return .list(try iterate(value, pos: pos).reversed())
            default:
                throw typeError("argument must be iterable", pos)
            }
        case "indent":
            let slots = try bind(args, ["width", "first", "blank"], name, pos)
            let indentation: String
            if let width = slots[0], let text = width.stringValue {
                indentation = text
            } else {
                let width = try intArgument(slots[0], "width", pos) ?? 4
                try checkStringSize(max(0, width))
                indentation = String(repeating: " ", count: max(0, width))
            }
            // Jinja's indent works on the string itself (`s += "\n"`), so non-strings are a TypeError.
            guard let text = value.stringValue else {
                throw typeError("unsupported operand type(s) for +=: '\(value.typeName)' and 'str'", pos)
            }
            let indented = try indent(text, indentation, first: slots[1]?.truthy ?? false, blank: slots[2]?.truthy ?? false)
            if case .markup = value { return .markup(try noteString(indented)) }
            return .string(try noteString(indented))
        case "wordcount":
            _ = try bind(args, [], name, pos)
            var count = 0
            var inWord = false
            for scalar in try str(value).unicodeScalars {
                let word = JinjaText.isWordCharacter(scalar)
                if word && !inWord { count += 1 }
                inWord = word
            }
            return .int(count)
        case "dictsort":
            let slots = try bind(args, ["case_sensitive", "by", "reverse"], name, pos)
            guard case let .dict(dict) = value else { throw typeError("dictsort requires a mapping", pos) }
            let by = try stringArgument(slots[1], "by", pos) ?? "key"
            guard by == "key" || by == "value" else {
                throw typeError("You can only sort by either \"key\" or \"value\"", pos)
            }
            let caseSensitive = slots[0]?.truthy ?? false
            let pairs = dict.pairs
            let keys = pairs.map { caseKey(by == "key" ? $0.key : $0.value, caseSensitive) }
            let tuples = pairs.map { JinjaValue.tuple([$0.key, $0.value]) }
            return .list(try stableSort(tuples, keys: keys, reverse: slots[2]?.truthy ?? false, pos))
        case "tojson":
            let slots = try bind(args, ["ensure_ascii", "indent", "separators", "sort_keys"], name, pos)
            var options = JSONOptions()
            options.ensureASCII = slots[0]?.truthy ?? false
            if let indent = slots[1] {
                switch indent {
                case .none: break
                case let .string(s), let .markup(s): options.indent = s
                default:
                    guard let n = indent.asInt else { throw typeError("indent must be an int or a string", pos) }
                    try checkStringSize(max(0, n))
                    options.indent = String(repeating: " ", count: max(0, n))
                }
            }
            if options.indent != nil { options.itemSeparator = "," }
            if let separators = slots[2] {
                if case .none = separators {} else {
                    let parts = try iterate(separators, pos: pos)
                    guard parts.count == 2, let item = parts[0].stringValue, let key = parts[1].stringValue else {
                        throw typeError("separators must be a pair of strings", pos)
                    }
                    options.itemSeparator = item
                    options.keySeparator = key
                }
            }
            options.sortKeys = slots[3]?.truthy ?? false
            return .string(try json(value, options, pos))
        case "min", "max":
            let slots = try bind(args, ["case_sensitive", "attribute"], name, pos)
            let items = try iterate(value, pos: pos)
            guard var best = items.first else {
                return .undefined(JinjaUndefinedInfo(name: nil, hint: "No aggregated item, sequence was empty."))
            }
            let caseSensitive = slots[0]?.truthy ?? false
            let getter = attributeGetter(slots[1], pos)
            var bestKey = caseKey(try getter(best), caseSensitive)
            for item in items.dropFirst() {
                let key = caseKey(try getter(item), caseSensitive)
                if name == "min" ? try less(key, bestKey, pos) : try less(bestKey, key, pos) {
                    best = item
                    bestKey = key
                }
            }
            return best
        case "sum":
            let slots = try bind(args, ["attribute", "start"], name, pos)
            let getter = attributeGetter(slots[0], pos)
            var total = slots[1] ?? .int(0)
            for item in try iterate(value, pos: pos) { total = try binary(.add, total, try getter(item), pos) }
            return total
        case "attr":
            let slots = try bind(args, ["name"], name, pos)
            guard let attribute = try stringArgument(slots[0], "attr name", pos) else {
                throw typeError("attr() missing 1 required positional argument: 'name'", pos)
            }
            return try getattr(value, attribute, pos)
        case "format":
            if !args.keywords.isEmpty {
                throw typeError("the format filter supports positional arguments only here", pos)
            }
            return .string(try noteString(try percentFormat(try str(value), args.positional, pos)))
        case "center":
            let slots = try bind(args, ["width"], name, pos)
            let width = try intArgument(slots[0], "width", pos) ?? 80
            return .string(try noteString(try pad(try str(value), width: width, fill: " ", mode: "center")))
        default:
            throw unknownFilter(name, pos)
        }
    }

    /// Jinja's `int` filter: `int(value)` (strings in `base`), else `int(float(value))`, else nil for the default.
    private func toInt(_ value: JinjaValue, base: Int, _ pos: Int) throws -> JinjaValue? {
        switch value {
        case let .int(i): return .int(i)
        case let .bool(b): return .int(b ? 1 : 0)
        case let .double(d):
            guard d.isFinite, abs(d) < 9.2e18 else { return nil }
            return .int(Int(d))
        case let .string(s), let .markup(s):
            var text = JinjaText.strip(s, nil, leading: true, trailing: true)
            var negative = false
            if text.hasPrefix("-") || text.hasPrefix("+") {
                negative = text.hasPrefix("-")
                text.removeFirst()
            }
            var radix = base
            let lower = text.lowercased()
            if base == 16 || base == 8 || base == 2 || base == 0 {
                for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == 0 || base == r) {
                    text = String(text.dropFirst(2))
                    radix = r
                }
            }
            if radix == 0 { radix = 10 }
            let digits = text.replacingOccurrences(of: "_", with: "")
            if (2...36).contains(radix), !digits.isEmpty, !text.hasPrefix("_"), !text.hasSuffix("_"),
               !text.contains("__"), let magnitude = Int(digits, radix: radix) {
                return .int(negative ? -magnitude : magnitude)
            }
            guard let d = try toFloat(value, pos), d.isFinite, abs(d) < 9.2e18 else { return nil }
            return .int(Int(d))
        case let .undefined(info):
            throw undefinedError(info, pos)
        default:
            return nil
        }
    }

    /// Python `float(value)`, nil where it raises TypeError/ValueError.
    private func toFloat(_ value: JinjaValue, _ pos: Int) throws -> Double? {
        switch value {
        case let .int(i): return Double(i)
        case let .bool(b): return b ? 1 : 0
        case let .double(d): return d
        case let .string(s), let .markup(s):
            let text = JinjaText.strip(s, nil, leading: true, trailing: true).lowercased()
            switch text {
            case "inf", "+inf", "infinity", "+infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            case "nan", "+nan", "-nan": return .nan
            default: break
            }
            // Python accepts single underscores between digits and nothing hexadecimal.
            guard !text.isEmpty, !text.contains("x"), !text.contains("p"), !text.contains("__"),
                  text.allSatisfy({ "0123456789.e+-_".contains($0) }) else { return nil }
            return Double(text.replacingOccurrences(of: "_", with: ""))
        case let .undefined(info):
            throw undefinedError(info, pos)
        default:
            return nil
        }
    }

    private func round(_ value: JinjaValue, precision: Int, method: String, _ pos: Int) throws -> JinjaValue {
        guard method == "common" || method == "ceil" || method == "floor" else {
            throw typeError("method must be common, ceil or floor", pos)
        }
        guard let x = value.asDouble else { throw typeError("type \(value.typeName) doesn't define __round__ method", pos) }
        let p = max(-308, min(308, precision))
        if method == "common" {
            if let i = value.asInt, p >= 0 { return .int(i) }
            if p >= 0 && p <= 20 {
                // printf rounds the exact binary value half-to-even, as Python's round() does.
                let text = String(format: "%.\(p)f", x)
                return .double(Double(text) ?? x)
            }
            let scale = Foundation.pow(10.0, Double(-p))
            if p < 0 { return .double((x / scale).rounded(.toNearestOrEven) * scale) }
            return .double(x)
        }
        let scale = Foundation.pow(10.0, Double(p))
        let scaled = x * scale
        return .double((method == "ceil" ? scaled.rounded(.up) : scaled.rounded(.down)) / scale)
    }

    private func indent(_ text: String, _ indentation: String, first: Bool, blank: Bool) throws -> String {
        let lines = JinjaText.splitLines(text + "\n")
        let (extra, overflow) = indentation.utf8.count.multipliedReportingOverflow(by: lines.count + 1)
        if overflow { throw ChatTemplateError.limitExceeded("a string longer than \(Limits.maxOutputBytes) bytes") }
        try checkStringSize(text.utf8.count + extra)
        var out: String
        if blank {
            out = lines.joined(separator: "\n" + indentation)
        } else {
            out = lines.first ?? ""
            let rest = lines.dropFirst()
            if !rest.isEmpty {
                out += "\n" + rest.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n")
            }
        }
        if first { out = indentation + out }
        return out
    }

    private func selectOrReject(_ name: String, _ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> [JinjaValue] {
        guard value.truthy else { return [] }
        let byAttribute = name.hasSuffix("attr")
        let keep = name.hasPrefix("select")
        var rest = args.positional
        var getter: (JinjaValue) throws -> JinjaValue = { $0 }
        if byAttribute {
            guard !rest.isEmpty else { throw typeError("Missing parameter for attribute name", pos) }
            getter = attributeGetter(rest.removeFirst(), pos)
        }
        var testName: String?
        if !rest.isEmpty {
            guard let test = rest.removeFirst().stringValue else { throw typeError("test name must be a string", pos) }
            testName = test
        }
        let testArgs = Arguments(positional: rest, keywords: args.keywords)
        var result: [JinjaValue] = []
        for item in try iterate(value, pos: pos) {
            try tick()
            let subject = try getter(item)
            let passed = try testName.map { try applyTest($0, subject, testArgs, pos) } ?? subject.truthy
            if passed == keep { result.append(item) }
        }
        return result
    }

    private func map(_ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> [JinjaValue] {
        guard value.truthy else { return [] }
        var transform: (JinjaValue) throws -> JinjaValue
        if args.positional.isEmpty, let attribute = args.value(Int.max, "attribute") {
            let fallback = args.value(Int.max, "default")
            if let extra = args.keywords.first(where: { $0.name != "attribute" && $0.name != "default" }) {
                throw typeError("Unexpected keyword argument '\(extra.name)'", pos)
            }
            let getter = attributeGetter(attribute, pos)
            transform = { item in
                let found = try getter(item)
                if let fallback, found.isUndefined { return fallback }
                return found
            }
        } else {
            guard let filterName = args.positional.first?.stringValue else {
                throw typeError("map requires a filter argument", pos)
            }
            let filterArgs = Arguments(positional: Array(args.positional.dropFirst()), keywords: args.keywords)
            transform = { item in try self.callFilter(filterName, item, filterArgs, pos) }
        }
        var result: [JinjaValue] = []
        for item in try iterate(value, pos: pos) {
            try tick()
            result.append(try transform(item))
        }
        return result
    }

    // MARK: tests

    func applyTest(_ name: String, _ value: JinjaValue, _ args: Arguments, _ pos: Int) throws -> Bool {
        try tick()
        func argument() throws -> JinjaValue {
            guard let first = args.positional.first ?? args.keywords.first?.value else {
                throw typeError("test '\(name)' needs an argument", pos)
            }
            return first
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.isNumber
        case "string": return value.stringValue != nil
        case "mapping": if case .dict = value { return true } else { return false }
        case "iterable":
            switch value {
            case .list, .tuple, .dict, .string, .markup, .undefined, .iterator: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .list, .tuple, .dict, .string, .markup, .undefined: return true
            case let .iterator(it): return it.kind == .range
            default: return false
            }
        case "callable":
            switch value {
            case .macro, .builtin, .method, .undefined: return true
            default: return false
            }
        case "escaped": if case .markup = value { return true } else { return false }
        case "lower", "upper":
            let text = try str(value)
            let cased = text.unicodeScalars.filter { $0.properties.isCased }
            if cased.isEmpty { return false }
            return name == "lower" ? cased.allSatisfy { !$0.properties.isUppercase }
                : cased.allSatisfy { !$0.properties.isLowercase }
        case "odd", "even":
            let remainder = try binary(.mod, value, .int(2), pos)
            return try equals(remainder, .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            return try equals(try binary(.mod, value, try argument(), pos), .int(0))
        case "sameas":
            let other = try argument()
            switch (value, other) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.int(a), .int(b)): return a == b && (-5...256).contains(a)  // CPython's cached small ints
            case let (.namespace(a), .namespace(b)): return a === b
            case let (.macro(a), .macro(b)): return a === b
            default: return false
            }
        case "in": return try contains(try argument(), value, pos)
        case "==", "eq", "equalto": return try equals(value, try argument())
        case "!=", "ne": return !(try equals(value, try argument()))
        case ">", "gt", "greaterthan": return try less(try argument(), value, pos, .gt)
        case ">=", "ge": return !(try less(value, try argument(), pos, .ge))
        case "<", "lt", "lessthan": return try less(value, try argument(), pos, .lt)
        case "<=", "le": return !(try less(try argument(), value, pos, .le))
        case "filter":
            guard let s = value.stringValue else { return false }
            return JinjaBuiltins.jinjaFilterNames.contains(s)
        case "test":
            guard let s = value.stringValue else { return false }
            return JinjaBuiltins.jinjaTestNames.contains(s)
        default:
            let (line, column) = location(pos)
            throw ChatTemplateError.unknownTest(name: name, line: line, column: column)
        }
    }
}
