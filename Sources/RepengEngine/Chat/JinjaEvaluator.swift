// Bounded tree-walking evaluator for parsed chat templates: scopes, statements, expressions, operators and limits.
// Follows the Jinja2 3.1 Template Designer Documentation (assignments and scoping, loops, macros) and Python 3 semantics.
import Foundation

/// A variable scope; lookups walk outward to the globals. Scopes are small (a loop target, `loop`, a few
/// `set`s), so names are searched linearly; big ones (the template's top level) switch to a hash index.
final class JinjaScope {
    private struct Storage {
        var names: [String] = []
        var values: [JinjaValue] = []
        var index: [String: Int]?
    }

    /// Behind a pointer for the same reason as the renderer's counters: no per-access exclusivity checks
    /// on the hottest data of the evaluator.
    private let storage: UnsafeMutablePointer<Storage>
    let parent: JinjaScope?
    /// Set once a macro closes over this scope: a loop may then not recycle it for the next iteration.
    var captured = false

    init(parent: JinjaScope?) {
        self.parent = parent
        storage = .allocate(capacity: 1)
        storage.initialize(to: Storage())
    }

    deinit {
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    func get(_ name: String) -> JinjaValue? {
        if let index = storage.pointee.index { return index[name].map { storage.pointee.values[$0] } }
        let names = storage.pointee.names
        for i in 0..<names.count where names[i] == name { return storage.pointee.values[i] }
        return nil
    }

    func set(_ name: String, _ value: JinjaValue) {
        if let i = storage.pointee.index?[name] {
            storage.pointee.values[i] = value
            return
        }
        if storage.pointee.index == nil {
            let names = storage.pointee.names
            for i in 0..<names.count where names[i] == name {
                storage.pointee.values[i] = value
                return
            }
        }
        storage.pointee.index?[name] = storage.pointee.names.count
        storage.pointee.names.append(name)
        storage.pointee.values.append(value)
        if storage.pointee.index == nil && storage.pointee.names.count > 16 {
            var built: [String: Int] = [:]
            for (i, n) in storage.pointee.names.enumerated() { built[n] = i }
            storage.pointee.index = built
        }
    }

    /// Empties the scope for reuse by the next loop iteration.
    func reset() {
        storage.pointee.names.removeAll(keepingCapacity: true)
        storage.pointee.values.removeAll(keepingCapacity: true)
        storage.pointee.index = nil
    }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: JinjaScope? = self
        while let current = scope {
            if let value = current.get(name) { return value }
            scope = current.parent
        }
        return nil
    }
}

/// How a statement list ended: normally, or by `{% break %}` / `{% continue %}`.
enum JinjaFlow {
    case normal, breakLoop, continueLoop
}

/// Renders one template once. Not shared between threads: each `ChatTemplate.render` makes its own.
final class JinjaRenderer {
    typealias Limits = ChatTemplate.Limits

    let program: JinjaProgram
    let now: Date
    /// The counters every step touches. They live behind a pointer because stored properties of a class
    /// pay for dynamic exclusivity checks on each access, which dominated the per-step cost.
    private struct Counters {
        var steps = 0
        var outputBytes = 0
        var workBytes = 0
        var depth = 0
        var macroDepth = 0
    }

    private let counters: UnsafeMutablePointer<Counters>
    private var out = ""
    /// Objects that can form reference cycles (a namespace holding itself, a macro in its own scope);
    /// emptied after the render so nothing leaks.
    private var namespaces: [JinjaNamespace] = []
    private var macros: [JinjaMacroValue] = []

    /// Deepest nesting of lists/dicts/tuples a template may build (bounds recursion in repr, JSON,
    /// comparisons and deallocation).
    static let maxValueNesting = 200

    /// Steps charged per loop iteration and per macro call: each costs a few expression evaluations' worth
    /// of work (scope set-up, bindings, output capture), so the step budget tracks time more closely.
    static let iterationCost = 4
    static let callCost = 8

    init(program: JinjaProgram, now: Date) {
        self.program = program
        self.now = now
        counters = .allocate(capacity: 1)
        counters.initialize(to: Counters())
    }

    deinit {
        counters.deinitialize(count: 1)
        counters.deallocate()
    }

    func render(context: [String: JinjaValue]) throws -> String {
        let globals = JinjaScope(parent: nil)
        for builtin in [JinjaBuiltin.range, .dict, .namespace, .raiseException, .strftimeNow] {
            globals.set(builtin.rawValue, .builtin(builtin))
        }
        let root = JinjaScope(parent: globals)
        for (name, value) in context { root.set(name, value) }
        defer {
            for namespace in namespaces { namespace.attributes = JinjaDict() }
            for macro in macros { macro.closure = nil }
        }
        _ = try exec(program.body, root)
        return out
    }

    // MARK: limits and errors

    @inline(__always) func tick(_ count: Int = 1) throws {
        counters.pointee.steps += count
        if counters.pointee.steps > Limits.maxSteps {
            throw ChatTemplateError.limitExceeded(
                "more than \(Limits.maxSteps) evaluation steps (an endless or very large loop?)")
        }
    }

    /// Accounts for a newly built string: per-string size and total string work.
    func noteString(_ s: String) throws -> String {
        let n = s.utf8.count
        try checkStringSize(n)
        counters.pointee.workBytes += n
        if counters.pointee.workBytes > Limits.maxWorkBytes {
            throw ChatTemplateError.limitExceeded("more than \(Limits.maxWorkBytes) bytes of strings built")
        }
        return s
    }

    func checkStringSize(_ n: Int) throws {
        if n > Limits.maxOutputBytes {
            throw ChatTemplateError.limitExceeded("a string longer than \(Limits.maxOutputBytes) bytes")
        }
    }

