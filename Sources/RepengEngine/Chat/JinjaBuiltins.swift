// Global functions and Python methods available to chat templates.
// Follows transformers 5.24 chat_template_utils.py (range, dict, namespace, raise_exception, strftime_now), Jinja2 3.1 sandbox docs.
import Foundation

enum JinjaBuiltins {
    /// Every filter name Jinja 3.1's default environment knows (plus transformers' `tojson` override). Names
    /// outside this set fail when the template is parsed, as in Jinja; names inside it that this renderer does
    /// not implement fail when used.
    static let jinjaFilterNames: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "last",
        "length", "list", "lower", "items", "map", "min", "max", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
        "sum", "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap",
        "xmlattr", "tojson",
    ]

    /// Every test name Jinja 3.1's default environment knows.
    static let jinjaTestNames: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<",
        "lt", "lessthan", "<=", "le",
    ]

    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdecimal",
        "isdigit", "islower", "isnumeric", "isspace", "isupper", "join", "ljust", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip",
        "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
        "format",
        // Real Python methods this renderer does not implement; calling one is a clear error.
        "encode", "expandtabs", "format_map", "isascii", "isidentifier", "isprintable", "istitle",
        "maketrans", "translate",
    ]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values", "copy"]
    static let listMethods: Set<String> = ["index", "count", "copy"]
    static let tupleMethods: Set<String> = ["index", "count"]
    /// Methods that modify their object; transformers' ImmutableSandboxedEnvironment refuses them.
    static let mutatingDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    static let mutatingListMethods: Set<String> = ["append", "clear", "pop", "reverse", "insert", "sort", "extend",
                                                   "remove"]

    /// The bound method `value.name`, the sandbox's refusal, or nil when the type has no such method.
    static func method(on value: JinjaValue, named name: String) -> JinjaValue? {
        let typeName = value.typeName
        func unsafe() -> JinjaValue {
            .undefined(JinjaUndefinedInfo(
                name: name, owner: "\(typeName) object",
                hint: "access to attribute '\(name)' of '\(typeName)' object is unsafe.", unsafe: true))
        }
        switch value {
        case .string, .markup:
            return stringMethods.contains(name) ? .method(value, name) : nil
        case .dict:
            if dictMethods.contains(name) { return .method(value, name) }
            return mutatingDictMethods.contains(name) ? unsafe() : nil
        case .list:
            if listMethods.contains(name) { return .method(value, name) }
            return mutatingListMethods.contains(name) ? unsafe() : nil
        case .tuple:
            return tupleMethods.contains(name) ? .method(value, name) : nil
        default:
            return nil
        }
    }
}

extension JinjaRenderer {
    /// Checks call arguments against a Python signature; returns one slot per parameter.
    func bind(_ args: Arguments, _ parameters: [String], _ function: String, _ pos: Int) throws -> [JinjaValue?] {
        if args.positional.count > parameters.count {
            throw typeError(
                "\(function)() takes at most \(parameters.count) argument(s) (\(args.positional.count) given)", pos)
        }
        var slots: [JinjaValue?] = args.positional + Array(repeating: nil, count: parameters.count - args.positional.count)
        for keyword in args.keywords {
            guard let i = parameters.firstIndex(of: keyword.name) else {
                throw typeError("\(function)() got an unexpected keyword argument '\(keyword.name)'", pos)
            }
            if slots[i] != nil { throw typeError("\(function)() got multiple values for argument '\(keyword.name)'", pos) }
            slots[i] = keyword.value
        }
        return slots
    }

    func intArgument(_ value: JinjaValue?, _ what: String, _ pos: Int) throws -> Int? {
        guard let value else { return nil }
        if case .none = value { return nil }
        guard let i = value.asInt else {
            throw typeError("'\(value.typeName)' object cannot be interpreted as an integer (\(what))", pos)
        }
        return i
    }

    func stringArgument(_ value: JinjaValue?, _ what: String, _ pos: Int) throws -> String? {
        guard let value else { return nil }
        if case .none = value { return nil }
        guard let s = value.stringValue else { throw typeError("\(what) must be str, not \(value.typeName)", pos) }
        return s
    }

