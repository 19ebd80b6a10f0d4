// Syntax tree of a parsed Jinja chat template.
// Node kinds from the Jinja2 3.1 Template Designer Documentation (List of Control Structures, Expressions).

/// A parsed template: its statements and the source they point into (for error positions).
struct JinjaProgram: Sendable {
    let body: [JinjaNode]
    let source: JinjaSource
}

/// An expression with its source position (byte offset) and tree depth (bounded at parse time).
struct JinjaExpr: Sendable {
    indirect enum Kind: Sendable {
        case constant(JinjaConstant)
        case name(String)
        case list([JinjaExpr])
        case tuple([JinjaExpr])
        case dict([(key: JinjaExpr, value: JinjaExpr)])
        case getattr(JinjaExpr, String)
        case getitem(JinjaExpr, JinjaExpr)
        /// Only valid as the subscript of `getitem`: `x[start:stop:step]`.
        case slice(JinjaExpr?, JinjaExpr?, JinjaExpr?)
        case call(JinjaExpr, JinjaArguments)
        case filter(JinjaExpr, JinjaFilterCall)
        case test(JinjaExpr, name: String, JinjaArguments)
        case negate(JinjaExpr)
        case plus(JinjaExpr)
        case not(JinjaExpr)
        case binary(JinjaBinaryOp, JinjaExpr, JinjaExpr)
        case and(JinjaExpr, JinjaExpr)
        case or(JinjaExpr, JinjaExpr)
        case concat([JinjaExpr])
        case compare(JinjaExpr, [(op: JinjaCompareOp, rhs: JinjaExpr)])
        /// `then if test else otherwise`; a missing `else` yields undefined.
        case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
    }

    let kind: Kind
    let pos: Int
    let depth: Int
}

enum JinjaConstant: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

enum JinjaBinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floorDiv = "//", mod = "%", pow = "**"
}

enum JinjaCompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
}

/// Call arguments: positional, keyword, and Python's `*args` / `**kwargs` spreads.
struct JinjaArguments: Sendable {
    var positional: [JinjaExpr] = []
    var keywords: [(name: String, value: JinjaExpr)] = []
    var spreadArgs: JinjaExpr?
    var spreadKwargs: JinjaExpr?

    var isEmpty: Bool { positional.isEmpty && keywords.isEmpty && spreadArgs == nil && spreadKwargs == nil }
}

/// `| name(args)` (also the filters of `{% filter %}` and `{% set x | f %}` blocks).
struct JinjaFilterCall: Sendable {
    let name: String
    let arguments: JinjaArguments
    let pos: Int
}

/// Left-hand side of `set` and `for`.
indirect enum JinjaTarget: Sendable {
    case name(String)
    case tuple([JinjaTarget])
    /// `ns.attr` (only `set` accepts it).
    case namespaceAttribute(String, String)
}

struct JinjaForLoop: Sendable {
    let target: JinjaTarget
    let iterable: JinjaExpr
    let condition: JinjaExpr?
    let body: [JinjaNode]
    let otherwise: [JinjaNode]
    let pos: Int
}

struct JinjaMacro: Sendable {
    let name: String
    let parameters: [String]
    /// Defaults for the last `defaults.count` parameters.
    let defaults: [JinjaExpr]
    let body: [JinjaNode]
    /// Whether the body reads `varargs` / `kwargs` (Jinja only accepts extra arguments then).
    let usesVarargs: Bool
    let usesKwargs: Bool
    let pos: Int
}

indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr)
    case conditional(branches: [(test: JinjaExpr, body: [JinjaNode])], otherwise: [JinjaNode])
    case forLoop(JinjaForLoop)
    case assign(JinjaTarget, JinjaExpr, pos: Int)
    case assignBlock(JinjaTarget, filters: [JinjaFilterCall], body: [JinjaNode], pos: Int)
    case macro(JinjaMacro)
    case filterBlock(filters: [JinjaFilterCall], body: [JinjaNode])
    /// `{% with a = 1 %}...{% endwith %}`: assignments visible only inside.
    case with(assignments: [(target: JinjaTarget, value: JinjaExpr)], body: [JinjaNode])
    /// A body rendered in place (transformers' `{% generation %}` tag).
    case block([JinjaNode])
    case loopBreak
    case loopContinue
}