    func checkCollectionSize(_ n: Int) throws {
        if n > Limits.maxCollection {
            throw ChatTemplateError.limitExceeded("a list or dict with more than \(Limits.maxCollection) items")
        }
    }

    private func emit(_ s: String) throws {
        counters.pointee.outputBytes += s.utf8.count
        if counters.pointee.outputBytes > Limits.maxOutputBytes {
            throw ChatTemplateError.limitExceeded("more than \(Limits.maxOutputBytes) bytes of output")
        }
        out += s
    }

    /// Runs `body` with output redirected; returns what it wrote.
    private func capture(_ body: () throws -> Void) throws -> String {
        var saved = ""
        swap(&saved, &out)
        defer { swap(&saved, &out) }
        try body()
        return out
    }

    func location(_ pos: Int) -> (line: Int, column: Int) { program.source.location(pos) }

    func typeError(_ message: String, _ pos: Int) -> ChatTemplateError {
        let (line, column) = location(pos)
        return .typeError(message: message, line: line, column: column)
    }

    func undefinedError(_ info: JinjaUndefinedInfo?, _ pos: Int) -> ChatTemplateError {
        let (line, column) = location(pos)
        if let info, info.unsafe { return .typeError(message: info.message, line: line, column: column) }
        return .undefinedValue(message: info?.message ?? "value is undefined", line: line, column: column)
    }

    // MARK: statements