    // MARK: globals

    func callBuiltin(_ builtin: JinjaBuiltin, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        switch builtin {
        case .range:
            return try range(args, pos)
        case .dict:
            return .dict(try makeDict(args, "dict", pos))
        case .namespace:
            let attributes = try makeDict(args, "namespace", pos)
            for key in attributes.keys {
                if let name = key.stringValue { try checkNamespaceKey(name, pos) }
            }
            let namespace = JinjaNamespace(attributes)
            registerNamespace(namespace)
            return .namespace(namespace)
        case .raiseException:
            let slots = try bind(args, ["message"], "raise_exception", pos)
            guard let message = slots[0] else {
                throw typeError("raise_exception() missing 1 required positional argument: 'message'", pos)
            }
            throw ChatTemplateError.raised(try str(message))
        case .strftimeNow:
            let slots = try bind(args, ["format"], "strftime_now", pos)
            guard let format = try stringArgument(slots[0], "strftime_now() format", pos) else {
                throw typeError("strftime_now() missing 1 required positional argument: 'format'", pos)
            }
            return .string(try noteString(JinjaText.strftime(format, now)))
        }
    }

    private func range(_ args: Arguments, _ pos: Int) throws -> JinjaValue {
        if !args.keywords.isEmpty { throw typeError("range() takes no keyword arguments", pos) }
        var ints: [Int] = []
        for value in args.positional {
            guard let i = value.asInt else {
                throw typeError("'\(value.typeName)' object cannot be interpreted as an integer", pos)
            }
            ints.append(i)
        }
        let start: Int, stop: Int, step: Int
        switch ints.count {
        case 1: (start, stop, step) = (0, ints[0], 1)
        case 2: (start, stop, step) = (ints[0], ints[1], 1)
        case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
        default: throw typeError("range expected 1 to 3 arguments, got \(ints.count)", pos)
        }
        if step == 0 { throw typeError("range() arg 3 must not be zero", pos) }
        // Length without overflow: count in the magnitude domain.
        let count: UInt64
        if step > 0 {
            count = start >= stop ? 0 : (UInt64(bitPattern: Int64(stop &- start)) - 1) / UInt64(step) + 1
        } else {
            count = start <= stop ? 0 : (UInt64(bitPattern: Int64(start &- stop)) - 1) / step.magnitude.toUInt64 + 1
        }
        if count > UInt64(ChatTemplate.Limits.maxRange) {
            throw ChatTemplateError.limitExceeded(
                "range() of \(count) items; the limit is \(ChatTemplate.Limits.maxRange), as in Jinja's sandbox (MAX_RANGE)")
        }
        try tick(Int(count) / 16)
        var items: [JinjaValue] = []
        items.reserveCapacity(Int(count))
        var value = start
        for _ in 0..<Int(count) {
            items.append(.int(value))
            value = value &+ step
        }
        return .iterator(JinjaIterator(kind: .range, items: items, range: (start, stop, step)))
    }

    /// Python `dict(mapping_or_pairs, **kwargs)`.
    private func makeDict(_ args: Arguments, _ function: String, _ pos: Int) throws -> JinjaDict {
        if args.positional.count > 1 {
            throw typeError("\(function)() expected at most 1 positional argument, got \(args.positional.count)", pos)
        }
        var dict = JinjaDict()
        if let source = args.positional.first {
            switch source {
            case let .dict(d):
                dict = d
            case let .namespace(ns):
                dict = ns.attributes
            default:
                for (i, pair) in try iterate(source, pos: pos).enumerated() {
                    try tick()
                    let items = try iterate(pair, pos: pos)
                    guard items.count == 2 else {
                        throw typeError(
                            "dictionary update sequence element #\(i) has length \(items.count); 2 is required", pos)
                    }
                    guard let key = JinjaKey(items[0]) else {
                        throw typeError("unhashable type: '\(items[0].typeName)'", pos)
                    }
                    dict.set(key, original: items[0], items[1])
                }
            }
        }
        for keyword in args.keywords { dict.setString(keyword.name, keyword.value) }
        try checkCollectionSize(dict.count)
        try checkNesting(dict.values, pos)
        return dict
    }

