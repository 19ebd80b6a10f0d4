// Jinja parser: tokens to syntax tree, plus Jinja's compile-time check of filter and test names.
// Follows the Jinja2 3.1 Template Designer Documentation (control structures, expressions, operator precedence).

struct JinjaParser {
    private let src: JinjaSource
    private var lexer: JinjaLexer
    /// The parser looks at most one token ahead.
    private var current: JinjaToken
    private var next: JinjaToken
    private var statementDepth = 0
    private var expressionNesting = 0
    private var loopDepth = 0
    private var macroUsage: [(varargs: Bool, kwargs: Bool)] = []
    private var tagStack: [String] = []
    private var endTokenStack: [[String]] = []

    private init(src: JinjaSource) throws {
        self.src = src
        lexer = JinjaLexer(source: src)
        current = try lexer.next()
        next = current.kind == .eof ? current : try lexer.next()
    }

    static func parse(source: String) throws -> JinjaProgram {
        let src = JinjaSource(source)
        var parser = try JinjaParser(src: src)
        let body = try parser.subparse(endTokens: nil)
        if parser.current.kind != .eof { throw parser.fail("unexpected '\(parser.describe(parser.current))'") }
        try JinjaValidator(source: src).check(body)
        return JinjaProgram(body: body, source: src)
    }

    // MARK: token helpers

    @discardableResult
    private mutating func advance() throws -> JinjaToken {
        let token = current
        if current.kind != .eof {
            current = next
            if next.kind != .eof { next = try lexer.next() }
        }
        return token
    }

    private func isOp(_ text: String) -> Bool { current.kind == .op && current.text == text }
    private func isName(_ text: String) -> Bool { current.kind == .name && current.text == text }

    private func fail(_ message: String, at pos: Int? = nil) -> ChatTemplateError {
        src.syntaxError(message, at: pos ?? current.pos)
    }