    private func exec(_ nodes: [JinjaNode], _ scope: JinjaScope) throws -> JinjaFlow {
        for node in nodes {
            let flow = try exec(node, scope)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    /// Runs one statement (small dispatcher, see `eval`).
    private func exec(_ node: JinjaNode, _ scope: JinjaScope) throws -> JinjaFlow {
        try enterStep()
        defer { counters.pointee.depth -= 1 }
        switch node {
        case let .text(text):
            try emit(text)
        case let .output(expr):
            try emit(try str(try eval(expr, scope)))
        case let .conditional(branches, otherwise):
            return try execIf(branches, otherwise, scope)
        case let .forLoop(loop):
            return try execFor(loop, scope)
        case let .assign(target, expr, pos):
            try assign(target, try eval(expr, scope), in: scope, pos: pos)
        case let .assignBlock(target, filters, body, pos):
            return try execAssignBlock(target, filters, body, scope, pos)
        case let .macro(macro):
            defineMacro(macro, scope)
        case let .filterBlock(filters, body):
            return try execFilterBlock(filters, body, scope)
        case let .with(assignments, body):
            return try execWith(assignments, body, scope)
        case let .block(body):
            return try exec(body, scope)
        case .loopBreak:
            return .breakLoop
        case .loopContinue:
            return .continueLoop
        }
        return .normal
    }

    private func execIf(_ branches: [(test: JinjaExpr, body: [JinjaNode])], _ otherwise: [JinjaNode],
                        _ scope: JinjaScope) throws -> JinjaFlow {
        for branch in branches {
            if try eval(branch.test, scope).truthy { return try exec(branch.body, scope) }
        }
        return try exec(otherwise, scope)
    }

    /// Renders a block body in its own scope and pipes the text through `filters`.
    private func captureFiltered(_ filters: [JinjaFilterCall], _ body: [JinjaNode], _ scope: JinjaScope)
        throws -> (value: JinjaValue, flow: JinjaFlow)
    {
        var flow = JinjaFlow.normal
        let text = try capture { flow = try exec(body, JinjaScope(parent: scope)) }
        var value = JinjaValue.string(text)
        for filter in filters { value = try applyFilter(filter, to: value, scope) }
        return (value, flow)
    }

    private func execAssignBlock(_ target: JinjaTarget, _ filters: [JinjaFilterCall], _ body: [JinjaNode],
                                 _ scope: JinjaScope, _ pos: Int) throws -> JinjaFlow {
        let (value, flow) = try captureFiltered(filters, body, scope)
        try assign(target, value, in: scope, pos: pos)
        return flow
    }

    private func execFilterBlock(_ filters: [JinjaFilterCall], _ body: [JinjaNode], _ scope: JinjaScope) throws -> JinjaFlow {
        let (value, flow) = try captureFiltered(filters, body, scope)
        try emit(try str(value))
        return flow
    }

    private func defineMacro(_ macro: JinjaMacro, _ scope: JinjaScope) {
        let value = JinjaMacroValue(macro, closure: scope)
        macros.append(value)
        // The macro sees this scope and every enclosing one, so none of them may be recycled.
        var enclosing: JinjaScope? = scope
        while let current = enclosing, !current.captured {
            current.captured = true
            enclosing = current.parent
        }
        scope.set(macro.name, .macro(value))
    }

    private func execWith(_ assignments: [(target: JinjaTarget, value: JinjaExpr)], _ body: [JinjaNode],
                          _ scope: JinjaScope) throws -> JinjaFlow {
        let inner = JinjaScope(parent: scope)
        for assignment in assignments {
            try assign(assignment.target, try eval(assignment.value, inner), in: inner, pos: assignment.value.pos)
        }
        return try exec(body, inner)
    }

    private func execFor(_ loop: JinjaForLoop, _ scope: JinjaScope) throws -> JinjaFlow {
        var items = try iterate(try eval(loop.iterable, scope), pos: loop.iterable.pos)
        if let condition = loop.condition {
            var kept: [JinjaValue] = []
            let probe = JinjaScope(parent: scope)
            for item in items {
                try tick(Self.iterationCost)
                probe.reset()
                try assign(loop.target, item, in: probe, pos: loop.pos)
                if try eval(condition, probe).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try exec(loop.otherwise, JinjaScope(parent: scope)) }
        var inner = JinjaScope(parent: scope)
        for i in items.indices {
            try tick(Self.iterationCost)
            // Each iteration starts from the enclosing scope: a `set` in the body does not survive it.
            if inner.captured { inner = JinjaScope(parent: scope) } else { inner.reset() }
            try assign(loop.target, items[i], in: inner, pos: loop.pos)
            inner.set("loop", .loop(JinjaLoop(items: items, index0: i)))
            if case .breakLoop = try exec(loop.body, inner) { break }
        }
        return .normal
    }

    private func assign(_ target: JinjaTarget, _ value: JinjaValue, in scope: JinjaScope, pos: Int) throws {
        switch target {
        case let .name(name):
            scope.set(name, value)
        case let .tuple(targets):
            let items = try iterate(value, pos: pos)
            if items.count < targets.count {
                throw typeError("not enough values to unpack (expected \(targets.count), got \(items.count))", pos)
            }
            if items.count > targets.count {
                throw typeError("too many values to unpack (expected \(targets.count))", pos)
            }
            for (t, item) in zip(targets, items) { try assign(t, item, in: scope, pos: pos) }
        case let .namespaceAttribute(name, attribute):
            guard case let .namespace(namespace)? = scope.lookup(name) else {
                throw typeError("cannot assign attribute on non-namespace object", pos)
            }
            try checkNamespaceKey(attribute, pos)
            namespace.attributes.setString(attribute, value)
        }
    }

    func checkNamespaceKey(_ name: String, _ pos: Int) throws {
        if name.hasPrefix("_") {
            throw typeError(
                "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(name)'. Please rename the attribute.",
                pos)
        }
    }

    func registerNamespace(_ namespace: JinjaNamespace) { namespaces.append(namespace) }

    // MARK: expressions

    /// Evaluates an expression. The dispatcher binds no payloads and each kind has its own function: in debug
    /// builds a switch that binds them gets one huge stack frame, zeroed on every call, and deep recursion
    /// needs small frames.
    func eval(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        try enterStep()
        defer { counters.pointee.depth -= 1 }
        switch expr.kind {
        case .constant: return evalConstant(expr)
        case .name: return evalName(expr, scope)
        case .getattr: return try evalGetattr(expr, scope)
        case .getitem: return try evalGetitem(expr, scope)
        case .binary: return try evalBinary(expr, scope)
        case .compare: return try evalCompare(expr, scope)
        case .filter: return try evalFilter(expr, scope)
        case .test: return try evalTest(expr, scope)
        case .call: return try evalCall(expr, scope)
        case .not: return try evalNot(expr, scope)
        case .and, .or: return try evalLogical(expr, scope)
        case .concat: return try evalConcat(expr, scope)
        case .conditional: return try evalConditional(expr, scope)
        case .list, .tuple: return try evalSequence(expr, scope)
        case .dict: return try evalDict(expr, scope)
        case .negate, .plus: return try evalUnary(expr, scope)
        case .slice: throw typeError("a slice can only be used inside [...]", expr.pos)
        }
    }

    /// Counts one step and one level of nesting.
    private func enterStep() throws {
        counters.pointee.steps += 1
        counters.pointee.depth += 1
        if counters.pointee.steps > Limits.maxSteps {
            counters.pointee.depth -= 1
            try tick(0)
        }
        if counters.pointee.depth > Limits.maxEvalDepth {
            counters.pointee.depth -= 1
            throw ChatTemplateError.limitExceeded("evaluation nested deeper than \(Limits.maxEvalDepth)")
        }
    }

    /// The dispatcher only calls these helpers with their own kind; this is the impossible other case.
    private func wrongKind(_ expr: JinjaExpr) -> ChatTemplateError {
        typeError("internal error: unexpected expression kind", expr.pos)
    }

    private func evalConstant(_ expr: JinjaExpr) -> JinjaValue {
        guard case let .constant(constant) = expr.kind else { return .none }
        return constantValue(constant)
    }

    private func evalName(_ expr: JinjaExpr, _ scope: JinjaScope) -> JinjaValue {
        guard case let .name(name) = expr.kind else { return .undefined(nil) }
        return scope.lookup(name) ?? .undefined(JinjaUndefinedInfo(name: name))
    }

    private func evalGetattr(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .getattr(base, name) = expr.kind else { throw wrongKind(expr) }
        return try getattr(try eval(base, scope), name, expr.pos)
    }

    private func evalFilter(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .filter(base, call) = expr.kind else { throw wrongKind(expr) }
        return try applyFilter(call, to: try eval(base, scope), scope)
    }

    private func evalNot(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .not(operand) = expr.kind else { throw wrongKind(expr) }
        return .bool(!(try eval(operand, scope)).truthy)
    }

    private func evalLogical(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        switch expr.kind {
        case let .and(lhs, rhs):
            let a = try eval(lhs, scope)
            return a.truthy ? try eval(rhs, scope) : a
        case let .or(lhs, rhs):
            let a = try eval(lhs, scope)
            return a.truthy ? a : try eval(rhs, scope)
        default:
            throw wrongKind(expr)
        }
    }

    private func evalSequence(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        switch expr.kind {
        case let .list(items): return .list(try evalItems(items, scope, expr.pos))
        case let .tuple(items): return .tuple(try evalItems(items, scope, expr.pos))
        default: throw wrongKind(expr)
        }
    }

    private func constantValue(_ constant: JinjaConstant) -> JinjaValue {
        switch constant {
        case .none: return .none
        case let .bool(b): return .bool(b)
        case let .int(i): return .int(i)
        case let .double(d): return .double(d)
        case let .string(s): return .string(s)
        }
    }

    private func evalItems(_ items: [JinjaExpr], _ scope: JinjaScope, _ pos: Int) throws -> [JinjaValue] {
        var values: [JinjaValue] = []
        values.reserveCapacity(items.count)
        for item in items { values.append(try eval(item, scope)) }
        try checkNesting(values, pos)
        return values
    }

    private func evalDict(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .dict(pairs) = expr.kind else { throw wrongKind(expr) }
        let pos = expr.pos
        var dict = JinjaDict()
        for pair in pairs {
            let key = try eval(pair.key, scope)
            let value = try eval(pair.value, scope)
            guard let hashKey = JinjaKey(key) else { throw typeError("unhashable type: '\(key.typeName)'", pos) }
            dict.set(hashKey, original: key, value)
        }
        try checkNesting(dict.values, pos)
        return .dict(dict)
    }

    private func evalGetitem(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .getitem(base, key) = expr.kind else { throw wrongKind(expr) }
        let pos = expr.pos
        let value = try eval(base, scope)
        if case let .slice(start, stop, step) = key.kind {
            return try slice(value, start.map { try eval($0, scope) }, stop.map { try eval($0, scope) },
                             step.map { try eval($0, scope) }, pos)
        }
        return try getitem(value, try eval(key, scope), pos)
    }

    private func evalTest(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .test(base, name, args) = expr.kind else { throw wrongKind(expr) }
        let pos = expr.pos
        let value = try eval(base, scope)
        let evaluated = args.isEmpty ? Arguments() : try evalArguments(args, scope, pos)
        return .bool(try applyTest(name, value, evaluated, pos))
    }

    private func evalUnary(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        let pos = expr.pos
        switch expr.kind {
        case let .negate(operand):
            let value = try eval(operand, scope)
            switch value {
            case let .int(i):
                guard i != Int.min else { throw overflow("-") }
                return .int(-i)
            case let .bool(b): return .int(b ? -1 : 0)
            case let .double(d): return .double(-d)
            case let .undefined(info): throw undefinedError(info, pos)
            default: throw typeError("bad operand type for unary -: '\(value.typeName)'", pos)
            }
        case let .plus(operand):
            let value = try eval(operand, scope)
            switch value {
            case .int, .double: return value
            case let .bool(b): return .int(b ? 1 : 0)
            case let .undefined(info): throw undefinedError(info, pos)
            default: throw typeError("bad operand type for unary +: '\(value.typeName)'", pos)
            }
        default:
            throw wrongKind(expr)
        }
    }

    private func evalBinary(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .binary(op, lhs, rhs) = expr.kind else { throw wrongKind(expr) }
        let a = try eval(lhs, scope)
        let b = try eval(rhs, scope)
        return try binary(op, a, b, expr.pos)
    }

    private func evalConcat(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .concat(items) = expr.kind else { throw wrongKind(expr) }
        var text = ""
        for item in items {
            text += try str(try eval(item, scope))
            try checkStringSize(text.utf8.count)
        }
        return .string(try noteString(text))
    }

    private func evalCompare(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .compare(first, ops) = expr.kind else { throw wrongKind(expr) }
        var left = try eval(first, scope)
        for (op, rhs) in ops {
            let right = try eval(rhs, scope)
            if !(try compare(op, left, right, rhs.pos)) { return .bool(false) }
            left = right
        }
        return .bool(true)
    }

    private func evalConditional(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .conditional(test, then, otherwise) = expr.kind else { throw wrongKind(expr) }
        if try eval(test, scope).truthy { return try eval(then, scope) }
        if let otherwise { return try eval(otherwise, scope) }
        let line = location(expr.pos).line
        return .undefined(JinjaUndefinedInfo(
            name: nil,
            hint: "the inline if-expression on line \(line) evaluated to false and no else section was defined."))
    }

    /// Nesting depth of a value, stopping once past the limit (cost is charged as steps).
    private func nesting(_ value: JinjaValue, _ budget: Int) throws -> Int {
        if budget <= 0 { return 1 }
        switch value {
        case let .list(items), let .tuple(items):
            var deepest = 0
            for item in items {
                try tick()
                deepest = max(deepest, try nesting(item, budget - 1))
                if deepest >= budget { break }
            }
            return deepest + 1
        case let .dict(dict):
            var deepest = 0
            for item in dict.values {
                try tick()
                deepest = max(deepest, try nesting(item, budget - 1))
                if deepest >= budget { break }
            }
            return deepest + 1
        default:
            return 0
        }
    }

    /// Refuses containers nested deeper than `maxValueNesting` (only scalars are free to wrap).
    func checkNesting(_ items: [JinjaValue], _ pos: Int) throws {
        for item in items {
            switch item {
            case .list, .tuple, .dict:
                if try nesting(item, Self.maxValueNesting) + 1 > Self.maxValueNesting {
                    let (line, column) = location(pos)
                    throw ChatTemplateError.limitExceeded(
                        "lists/dicts nested deeper than \(Self.maxValueNesting) at \(line):\(column)")
                }
            default:
                continue
            }
        }
    }

    // MARK: calls

    struct Arguments {
        var positional: [JinjaValue] = []
        var keywords: [(name: String, value: JinjaValue)] = []

        /// The argument at `index`, or the keyword `name`.
        func value(_ index: Int, _ name: String) -> JinjaValue? {
            if index < positional.count { return positional[index] }
            return keywords.first(where: { $0.name == name })?.value
        }
    }

    func evalArguments(_ args: JinjaArguments, _ scope: JinjaScope, _ pos: Int) throws -> Arguments {
        var result = Arguments()
        for expr in args.positional { result.positional.append(try eval(expr, scope)) }
        if let spread = args.spreadArgs {
            result.positional += try iterate(try eval(spread, scope), pos: spread.pos)
        }
        for keyword in args.keywords { result.keywords.append((keyword.name, try eval(keyword.value, scope))) }
        if let spread = args.spreadKwargs {
            guard case let .dict(dict) = try eval(spread, scope) else {
                throw typeError("argument after ** must be a mapping", spread.pos)
            }
            for (key, value) in dict.pairs {
                guard let name = key.stringValue else { throw typeError("keywords must be strings", spread.pos) }
                result.keywords.append((name, value))
            }
        }
        return result
    }

    private func evalCall(_ expr: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        guard case let .call(callee, args) = expr.kind else { throw wrongKind(expr) }
        let pos = expr.pos
        let function = try eval(callee, scope)
        if case let .undefined(info) = function {
            if let info, info.unsafe { throw undefinedError(info, pos) }
            if case let .name(name) = callee.kind {
                let (line, column) = location(callee.pos)
                throw ChatTemplateError.unknownFunction(name: name, line: line, column: column)
            }
            throw undefinedError(info, pos)
        }
        let evaluated = try evalArguments(args, scope, pos)
        return try call(function, evaluated, pos)
    }

    func call(_ function: JinjaValue, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        switch function {
        case let .macro(macro):
            return try callMacro(macro, args, pos)
        case let .builtin(builtin):
            return try callBuiltin(builtin, args, pos)
        case let .method(receiver, name):
            return try callMethod(receiver, name, args, pos)
        case let .undefined(info):
            throw undefinedError(info, pos)
        default:
            throw typeError("'\(function.typeName)' object is not callable", pos)
        }
    }

    private func callMacro(_ value: JinjaMacroValue, _ args: Arguments, _ pos: Int) throws -> JinjaValue {
        let macro = value.macro
        try tick(Self.callCost)
        counters.pointee.macroDepth += 1
        defer { counters.pointee.macroDepth -= 1 }
        if counters.pointee.macroDepth > Limits.maxMacroDepth {
            throw ChatTemplateError.limitExceeded(
                "macro calls nested deeper than \(Limits.maxMacroDepth) (runaway recursion in '\(macro.name)'?)")
        }
        guard let closure = value.closure else { throw typeError("macro '\(macro.name)' is no longer callable", pos) }
        let scope = JinjaScope(parent: closure)
        var keywords = args.keywords
        let firstDefault = macro.parameters.count - macro.defaults.count
        for (i, parameter) in macro.parameters.enumerated() {
            if i < args.positional.count {
                if keywords.contains(where: { $0.name == parameter }) {
                    throw typeError("macro '\(macro.name)' got multiple values for argument '\(parameter)'", pos)
                }
                scope.set(parameter, args.positional[i])
            } else if let k = keywords.firstIndex(where: { $0.name == parameter }) {
                scope.set(parameter, keywords[k].value)
                keywords.remove(at: k)
            } else if i >= firstDefault {
                scope.set(parameter, try eval(macro.defaults[i - firstDefault], scope))
            } else {
                scope.set(parameter, .undefined(JinjaUndefinedInfo(
                    name: parameter, hint: "parameter '\(parameter)' was not provided")))
            }
        }
        var extra: [JinjaValue] = []
        if args.positional.count > macro.parameters.count {
            guard macro.usesVarargs else {
                throw typeError("macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)", pos)
            }
            extra = Array(args.positional[macro.parameters.count...])
        }
        scope.set("varargs", .tuple(extra))
        var kwargs = JinjaDict()
        if let first = keywords.first, !macro.usesKwargs {
            throw typeError("macro '\(macro.name)' takes no keyword argument '\(first.name)'", pos)
        }
        for keyword in keywords { kwargs.setString(keyword.name, keyword.value) }
        scope.set("kwargs", .dict(kwargs))
        let text = try capture { _ = try exec(macro.body, scope) }
        return .string(text)
    }

    // MARK: attribute and item access

    func getattr(_ value: JinjaValue, _ name: String, _ pos: Int) throws -> JinjaValue {
        switch value {
        case let .undefined(info):
            throw undefinedError(info, pos)
        case let .dict(dict):
            if let method = JinjaBuiltins.method(on: value, named: name) { return method }
            return dict.getString(name) ?? .undefined(JinjaUndefinedInfo(name: name, owner: value.ownerDescription))
        case let .namespace(namespace):
            return namespace.attributes.getString(name)
                ?? .undefined(JinjaUndefinedInfo(name: name, owner: value.ownerDescription))
        case let .loop(loop):
            return loopAttribute(loop, name)
        case let .macro(macro) where name == "name":
            return .string(macro.macro.name)
        default:
            if let method = JinjaBuiltins.method(on: value, named: name) { return method }
            return .undefined(JinjaUndefinedInfo(name: name, owner: value.ownerDescription))
        }
    }

    private func loopAttribute(_ loop: JinjaLoop, _ name: String) -> JinjaValue {
        let count = loop.items.count
        switch name {
        case "index": return .int(loop.index0 + 1)
        case "index0": return .int(loop.index0)
        case "revindex": return .int(count - loop.index0)
        case "revindex0": return .int(count - loop.index0 - 1)
        case "first": return .bool(loop.index0 == 0)
        case "last": return .bool(loop.index0 == count - 1)
        case "length": return .int(count)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem":
            return loop.index0 > 0 ? loop.items[loop.index0 - 1]
                : .undefined(JinjaUndefinedInfo(name: "previtem", hint: "there is no previous item"))
        case "nextitem":
            return loop.index0 + 1 < count ? loop.items[loop.index0 + 1]
                : .undefined(JinjaUndefinedInfo(name: "nextitem", hint: "there is no next item"))
        case "cycle":
            return .method(.loop(loop), "cycle")
        default:
            return .undefined(JinjaUndefinedInfo(name: name, owner: "LoopContext object"))
        }
    }

    /// Jinja's sandboxed `getitem`: `obj[key]`, then the attribute for string keys, else undefined.
    func getitem(_ value: JinjaValue, _ key: JinjaValue, _ pos: Int) throws -> JinjaValue {
        switch value {
        case let .undefined(info):
            throw undefinedError(info, pos)
        case let .dict(dict):
            if let hashKey = JinjaKey(key), let found = dict.get(hashKey) { return found }
        case let .list(items), let .tuple(items):
            if let i = key.asInt {
                let index = i < 0 ? i + items.count : i
                if index >= 0 && index < items.count { return items[index] }
            }
        case let .iterator(it) where it.kind == .range:
            if let i = key.asInt {
                let index = i < 0 ? i + it.items.count : i
                if index >= 0 && index < it.items.count { return it.items[index] }
            }
        case let .string(s), let .markup(s):
            if let i = key.asInt {
                try tick(s.utf8.count / 64)
                let scalars = s.unicodeScalars
                let count = scalars.count
                let index = i < 0 ? i + count : i
                if index >= 0 && index < count {
                    return .string(String(scalars[scalars.index(scalars.startIndex, offsetBy: index)]))
                }
            }
        default:
            break
        }
        if let name = key.stringValue { return try getattr(value, name, pos) }
        return .undefined(JinjaUndefinedInfo(name: try repr(key), owner: value.ownerDescription, isAttribute: false))
    }

    /// Python's `slice.indices(count)`: bounds clamped into the sequence; any bounds are safe.
    static func adjustedSlice(_ start: Int?, _ stop: Int?, _ step: Int, count: Int) -> (start: Int, stop: Int) {
        func adjust(_ v: Int?, _ defaultValue: Int) -> Int {
            guard var v else { return defaultValue }
            if v < 0 {
                v = v < -count ? (step < 0 ? -1 : 0) : v + count
            } else if v >= count {
                v = step < 0 ? count - 1 : count
            }
            return v
        }
        return (adjust(start, step < 0 ? count - 1 : 0), adjust(stop, step < 0 ? -1 : count))
    }

    static func sliceIndices(_ start: Int?, _ stop: Int?, _ step: Int, count: Int) -> [Int] {
        let (first, end) = adjustedSlice(start, stop, step, count: count)
        var result: [Int] = []
        var i = first
        while step > 0 ? i < end : i > end {
            result.append(i)
            let (nextIndex, overflow) = i.addingReportingOverflow(step)
            if overflow { break }
            i = nextIndex
        }
        return result
    }

    /// `x[a:b:c]`. Jinja compiles slices to a plain Python subscript (not its forgiving `getitem`), so
    /// errors surface as Python's TypeErrors.
    private func slice(_ value: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?,
                       _ pos: Int) throws -> JinjaValue {
        if case let .undefined(info) = value { throw undefinedError(info, pos) }
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v else { return nil }
            if case .none = v { return nil }
            if let i = v.asInt { return i }
            throw typeError("slice indices must be integers or None or have an __index__ method", pos)
        }
        switch value {
        case let .list(items), let .tuple(items):
            let (a, b, c) = (try bound(start), try bound(stop), try bound(step) ?? 1)
            if c == 0 { throw typeError("slice step cannot be zero", pos) }
            try tick(items.count / 16)
            let picked = Self.sliceIndices(a, b, c, count: items.count).map { items[$0] }
            if case .tuple = value { return .tuple(picked) }
            return .list(picked)
        case let .string(s), let .markup(s):
            let (a, b, c) = (try bound(start), try bound(stop), try bound(step) ?? 1)
            if c == 0 { throw typeError("slice step cannot be zero", pos) }
            let scalars = Array(s.unicodeScalars)
            try tick(scalars.count / 16)
            var text = String.UnicodeScalarView()
            for i in Self.sliceIndices(a, b, c, count: scalars.count) { text.append(scalars[i]) }
            let result = try noteString(String(text))
            if case .markup = value { return .markup(result) }
            return .string(result)
        case let .iterator(it) where it.kind == .range:
            // A slice of a range is a range.
            let (a, b, c) = (try bound(start), try bound(stop), try bound(step) ?? 1)
            if c == 0 { throw typeError("slice step cannot be zero", pos) }
            let r = it.range ?? (0, it.items.count, 1)
            let (first, end) = Self.adjustedSlice(a, b, c, count: it.items.count)
            let picked = Self.sliceIndices(a, b, c, count: it.items.count).map { it.items[$0] }
            let (startOffset, o1) = first.multipliedReportingOverflow(by: r.step)
            let (stopOffset, o2) = end.multipliedReportingOverflow(by: r.step)
            let (newStep, o3) = r.step.multipliedReportingOverflow(by: c)
            let (newStart, o4) = r.start.addingReportingOverflow(startOffset)
            let (newStop, o5) = r.start.addingReportingOverflow(stopOffset)
            if o1 || o2 || o3 || o4 || o5 { throw overflow("range slice") }
            return .iterator(JinjaIterator(kind: .range, items: picked, range: (newStart, newStop, newStep)))
        case .dict:
            throw typeError("unhashable type: 'slice'", pos)
        default:
            throw typeError("'\(value.typeName)' object is not subscriptable", pos)
        }
    }

    /// Python iteration, materialized: characters of a string, keys of a dict; Undefined is empty.
    func iterate(_ value: JinjaValue, pos: Int) throws -> [JinjaValue] {
        switch value {
        case let .list(items), let .tuple(items):
            return items
        case let .dict(dict):
            return dict.keys
        case let .iterator(it):
            if let failure = it.failure { throw failure }
            return it.items
        case let .string(s), let .markup(s):
            // One step per character: the characters are materialized as strings.
            try tick(s.utf8.count)
            return s.unicodeScalars.map { .string(String($0)) }
        case .undefined:
            return []
        default:
            throw typeError("'\(value.typeName)' object is not iterable", pos)
        }
    }

    // MARK: operators

    private func overflow(_ op: String) -> ChatTemplateError {
        .limitExceeded("integer overflow in '\(op)' (results are limited to 64 bits)")
    }

    func binary(_ op: JinjaBinaryOp, _ a: JinjaValue, _ b: JinjaValue, _ pos: Int) throws -> JinjaValue {
        if case let .undefined(info) = a { throw undefinedError(info, pos) }
        if case let .undefined(info) = b { throw undefinedError(info, pos) }
        var unsupported: ChatTemplateError {
            typeError("unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'", pos)
        }
        switch op {
        case .add:
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow("+") }
                return .int(r)
            }
            if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble { return .double(x + y) }
            switch (a, b) {
            case let (.string(x), .string(y)):
                try checkStringSize(x.utf8.count + y.utf8.count)
                return .string(try noteString(x + y))
            case let (.markup(x), _) where b.stringValue != nil:
                let y = b.stringValue ?? ""
                let rhs = { if case .markup = b { return y } else { return JinjaFormat.htmlEscape(y) } }()
                try checkStringSize(x.utf8.count + rhs.utf8.count)
                return .markup(try noteString(x + rhs))
            case let (.string(x), .markup(y)):
                let lhs = JinjaFormat.htmlEscape(x)
                try checkStringSize(lhs.utf8.count + y.utf8.count)
                return .markup(try noteString(lhs + y))
            case let (.list(x), .list(y)):
                try checkCollectionSize(x.count + y.count)
                try tick((x.count + y.count) / 16)
                return .list(x + y)
            case let (.tuple(x), .tuple(y)):
                try checkCollectionSize(x.count + y.count)
                try tick((x.count + y.count) / 16)
                return .tuple(x + y)
            case (.string, _):
                throw typeError("can only concatenate str (not \"\(b.typeName)\") to str", pos)
            case (.list, _):
                throw typeError("can only concatenate list (not \"\(b.typeName)\") to list", pos)
            default:
                throw unsupported
            }
        case .sub:
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow("-") }
                return .int(r)
            }
            if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble { return .double(x - y) }
            throw unsupported
        case .mul:
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow("*") }
                return .int(r)
            }
            if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble { return .double(x * y) }
            if let n = b.asInt, let repeated = try repeatValue(a, n) { return repeated }
            if let n = a.asInt, let repeated = try repeatValue(b, n) { return repeated }
            throw typeError("can't multiply sequence by non-int of type '\(b.typeName)'", pos)
        case .div:
            guard a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble else { throw unsupported }
            if y == 0 { throw typeError("division by zero", pos) }
            return .double(x / y)
        case .floorDiv:
            if let x = a.asInt, let y = b.asInt {
                if y == 0 { throw typeError("integer division or modulo by zero", pos) }
                if x == Int.min && y == -1 { throw overflow("//") }
                var q = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }
                return .int(q)
            }
            guard a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble else { throw unsupported }
            if y == 0 { throw typeError("float floor division by zero", pos) }
            return .double(Self.pyFloatFloorDiv(x, y))
        case .mod:
            if let x = a.asInt, let y = b.asInt {
                if y == 0 { throw typeError("integer division or modulo by zero", pos) }
                if y == -1 { return .int(0) }
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .int(r)
            }
            if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble {
                if y == 0 { throw typeError("float modulo", pos) }
                return .double(Self.pyFloatMod(x, y))
            }
            if let format = a.stringValue {
                // A tuple spreads; anything else is one value. Python treats lists and dicts as mappings
                // here, so leftover arguments are not an error for them.
                switch b {
                case let .tuple(items):
                    return .string(try noteString(try percentFormat(format, items, pos)))
                case .list, .dict:
                    return .string(try noteString(try percentFormat(format, [b], pos, allowUnused: true)))
                default:
                    return .string(try noteString(try percentFormat(format, [b], pos)))
                }
            }
            throw unsupported
        case .pow:
            if let x = a.asInt, let y = b.asInt {
                if y < 0 {
                    if x == 0 { throw typeError("0.0 cannot be raised to a negative power", pos) }
                    return .double(Foundation.pow(Double(x), Double(y)))
                }
                var result = 1, base = x, exponent = y
                while exponent > 0 {
                    try tick()
                    if exponent & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow("**") }
                        result = r
                    }
                    exponent >>= 1
                    if exponent > 0 {
                        let (r, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow("**") }
                        base = r
                    }
                }
                return .int(result)
            }
            guard a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble else { throw unsupported }
            if x == 0 && y < 0 { throw typeError("0.0 cannot be raised to a negative power", pos) }
            return .double(Foundation.pow(x, y))
        }
    }

    static func pyFloatMod(_ x: Double, _ y: Double) -> Double {
        var r = fmod(x, y)
        if r != 0 {
            if (r < 0) != (y < 0) { r += y }
        } else {
            r = y < 0 ? -0.0 : 0.0
        }
        return r
    }

    static func pyFloatFloorDiv(_ x: Double, _ y: Double) -> Double {
        let r = pyFloatMod(x, y)
        return ((x - r) / y).rounded()
    }

    /// `str * n`, `list * n`; nil when `value` is not a sequence.
    private func repeatValue(_ value: JinjaValue, _ n: Int) throws -> JinjaValue? {
        let times = max(0, n)
        switch value {
        case let .string(s), let .markup(s):
            let (total, o) = s.utf8.count.multipliedReportingOverflow(by: times)
            if o { throw ChatTemplateError.limitExceeded("a string longer than \(Limits.maxOutputBytes) bytes") }
            try checkStringSize(total)
            let text = try noteString(String(repeating: s, count: times))
            if case .markup = value { return .markup(text) }
            return .string(text)
        case let .list(items), let .tuple(items):
            let (total, o) = items.count.multipliedReportingOverflow(by: times)
            if o { throw ChatTemplateError.limitExceeded("a list or dict with more than \(Limits.maxCollection) items") }
            try checkCollectionSize(total)
            try tick(total / 16)
            var result: [JinjaValue] = []
            result.reserveCapacity(total)
            for _ in 0..<times { result += items }
            if case .tuple = value { return .tuple(result) }
            return .list(result)
        default:
            return nil
        }
    }

    private func compare(_ op: JinjaCompareOp, _ a: JinjaValue, _ b: JinjaValue, _ pos: Int) throws -> Bool {
        switch op {
        case .eq: return try equals(a, b)
        case .ne: return !(try equals(a, b))
        case .lt: return try less(a, b, pos, op)
        case .gt: return try less(b, a, pos, op)
        case .le: return try !less(b, a, pos, op)
        case .ge: return try !less(a, b, pos, op)
        case .in: return try contains(b, a, pos)
        case .notIn: return !(try contains(b, a, pos))
        }
    }

    /// Python `==` (numbers across int/float/bool, deep for containers; Undefined equals only Undefined).
    func equals(_ a: JinjaValue, _ b: JinjaValue, _ level: Int = 0) throws -> Bool {
        try tick()
        if level > Self.maxValueNesting {
            throw ChatTemplateError.limitExceeded("comparison of values nested deeper than \(Self.maxValueNesting)")
        }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(x), .string(y)), let (.string(x), .markup(y)), let (.markup(x), .string(y)),
             let (.markup(x), .markup(y)):
            return x.utf8.elementsEqual(y.utf8)
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
            guard x.count == y.count else { return false }
            for (p, q) in zip(x, y) {
                if !(try equals(p, q, level + 1)) { return false }
            }
            return true
        case let (.dict(x), .dict(y)):
            guard x.count == y.count else { return false }
            for (key, value) in x.pairs {
                guard let hashKey = JinjaKey(key), let other = y.get(hashKey) else { return false }
                if !(try equals(value, other, level + 1)) { return false }
            }
            return true
        case let (.namespace(x), .namespace(y)): return x === y
        case let (.macro(x), .macro(y)): return x === y
        case let (.builtin(x), .builtin(y)): return x == y
        case let (.iterator(x), .iterator(y)):
            // Ranges and views compare by content; generators only by identity (never equal here).
            guard x.kind == y.kind, x.hasLength, x.items.count == y.items.count else { return false }
            for (p, q) in zip(x.items, y.items) {
                if !(try equals(p, q, level + 1)) { return false }
            }
            return true
        default:
            if let x = a.asInt, let y = b.asInt { return x == y }
            if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble { return x == y }
            return false
        }
    }

    /// Python `<`: numbers, strings (by code point), lists and tuples lexicographically.
    func less(_ a: JinjaValue, _ b: JinjaValue, _ pos: Int, _ op: JinjaCompareOp = .lt, _ level: Int = 0) throws -> Bool {
        try tick()
        if case let .undefined(info) = a { throw undefinedError(info, pos) }
        if case let .undefined(info) = b { throw undefinedError(info, pos) }
        if level > Self.maxValueNesting {
            throw ChatTemplateError.limitExceeded("comparison of values nested deeper than \(Self.maxValueNesting)")
        }
        if let x = a.asInt, let y = b.asInt { return x < y }
        if a.isNumber && b.isNumber, let x = a.asDouble, let y = b.asDouble { return x < y }
        if let x = a.stringValue, let y = b.stringValue {
            // UTF-8 byte order is code point order.
            return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
        switch (a, b) {
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
            for (p, q) in zip(x, y) {
                if !(try equals(p, q, level + 1)) { return try less(p, q, pos, op, level + 1) }
            }
            return x.count < y.count
        default:
            throw typeError(
                "'\(op.rawValue)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", pos)
        }
    }

    /// Python `needle in haystack`.
    func contains(_ haystack: JinjaValue, _ needle: JinjaValue, _ pos: Int) throws -> Bool {
        switch haystack {
        case let .string(s), let .markup(s):
            guard let n = needle.stringValue else {
                throw typeError("'in <string>' requires string as left operand, not \(needle.typeName)", pos)
            }
            try tick(s.utf8.count / 64)
            return JinjaText.find(Array(n.utf8), in: Array(s.utf8), from: 0) != nil
        case let .list(items), let .tuple(items):
            for item in items {
                if try equals(item, needle) { return true }
            }
            return false
        case let .iterator(it):
            if let failure = it.failure { throw failure }
            for item in it.items {
                if try equals(item, needle) { return true }
            }
            return false
        case let .dict(dict):
            guard let key = JinjaKey(needle) else { throw typeError("unhashable type: '\(needle.typeName)'", pos) }
            return dict.get(key) != nil
        case .undefined:
            return false
        default:
            throw typeError("argument of type '\(haystack.typeName)' is not iterable", pos)
        }
    }
}