    // MARK: methods

    func callMethod(_ receiver: JinjaValue, _ name: String, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        try tick()
        switch receiver {
        case let .string(s), let .markup(s):
            try tick(s.utf8.count / 64)
            return try callStringMethod(s, name, args, pos)
        case let .dict(dict):
            switch name {
            case "get":
                if !args.keywords.isEmpty { throw typeError("get() takes no keyword arguments", pos) }
                guard args.positional.count == 1 || args.positional.count == 2 else {
                    throw typeError("get expected 1 or 2 arguments, got \(args.positional.count)", pos)
                }
                guard let key = JinjaKey(args.positional[0]) else {
                    throw typeError("unhashable type: '\(args.positional[0].typeName)'", pos)
                }
                return dict.get(key) ?? (args.positional.count == 2 ? args.positional[1] : .none)
            case "items":
                try noArguments(args, name, pos)
                try tick(dict.count / 16)
                return .iterator(JinjaIterator(kind: .dictItems, items: dict.pairs.map { .tuple([$0.key, $0.value]) }))
            case "keys":
                try noArguments(args, name, pos)
                return .iterator(JinjaIterator(kind: .dictKeys, items: dict.keys))
            case "values":
                try noArguments(args, name, pos)
                return .iterator(JinjaIterator(kind: .dictValues, items: dict.values))
            default:
                try noArguments(args, name, pos)
                return receiver
            }
        case let .list(items), let .tuple(items):
            switch name {
            case "copy":
                try noArguments(args, name, pos)
                return receiver
            case "count":
                let slots = try bind(args, ["value"], name, pos)
                guard let needle = slots[0] else { throw typeError("count() takes exactly one argument (0 given)", pos) }
                var n = 0
                for item in items {
                    if try equals(item, needle) { n += 1 }
                }
                return .int(n)
            default:
                let slots = try bind(args, ["value"], name, pos)
                guard let needle = slots[0] else { throw typeError("index expected at least 1 argument, got 0", pos) }
                for (i, item) in items.enumerated() {
                    if try equals(item, needle) { return .int(i) }
                }
                throw typeError("\(try repr(needle)) is not in \(receiver.typeName)", pos)
            }
        case let .loop(loop):
            guard !args.positional.isEmpty else { throw typeError("no items for cycling given", pos) }
            return args.positional[loop.index0 % args.positional.count]
        default:
            throw typeError("'\(receiver.typeName)' object has no method '\(name)'", pos)
        }
    }

    private func noArguments(_ args: Arguments, _ name: String, _ pos: Int) throws {
        if !args.positional.isEmpty || !args.keywords.isEmpty {
            throw typeError("\(name)() takes no arguments (\(args.positional.count + args.keywords.count) given)", pos)
        }
    }