    private func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name, .op: return token.text
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .eof: return "end of template"
        }
    }

    private mutating func expectOp(_ text: String) throws {
        guard isOp(text) else { throw unexpected(expected: text) }
        try advance()
    }

    private mutating func expectName() throws -> JinjaToken {
        guard current.kind == .name else { throw unexpected(expected: "name") }
        return try advance()
    }

    private mutating func expectKind(_ kind: JinjaToken.Kind, _ what: String) throws {
        guard current.kind == kind else { throw unexpected(expected: what) }
        try advance()
    }

    private func unexpected(expected: String) -> ChatTemplateError {
        if current.kind == .eof { return fail("unexpected end of template, expected '\(expected)'.") }
        return fail("expected token '\(expected)', got '\(describe(current))'")
    }

    // MARK: statements

    private mutating func subparse(endTokens: [String]?) throws -> [JinjaNode] {
        var body: [JinjaNode] = []
        if let endTokens { endTokenStack.append(endTokens) }
        defer { if endTokens != nil { endTokenStack.removeLast() } }
        while true {
            let token = current
            switch token.kind {
            case .data:
                try advance()
                body.append(.text(token.text))
            case .variableBegin:
                try advance()
                let expr = try parseTuple()
                try expectKind(.variableEnd, "end of print statement")
                body.append(.output(expr))
            case .blockBegin:
                try advance()
                if let endTokens, current.kind == .name, endTokens.contains(current.text) { return body }
                let node = try parseStatement()
                try expectKind(.blockEnd, "end of statement block")
                body.append(node)
            case .eof:
                return body
            default:
                throw fail("unexpected '\(describe(token))'")
            }
        }
    }

    private mutating func parseStatements(_ endTokens: [String], dropNeedle: Bool) throws -> [JinjaNode] {
        if isOp(":") { try advance() }
        try expectKind(.blockEnd, "end of statement block")
        let body = try subparse(endTokens: endTokens)
        if current.kind == .eof { throw failEOF(endTokens) }
        if dropNeedle { try advance() }
        return body
    }

    private func lookingFor(_ stack: [[String]]) -> String {
        guard let last = stack.last else { return "" }
        return last.map { "'\($0)'" }.joined(separator: " or ")
    }

    private func failEOF(_ endTokens: [String]) -> ChatTemplateError {
        var message = "Unexpected end of template. Jinja was looking for the following tags: \(lookingFor(endTokenStack + [endTokens]))."
        if let tag = tagStack.last { message += " The innermost block that needs to be closed is '\(tag)'." }
        return fail(message)
    }

    private func failUnknownTag(_ name: String, at pos: Int) -> ChatTemplateError {
        var message = "Encountered unknown tag '\(name)'."
        let expected = Set(endTokenStack.flatMap { $0 })
        if !endTokenStack.isEmpty {
            if expected.contains(name) {
                message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for \(lookingFor(endTokenStack))."
            } else {
                message += " Jinja was looking for the following tags: \(lookingFor(endTokenStack))."
            }
        }
        if let tag = tagStack.last { message += " The innermost block that needs to be closed is '\(tag)'." }
        return fail(message, at: pos)
    }

    private mutating func parseStatement() throws -> JinjaNode {
        let token = current
        guard token.kind == .name else { throw fail("tag name expected") }
        statementDepth += 1
        defer { statementDepth -= 1 }
        if statementDepth > ChatTemplate.Limits.maxNesting {
            let (line, column) = src.location(token.pos)
            throw ChatTemplateError.limitExceeded(
                "blocks nested deeper than \(ChatTemplate.Limits.maxNesting) at \(line):\(column)")
        }
        switch token.text {
        case "for", "if", "set", "macro", "with", "filter", "generation", "print":
            tagStack.append(token.text)
            defer { tagStack.removeLast() }
            switch token.text {
            case "for": return try parseFor()
            case "if": return try parseIf()
            case "set": return try parseSet()
            case "macro": return try parseMacro()
            case "with": return try parseWith()
            case "filter": return try parseFilterBlock()
            case "generation":
                try advance()
                return .block(try parseStatements(["endgeneration"], dropNeedle: true))
            default: return try parsePrint()
            }
        case "break", "continue":
            try advance()
            guard loopDepth > 0 else { throw fail("'\(token.text)' outside loop", at: token.pos) }
            return token.text == "break" ? .loopBreak : .loopContinue
        case "block", "extends", "include", "import", "from", "call", "autoescape":
            throw fail("the '\(token.text)' tag is not supported by this chat-template renderer", at: token.pos)
        default:
            throw failUnknownTag(token.text, at: token.pos)
        }
    }

    private mutating func parseFor() throws -> JinjaNode {
        let pos = try advance().pos
        let target = try parseTargetTuple(extraEndRules: ["in"], withNamespace: false, explicitParens: false)
        guard isName("in") else { throw unexpected(expected: "in") }
        try advance()
        let iterable = try parseTuple(withCondexpr: false, extraEndRules: ["recursive"])
        var condition: JinjaExpr?
        if isName("if") {
            try advance()
            condition = try parseExpression()
        }
        if isName("recursive") { throw fail("recursive for loops are not supported by this chat-template renderer") }
        loopDepth += 1
        let body = try parseStatements(["endfor", "else"], dropNeedle: false)
        loopDepth -= 1
        var otherwise: [JinjaNode] = []
        if try advance().text != "endfor" {
            otherwise = try parseStatements(["endfor"], dropNeedle: true)
        }
        return .forLoop(JinjaForLoop(target: target, iterable: iterable, condition: condition, body: body,
                                     otherwise: otherwise, pos: pos))
    }

    private mutating func parseIf() throws -> JinjaNode {
        try advance()
        var branches: [(test: JinjaExpr, body: [JinjaNode])] = []
        var otherwise: [JinjaNode] = []
        while true {
            let test = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["elif", "else", "endif"], dropNeedle: false)
            branches.append((test, body))
            let token = try advance()
            if token.text == "elif" { continue }
            if token.text == "else" { otherwise = try parseStatements(["endif"], dropNeedle: true) }
            break
        }
        return .conditional(branches: branches, otherwise: otherwise)
    }

    private mutating func parseSet() throws -> JinjaNode {
        let pos = try advance().pos
        let target = try parseTargetTuple(extraEndRules: nil, withNamespace: true, explicitParens: false)
        if isOp("=") {
            try advance()
            return .assign(target, try parseTuple(), pos: pos)
        }
        let filters = try parseFilterCalls(startInline: false)
        let body = try parseStatements(["endset"], dropNeedle: true)
        return .assignBlock(target, filters: filters, body: body, pos: pos)
    }

    private mutating func parseMacro() throws -> JinjaNode {
        let pos = try advance().pos
        let name = try expectName().text
        try expectOp("(")
        var parameters: [String] = []
        var defaults: [JinjaExpr] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let parameter = try expectName()
            if isOp("=") {
                try advance()
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw fail("non-default argument follows default argument", at: parameter.pos)
            }
            parameters.append(parameter.text)
        }
        try expectOp(")")
        // A macro body is its own function: loop controls outside it do not apply inside.
        let savedLoopDepth = loopDepth
        loopDepth = 0
        macroUsage.append((false, false))
        let body = try parseStatements(["endmacro"], dropNeedle: true)
        let usage = macroUsage.removeLast()
        loopDepth = savedLoopDepth
        return .macro(JinjaMacro(name: name, parameters: parameters, defaults: defaults, body: body,
                                 usesVarargs: usage.varargs, usesKwargs: usage.kwargs, pos: pos))
    }

    private mutating func parseWith() throws -> JinjaNode {
        try advance()
        var assignments: [(target: JinjaTarget, value: JinjaExpr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseTargetTuple(extraEndRules: nil, withNamespace: false, explicitParens: false)
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        let body = try parseStatements(["endwith"], dropNeedle: true)
        return .with(assignments: assignments, body: body)
    }

    private mutating func parseFilterBlock() throws -> JinjaNode {
        try advance()
        let filters = try parseFilterCalls(startInline: true)
        let body = try parseStatements(["endfilter"], dropNeedle: true)
        return .filterBlock(filters: filters, body: body)
    }

    private mutating func parsePrint() throws -> JinjaNode {
        try advance()
        var nodes: [JinjaNode] = []
        while current.kind != .blockEnd {
            if !nodes.isEmpty { try expectOp(",") }
            nodes.append(.output(try parseExpression()))
        }
        return .block(nodes)
    }

    // MARK: assignment targets

    private mutating func parseTargetAtom(withNamespace: Bool) throws -> JinjaTarget {
        let token = current
        if token.kind == .name {
            if ["true", "false", "True", "False", "none", "None"].contains(token.text) {
                throw fail("can't assign to 'const'")
            }
            try advance()
            if withNamespace && isOp(".") {
                try advance()
                let attribute = try expectName()
                return .namespaceAttribute(token.text, attribute.text)
            }
            return .name(token.text)
        }
        if isOp("(") {
            try advance()
            let target = try parseTargetTuple(extraEndRules: nil, withNamespace: withNamespace, explicitParens: true)
            try expectOp(")")
            return target
        }
        throw fail("can't assign to '\(describe(token))'")
    }

    private mutating func parseTargetTuple(extraEndRules: [String]?, withNamespace: Bool,
                                           explicitParens: Bool) throws -> JinjaTarget {
        var items: [JinjaTarget] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(try parseTargetAtom(withNamespace: withNamespace))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if items.count == 1 { return items[0] }
            if !explicitParens { throw fail("Expected an expression, got '\(describe(current))'") }
        }
        return .tuple(items)
    }

    // MARK: expressions

    private mutating func nested<T>(_ body: (inout JinjaParser) throws -> T) throws -> T {
        expressionNesting += 1
        defer { expressionNesting -= 1 }
        if expressionNesting > ChatTemplate.Limits.maxNesting {
            let (line, column) = src.location(current.pos)
            throw ChatTemplateError.limitExceeded(
                "expression nested deeper than \(ChatTemplate.Limits.maxNesting) at \(line):\(column)")
        }
        return try body(&self)
    }

    private func make(_ kind: JinjaExpr.Kind, _ pos: Int, _ children: [JinjaExpr?]) throws -> JinjaExpr {
        var depth = 0
        for child in children { if let child, child.depth > depth { depth = child.depth } }
        depth += 1
        if depth > ChatTemplate.Limits.maxNesting {
            let (line, column) = src.location(pos)
            throw ChatTemplateError.limitExceeded(
                "expression nested deeper than \(ChatTemplate.Limits.maxNesting) at \(line):\(column)")
        }
        return JinjaExpr(kind: kind, pos: pos, depth: depth)
    }

    private mutating func parseExpression(withCondexpr: Bool = true) throws -> JinjaExpr {
        try nested { p in withCondexpr ? try p.parseCondexpr() : try p.parseOr() }
    }

    private mutating func parseCondexpr() throws -> JinjaExpr {
        let pos = current.pos
        var expr = try parseOr()
        while isName("if") {
            try advance()
            let test = try parseOr()
            var otherwise: JinjaExpr?
            if isName("else") {
                try advance()
                otherwise = try nested { p in try p.parseCondexpr() }
            }
            expr = try make(.conditional(test: test, then: expr, otherwise: otherwise), pos, [test, expr, otherwise])
        }
        return expr
    }

    private mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        while isName("or") {
            let pos = try advance().pos
            let right = try parseAnd()
            left = try make(.or(left, right), pos, [left, right])
        }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        while isName("and") {
            let pos = try advance().pos
            let right = try parseNot()
            left = try make(.and(left, right), pos, [left, right])
        }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpr {
        if isName("not") {
            let pos = try advance().pos
            let operand = try nested { p in try p.parseNot() }
            return try make(.not(operand), pos, [operand])
        }
        return try parseCompare()
    }

    private static let compareOps: [String: JinjaCompareOp] = [
        "==": .eq, "!=": .ne, "<": .lt, "<=": .le, ">": .gt, ">=": .ge,
    ]

    private mutating func parseCompare() throws -> JinjaExpr {
        let pos = current.pos
        let expr = try parseMath1()
        var ops: [(op: JinjaCompareOp, rhs: JinjaExpr)] = []
        while true {
            if current.kind == .op, let op = Self.compareOps[current.text] {
                try advance()
                ops.append((op, try parseMath1()))
            } else if isName("in") {
                try advance()
                ops.append((.in, try parseMath1()))
            } else if isName("not") && next.kind == .name && next.text == "in" {
                try advance()
                try advance()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        if ops.isEmpty { return expr }
        return try make(.compare(expr, ops), pos, [expr] + ops.map { $0.rhs })
    }

    private mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        while current.kind == .op && (current.text == "+" || current.text == "-") {
            let token = try advance()
            let right = try parseConcat()
            left = try make(.binary(token.text == "+" ? .add : .sub, left, right), token.pos, [left, right])
        }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpr {
        let pos = current.pos
        var args = [try parseMath2()]
        while isOp("~") {
            try advance()
            args.append(try parseMath2())
        }
        if args.count == 1 { return args[0] }
        return try make(.concat(args), pos, args)
    }

    private mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        while current.kind == .op, let op = ["*": JinjaBinaryOp.mul, "/": .div, "//": .floorDiv, "%": .mod][current.text] {
            let pos = try advance().pos
            let right = try parsePow()
            left = try make(.binary(op, left, right), pos, [left, right])
        }
        return left
    }

    private mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary()
        while isOp("**") {
            let pos = try advance().pos
            let right = try parseUnary()
            left = try make(.binary(.pow, left, right), pos, [left, right])
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> JinjaExpr {
        var node: JinjaExpr
        if isOp("-") || isOp("+") {
            let token = try advance()
            let operand = try nested { p in try p.parseUnary(withFilter: false) }
            node = try make(token.text == "-" ? .negate(operand) : .plus(operand), token.pos, [operand])
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> JinjaExpr {
        let token = current
        switch token.kind {
        case .name:
            try advance()
            switch token.text {
            case "true", "True": return try make(.constant(.bool(true)), token.pos, [])
            case "false", "False": return try make(.constant(.bool(false)), token.pos, [])
            case "none", "None": return try make(.constant(.none), token.pos, [])
            default:
                if !macroUsage.isEmpty {
                    if token.text == "varargs" { macroUsage[macroUsage.count - 1].varargs = true }
                    if token.text == "kwargs" { macroUsage[macroUsage.count - 1].kwargs = true }
                }
                return try make(.name(token.text), token.pos, [])
            }
        case .string:
            try advance()
            var text = token.text
            while current.kind == .string { text += try advance().text }
            return try make(.constant(.string(text)), token.pos, [])
        case .integer:
            try advance()
            return try make(.constant(.int(token.intValue)), token.pos, [])
        case .float:
            try advance()
            return try make(.constant(.double(token.doubleValue)), token.pos, [])
        case .op where token.text == "(":
            try advance()
            let node = try parseTuple(explicitParens: true)
            try expectOp(")")
            return node
        case .op where token.text == "[":
            return try parseList()
        case .op where token.text == "{":
            return try parseDict()
        default:
            throw fail("unexpected '\(describe(token))'")
        }
    }

    private func isTupleEnd(_ extraEndRules: [String]?) -> Bool {
        if current.kind == .variableEnd || current.kind == .blockEnd || isOp(")") { return true }
        if let extraEndRules, current.kind == .name { return extraEndRules.contains(current.text) }
        return false
    }

    private mutating func parseTuple(withCondexpr: Bool = true, extraEndRules: [String]? = nil,
                                     explicitParens: Bool = false) throws -> JinjaExpr {
        let pos = current.pos
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(try parseExpression(withCondexpr: withCondexpr))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if items.count == 1 { return items[0] }
            if !explicitParens { throw fail("Expected an expression, got '\(describe(current))'") }
        }
        return try make(.tuple(items), pos, items)
    }

    private mutating func parseList() throws -> JinjaExpr {
        let pos = try advance().pos
        var items: [JinjaExpr] = []
        while !isOp("]") {
            if !items.isEmpty { try expectOp(",") }
            if isOp("]") { break }
            items.append(try parseExpression())
        }
        try expectOp("]")
        return try make(.list(items), pos, items)
    }

    private mutating func parseDict() throws -> JinjaExpr {
        let pos = try advance().pos
        var items: [(key: JinjaExpr, value: JinjaExpr)] = []
        while !isOp("}") {
            if !items.isEmpty { try expectOp(",") }
            if isOp("}") { break }
            let key = try parseExpression()
            try expectOp(":")
            items.append((key, try parseExpression()))
        }
        try expectOp("}")
        return try make(.dict(items), pos, items.flatMap { [$0.key, $0.value] })
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp("|") {
                // One filter at a time, so an absurdly long chain fails at the depth limit, not at its end.
                try advance()
                let call = try parseOneFilter()
                node = try make(.filter(node, call), call.pos, [node] + argumentExprs(call.arguments))
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private func argumentExprs(_ args: JinjaArguments) -> [JinjaExpr] {
        args.positional + args.keywords.map { $0.value } + [args.spreadArgs, args.spreadKwargs].compactMap { $0 }
    }

    private mutating func parseSubscript(_ node: JinjaExpr) throws -> JinjaExpr {
        let token = try advance()
        if token.text == "." {
            let attribute = current
            try advance()
            if attribute.kind == .name {
                return try make(.getattr(node, attribute.text), token.pos, [node])
            }
            guard attribute.kind == .integer else { throw fail("expected name or number", at: attribute.pos) }
            let key = try make(.constant(.int(attribute.intValue)), attribute.pos, [])
            return try make(.getitem(node, key), token.pos, [node, key])
        }
        var args: [JinjaExpr] = []
        while !isOp("]") {
            if !args.isEmpty { try expectOp(",") }
            args.append(try parseSubscribed())
        }
        try expectOp("]")
        let key = args.count == 1 ? args[0] : try make(.tuple(args), token.pos, args)
        return try make(.getitem(node, key), token.pos, [node, key])
    }

    private mutating func parseSubscribed() throws -> JinjaExpr {
        let pos = current.pos
        var parts: [JinjaExpr?] = []
        if isOp(":") {
            try advance()
            parts = [nil]
        } else {
            let node = try parseExpression()
            if !isOp(":") { return node }
            try advance()
            parts = [node]
        }
        if isOp(":") {
            parts.append(nil)
        } else if !isOp("]") && !isOp(",") {
            parts.append(try parseExpression())
        } else {
            parts.append(nil)
        }
        if isOp(":") {
            try advance()
            parts.append(!isOp("]") && !isOp(",") ? try parseExpression() : nil)
        } else {
            parts.append(nil)
        }
        return try make(.slice(parts[0], parts[1], parts[2]), pos, parts)
    }

    private mutating func parseCallArguments() throws -> JinjaArguments {
        let open = current.pos
        try expectOp("(")
        var args = JinjaArguments()
        var requireComma = false
        func ensure(_ ok: Bool) throws {
            if !ok { throw src.syntaxError("invalid syntax for function call expression", at: open) }
        }
        while !isOp(")") {
            if requireComma {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") {
                try ensure(args.spreadArgs == nil && args.spreadKwargs == nil)
                try advance()
                args.spreadArgs = try parseExpression()
            } else if isOp("**") {
                try ensure(args.spreadKwargs == nil)
                try advance()
                args.spreadKwargs = try parseExpression()
            } else if current.kind == .name && next.kind == .op && next.text == "=" {
                try ensure(args.spreadKwargs == nil)
                let key = try advance().text
                try advance()
                args.keywords.append((key, try parseExpression()))
            } else {
                try ensure(args.spreadArgs == nil && args.spreadKwargs == nil && args.keywords.isEmpty)
                args.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return args
    }

    private mutating func parseCall(_ node: JinjaExpr) throws -> JinjaExpr {
        let pos = current.pos
        let args = try parseCallArguments()
        return try make(.call(node, args), pos, [node] + argumentExprs(args))
    }

    private mutating func parseDottedName() throws -> (name: String, pos: Int) {
        let token = try expectName()
        var name = token.text
        while isOp(".") {
            try advance()
            name += "." + (try expectName()).text
        }
        return (name, token.pos)
    }

    private mutating func parseOneFilter() throws -> JinjaFilterCall {
        let (name, pos) = try parseDottedName()
        let args = isOp("(") ? try parseCallArguments() : JinjaArguments()
        return JinjaFilterCall(name: name, arguments: args, pos: pos)
    }

    /// The filters of `{% filter a | b %}` and `{% set x | a %}` (bounded by the nesting limit too).
    private mutating func parseFilterCalls(startInline: Bool) throws -> [JinjaFilterCall] {
        var calls: [JinjaFilterCall] = []
        var inline = startInline
        while isOp("|") || inline {
            if !inline { try advance() }
            inline = false
            calls.append(try parseOneFilter())
            if calls.count > ChatTemplate.Limits.maxNesting {
                let (line, column) = src.location(current.pos)
                throw ChatTemplateError.limitExceeded(
                    "more than \(ChatTemplate.Limits.maxNesting) chained filters at \(line):\(column)")
            }
        }
        return calls
    }

    private mutating func parseTest(_ node: JinjaExpr) throws -> JinjaExpr {
        let isPos = try advance().pos
        var negated = false
        if isName("not") {
            try advance()
            negated = true
        }
        let (name, pos) = try parseDottedName()
        var args = JinjaArguments()
        if isOp("(") {
            args = try parseCallArguments()
        } else if [.name, .string, .integer, .float].contains(current.kind) || isOp("[") || isOp("{"),
                  !(isName("else") || isName("or") || isName("and")) {
            if isName("is") { throw fail("You cannot chain multiple tests with is") }
            let arg = try parsePostfix(try parsePrimary())
            args.positional = [arg]
        }
        let test = try make(.test(node, name: name, args), pos, [node] + argumentExprs(args))
        return negated ? try make(.not(test), isPos, [test]) : test
    }
}

/// Jinja's compile-time check: filters and tests must exist, except where Jinja only checks at run time
/// (inside `if` branches and conditional expressions, its "soft" frames).
struct JinjaValidator {
    let source: JinjaSource

    func check(_ nodes: [JinjaNode]) throws {
        for node in nodes { try check(node, soft: false) }
    }

    private func check(_ nodes: [JinjaNode], soft: Bool) throws {
        for node in nodes { try check(node, soft: soft) }
    }

    private func check(_ node: JinjaNode, soft: Bool) throws {
        switch node {
        case .text, .loopBreak, .loopContinue:
            return
        case let .output(expr):
            try check(expr, soft: soft)
        case let .conditional(branches, otherwise):
            for branch in branches {
                try check(branch.test, soft: true)
                try check(branch.body, soft: true)
            }
            try check(otherwise, soft: true)
        case let .forLoop(loop):
            try check(loop.iterable, soft: soft)
            if let condition = loop.condition { try check(condition, soft: false) }
            try check(loop.body, soft: false)
            try check(loop.otherwise, soft: false)
        case let .assign(_, value, _):
            try check(value, soft: soft)
        case let .assignBlock(_, filters, body, _):
            for filter in filters { try check(filter, soft: soft) }
            try check(body, soft: false)
        case let .macro(macro):
            for value in macro.defaults { try check(value, soft: false) }
            try check(macro.body, soft: false)
        case let .filterBlock(filters, body):
            for filter in filters { try check(filter, soft: soft) }
            try check(body, soft: false)
        case let .with(assignments, body):
            for assignment in assignments { try check(assignment.value, soft: soft) }
            try check(body, soft: false)
        case let .block(body):
            try check(body, soft: soft)
        }
    }

    private func check(_ filter: JinjaFilterCall, soft: Bool) throws {
        try check(filter.arguments, soft: soft)
        if !soft && !JinjaBuiltins.jinjaFilterNames.contains(filter.name) {
            let (line, column) = source.location(filter.pos)
            throw ChatTemplateError.unknownFilter(name: filter.name, line: line, column: column)
        }
    }

    private func check(_ args: JinjaArguments, soft: Bool) throws {
        for expr in args.positional { try check(expr, soft: soft) }
        for keyword in args.keywords { try check(keyword.value, soft: soft) }
        if let spread = args.spreadArgs { try check(spread, soft: soft) }
        if let spread = args.spreadKwargs { try check(spread, soft: soft) }
    }

    private func check(_ expr: JinjaExpr?, soft: Bool) throws {
        guard let expr else { return }
        switch expr.kind {
        case .constant, .name:
            return
        case let .list(items), let .tuple(items), let .concat(items):
            for item in items { try check(item, soft: soft) }
        case let .dict(pairs):
            for pair in pairs {
                try check(pair.key, soft: soft)
                try check(pair.value, soft: soft)
            }
        case let .getattr(base, _):
            try check(base, soft: soft)
        case let .getitem(base, key):
            try check(base, soft: soft)
            try check(key, soft: soft)
        case let .slice(a, b, c):
            try check(a, soft: soft)
            try check(b, soft: soft)
            try check(c, soft: soft)
        case let .call(callee, args):
            try check(callee, soft: soft)
            try check(args, soft: soft)
        case let .filter(base, call):
            try check(base, soft: soft)
            try check(call, soft: soft)
        case let .test(base, name, args):
            try check(base, soft: soft)
            try check(args, soft: soft)
            if !soft && !JinjaBuiltins.jinjaTestNames.contains(name) {
                let (line, column) = source.location(expr.pos)
                throw ChatTemplateError.unknownTest(name: name, line: line, column: column)
            }
        case let .negate(operand), let .plus(operand), let .not(operand):
            try check(operand, soft: soft)
        case let .binary(_, lhs, rhs), let .and(lhs, rhs), let .or(lhs, rhs):
            try check(lhs, soft: soft)
            try check(rhs, soft: soft)
        case let .compare(first, ops):
            try check(first, soft: soft)
            for op in ops { try check(op.rhs, soft: soft) }
        case let .conditional(test, then, otherwise):
            try check(test, soft: true)
            try check(then, soft: true)
            try check(otherwise, soft: true)
        }
    }
}