    private func callStringMethod(_ s: String, _ name: String, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        func result(_ text: String) throws -> JinjaValue { .string(try noteString(text)) }
        func stringList(_ parts: [String]) throws -> JinjaValue {
            try checkCollectionSize(parts.count)
            return .list(parts.map { .string($0) })
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let slots = try bind(args, ["chars"], name, pos)
            let chars = try stringArgument(slots[0], "\(name) arg", pos)
            return try result(JinjaText.strip(s, chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "split", "rsplit":
            let slots = try bind(args, ["sep", "maxsplit"], name, pos)
            let separator = try stringArgument(slots[0], "\(name) separator", pos)
            let maxSplit = try intArgument(slots[1], "maxsplit", pos) ?? -1
            if let separator, separator.isEmpty { throw typeError("empty separator", pos) }
            if name == "rsplit" { return try stringList(JinjaText.rsplit(s, separator: separator, maxSplit: maxSplit)) }
            if let separator { return try stringList(JinjaText.split(s, separator: separator, maxSplit: maxSplit)) }
            return try stringList(JinjaText.splitWhitespace(s, maxSplit: maxSplit))
        case "splitlines":
            let slots = try bind(args, ["keepends"], name, pos)
            return try stringList(JinjaText.splitLines(s, keepEnds: slots[0]?.truthy ?? false))
        case "startswith", "endswith":
            let slots = try bind(args, ["prefix"], name, pos)
            guard let prefix = slots[0] else { throw typeError("\(name)() takes at least 1 argument (0 given)", pos) }
            var candidates: [String] = []
            if case let .tuple(items) = prefix {
                for item in items {
                    guard let text = item.stringValue else {
                        throw typeError("tuple for \(name) must only contain str, not \(item.typeName)", pos)
                    }
                    candidates.append(text)
                }
            } else if let text = prefix.stringValue {
                candidates = [text]
            } else {
                throw typeError("\(name) first arg must be str or a tuple of str, not \(prefix.typeName)", pos)
            }
            let bytes = Array(s.utf8)
            return .bool(candidates.contains { candidate in
                let c = Array(candidate.utf8)
                guard c.count <= bytes.count else { return false }
                return name == "startswith" ? bytes.starts(with: c) : Array(bytes.suffix(c.count)) == c
            })
        case "upper": try noArguments(args, name, pos); return try result(JinjaText.upper(s))
        case "lower", "casefold": try noArguments(args, name, pos); return try result(JinjaText.lower(s))
        case "title": try noArguments(args, name, pos); return try result(JinjaText.title(s))
        case "capitalize": try noArguments(args, name, pos); return try result(JinjaText.capitalize(s))
        case "swapcase":
            try noArguments(args, name, pos)
            var out = ""
            for scalar in s.unicodeScalars {
                let p = scalar.properties
                out += p.isUppercase ? p.lowercaseMapping : p.isLowercase ? p.uppercaseMapping : String(scalar)
            }
            return try result(out)
        case "replace":
            let slots = try bind(args, ["old", "new", "count"], name, pos)
            guard let old = try stringArgument(slots[0], "replace() argument 1", pos),
                  let new = try stringArgument(slots[1], "replace() argument 2", pos)
            else { throw typeError("replace expected at least 2 arguments", pos) }
            let count = try intArgument(slots[2], "count", pos) ?? -1
            // Size the result before building it.
            let occurrences = old.isEmpty ? s.unicodeScalars.count + 1 : JinjaText.count(s, old)
            let replaced = count < 0 ? occurrences : min(occurrences, count)
            try checkStringSize(s.utf8.count + replaced * (new.utf8.count - old.utf8.count))
            return try result(JinjaText.replace(s, old, new, count: count))
        case "find", "rfind", "index", "rindex", "count":
            let slots = try bind(args, ["sub"], name, pos)
            guard let sub = try stringArgument(slots[0], "\(name)() argument", pos) else {
                throw typeError("\(name)() takes at least 1 argument (0 given)", pos)
            }
            if name == "count" { return .int(JinjaText.count(s, sub)) }
            let hay = Array(s.utf8), needle = Array(sub.utf8)
            var found: Int?
            if name.hasPrefix("r") {
                var start = 0
                while let at = JinjaText.find(needle, in: hay, from: start) {
                    found = at
                    start = at + 1
                    try tick()
                }
            } else {
                found = JinjaText.find(needle, in: hay, from: 0)
            }
            guard let byteIndex = found else {
                if name.hasSuffix("index") { throw typeError("substring not found", pos) }
                return .int(-1)
            }
            // Report a code-point index, as Python does.
            return .int(String(decoding: hay[..<byteIndex], as: UTF8.self).unicodeScalars.count)
        case "join":
            let slots = try bind(args, ["iterable"], name, pos)
            guard let iterable = slots[0] else { throw typeError("join() takes exactly one argument (0 given)", pos) }
            var parts: [String] = []
            for (i, item) in try iterate(iterable, pos: pos).enumerated() {
                guard let text = item.stringValue else {
                    throw typeError("sequence item \(i): expected str instance, \(item.typeName) found", pos)
                }
                parts.append(text)
            }
            return try result(parts.joined(separator: s))
        case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "isupper", "islower":
            try noArguments(args, name, pos)
            let scalars = Array(s.unicodeScalars)
            switch name {
            case "isdigit": return .bool(!scalars.isEmpty && scalars.allSatisfy(JinjaText.isDigit))
            case "isdecimal": return .bool(!scalars.isEmpty && scalars.allSatisfy { $0.properties.numericType == .decimal })
            case "isnumeric": return .bool(!scalars.isEmpty && scalars.allSatisfy(JinjaText.isNumeric))
            case "isalpha": return .bool(!scalars.isEmpty && scalars.allSatisfy(JinjaText.isLetter))
            case "isalnum":
                return .bool(!scalars.isEmpty && scalars.allSatisfy { JinjaText.isLetter($0) || JinjaText.isNumeric($0) })
            case "isspace": return .bool(!scalars.isEmpty && scalars.allSatisfy { JinjaUnicode.isSpace($0.value) })
            case "isupper":
                let cased = scalars.filter { $0.properties.isCased }
                return .bool(!cased.isEmpty && cased.allSatisfy { !$0.properties.isLowercase })
            default:
                let cased = scalars.filter { $0.properties.isCased }
                return .bool(!cased.isEmpty && cased.allSatisfy { !$0.properties.isUppercase })
            }
        case "removeprefix", "removesuffix":
            let slots = try bind(args, ["affix"], name, pos)
            guard let affix = try stringArgument(slots[0], "\(name)() argument", pos) else {
                throw typeError("\(name)() takes exactly one argument (0 given)", pos)
            }
            let bytes = Array(s.utf8), a = Array(affix.utf8)
            if name == "removeprefix", bytes.starts(with: a) { return .string(JinjaText.string(bytes[a.count...])) }
            if name == "removesuffix", !a.isEmpty, a.count <= bytes.count, Array(bytes.suffix(a.count)) == a {
                return .string(JinjaText.string(bytes[..<(bytes.count - a.count)]))
            }
            return .string(s)
        case "format":
            return try result(try strFormat(s, args, pos))
        case "center", "ljust", "rjust", "zfill":
            let slots = try bind(args, name == "zfill" ? ["width"] : ["width", "fillchar"], name, pos)
            guard let width = try intArgument(slots[0], "width", pos) else {
                throw typeError("\(name)() takes at least 1 argument (0 given)", pos)
            }
            let fill = try stringArgument(slots.count > 1 ? slots[1] : nil, "fillchar", pos) ?? (name == "zfill" ? "0" : " ")
            guard fill.unicodeScalars.count == 1 else {
                throw typeError("The fill character must be exactly one character long", pos)
            }
            return try result(try pad(s, width: width, fill: fill, mode: name))
        case "partition", "rpartition":
            let slots = try bind(args, ["sep"], name, pos)
            guard let sep = try stringArgument(slots[0], "\(name)() argument", pos), !sep.isEmpty else {
                throw typeError("empty separator", pos)
            }
            let parts = name == "partition" ? JinjaText.split(s, separator: sep, maxSplit: 1)
                : JinjaText.rsplit(s, separator: sep, maxSplit: 1)
            if parts.count == 2 { return .tuple([.string(parts[0]), .string(sep), .string(parts[1])]) }
            return name == "partition" ? .tuple([.string(s), .string(""), .string("")])
                : .tuple([.string(""), .string(""), .string(s)])
        default:
            throw typeError("str.\(name)() is not supported by this chat-template renderer", pos)
        }
    }

    /// `str.center` / `ljust` / `rjust` / `zfill`.
    func pad(_ s: String, width: Int, fill: String, mode: String) throws -> String {
        let length = s.unicodeScalars.count
        guard width > length else { return s }
        try checkStringSize(s.utf8.count + (width - length) * fill.utf8.count)
        let total = width - length
        switch mode {
        case "ljust": return s + String(repeating: fill, count: total)
        case "rjust": return String(repeating: fill, count: total) + s
        case "zfill":
            if let first = s.unicodeScalars.first, first == "+" || first == "-" {
                return String(first) + String(repeating: "0", count: total) + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst()))
            }
            return String(repeating: "0", count: total) + s
        default:
            // CPython: left = marg / 2 + (marg & width & 1).
            let left = total / 2 + (total & width & 1)
            return String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left)
        }
    }
}

private extension UInt {
    var toUInt64: UInt64 { UInt64(self) }
}
