// Chat-template rendering API: Jinja chat templates rendered the way Hugging Face transformers' apply_chat_template does.
// Follows the Jinja2 3.1 Template Designer Documentation and transformers 5.24 utils/chat_template_utils.py (its environment).
import Foundation

/// One message of a conversation, as `apply_chat_template` receives it (`{"role": ..., "content": ...}`).
public struct ChatMessage: Sendable, Equatable {
    /// The speaker: `system`, `user`, `assistant`, `tool`, … (templates decide what they accept).
    public var role: String
    /// The message text.
    public var content: String

    /// Creates a message.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A value passed to a template through `extra` (for example `tools`, `date_string`, `enable_thinking`).
///
/// Mirrors the JSON-like Python values transformers hands to Jinja. Objects keep their keys in insertion order,
/// because Python dicts do and templates observe it (`tojson`, `items()`).
public enum TemplateValue: Sendable, Equatable {
    /// Python `None` (prints as `None`, is falsy, `is none`).
    case none
    /// Jinja's `Undefined` (prints as empty text, is falsy, `is defined` is false).
    case undefined
    /// `True` / `False`.
    case bool(Bool)
    /// A Python `int` (64-bit here; overflow is an error).
    case int(Int)
    /// A Python `float`.
    case double(Double)
    /// A Python `str`.
    case string(String)
    /// A Python `list`.
    case array([TemplateValue])
    /// A Python `dict` with string keys, in insertion order.
    case object([(key: String, value: TemplateValue)])

    /// Equality that, like Python's, ignores the key order of objects.
    public static func == (lhs: TemplateValue, rhs: TemplateValue) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none), (.undefined, .undefined): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = b.first(where: { $0.key == key }), other.value == value else { return false }
            }
            return true
        default: return false
        }
    }
}

extension TemplateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An int value.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A float value.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// A bool value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// A list value.
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    /// An object value; the literal's key order is kept.
    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
    /// `nil` is Python `None`.
    public init(nilLiteral: ()) { self = .none }
}

/// Why a template could not be parsed or rendered. Lines and columns are 1-based (columns count characters).
public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
    /// The template is not valid Jinja, or uses a construct this renderer does not implement.
    case syntax(message: String, line: Int, column: Int)
    /// A filter (`x | name`) that Jinja does not have, or that this renderer does not implement.
    case unknownFilter(name: String, line: Int, column: Int)
    /// A test (`x is name`) that Jinja does not have, or that this renderer does not implement.
    case unknownTest(name: String, line: Int, column: Int)
    /// A call to a name that is not defined (neither a variable, a macro nor a global function).
    case unknownFunction(name: String, line: Int, column: Int)
    /// The template called `raise_exception(message)`; the message is the template's own, verbatim.
    case raised(String)
    /// An operation on values of the wrong type (Python's `TypeError`/`ValueError`, Jinja's sandbox refusals).
    case typeError(message: String, line: Int, column: Int)
    /// A use of an undefined value that Jinja refuses (attribute of, arithmetic on, call of an undefined).
    case undefinedValue(message: String, line: Int, column: Int)
    /// The template needed more work, output, nesting or recursion than the renderer allows.
    case limitExceeded(String)

    /// A readable one-line explanation.
    public var description: String {
        switch self {
        case let .syntax(message, line, column):
            return "chat template syntax error at \(line):\(column): \(message)"
        case let .unknownFilter(name, line, column):
            return JinjaBuiltins.jinjaFilterNames.contains(name)
                ? "chat template uses filter '\(name)' at \(line):\(column), which this renderer does not support"
                : "chat template uses unknown filter '\(name)' at \(line):\(column)"
        case let .unknownTest(name, line, column):
            return JinjaBuiltins.jinjaTestNames.contains(name)
                ? "chat template uses test '\(name)' at \(line):\(column), which this renderer does not support"
                : "chat template uses unknown test '\(name)' at \(line):\(column)"
        case let .unknownFunction(name, line, column):
            return "chat template calls '\(name)' at \(line):\(column), which is not defined"
        case let .raised(message):
            return "chat template raised an exception: \(message)"
        case let .typeError(message, line, column):
            return "chat template type error at \(line):\(column): \(message)"
        case let .undefinedValue(message, line, column):
            return "chat template used an undefined value at \(line):\(column): \(message)"
        case let .limitExceeded(message):
            return "chat template exceeded a limit: \(message)"
        }
    }
}

/// A parsed chat template, ready to render many conversations (parse once, render often; safe to share).
///
/// Renders the Jinja subset published chat templates use, with transformers' environment: `trim_blocks` and
/// `lstrip_blocks` on, the `loopcontrols` extension (`break`/`continue`), the `{% generation %}` tag, and the
/// globals `raise_exception`, `strftime_now`, `namespace`, `dict` and `range` (capped like Jinja's sandbox).
/// Templates come from model files, so all work is bounded (see `ChatTemplate.Limits`) and every failure is a
/// thrown `ChatTemplateError`, never a crash.
public struct ChatTemplate: Sendable {
    let program: JinjaProgram

    /// Parses `source`; throws `ChatTemplateError.syntax` (with line and column) on invalid templates,
    /// `.unknownFilter`/`.unknownTest` for names Jinja itself would reject at compile time, and
    /// `.limitExceeded` for templates nested deeper than `Limits.maxNesting`.
    public init(source: String) throws {
        program = try JinjaThread.run { try JinjaParser.parse(source: source) }
    }

    /// Renders a conversation.
    ///
    /// The template sees `messages` (dicts with `role` and `content`), `add_generation_prompt`, `bos_token`,
    /// `eos_token`, `tools = None` and `documents = None` (as transformers passes them), then every `extra`
    /// entry (which overrides those). `now` is the wall-clock time `strftime_now` formats in the local time
    /// zone; `nil` means the current time (tests pass a fixed date).
    public func render(
        messages: [ChatMessage],
        addGenerationPrompt: Bool,
        bosToken: String = "",
        eosToken: String = "",
        extra: [String: TemplateValue] = [:],
        now: Date? = nil
    ) throws -> String {
        try JinjaThread.run {
            try renderHere(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken,
                           eosToken: eosToken, extra: extra, now: now ?? Date())
        }
    }

    private func renderHere(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String, eosToken: String,
                            extra: [String: TemplateValue], now: Date) throws -> String {
        var context: [String: JinjaValue] = [
            "messages": .list(messages.map { message in
                var dict = JinjaDict()
                dict.setString("role", .string(message.role))
                dict.setString("content", .string(message.content))
                return .dict(dict)
            }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
            "tools": .none,
            "documents": .none,
        ]
        for (key, value) in extra { context[key] = JinjaValue(value) }
        let renderer = JinjaRenderer(program: program, now: now)
        return try renderer.render(context: context)
    }

    /// The bounds every render and parse runs under.
    public enum Limits {
        /// Evaluation steps per render: one per expression evaluated or statement run, four per loop iteration,
        /// eight per macro call. Published templates use about 20–80 per message, so this covers conversations
        /// of more than ten thousand messages while a runaway loop stops in well under a second of CPU time,
        /// debug builds included.
        public static let maxSteps = 1_000_000
        /// Bytes of rendered output, and the size of any one string or JSON/repr text built while rendering.
        public static let maxOutputBytes = 16 << 20
        /// Bytes of strings built in total by one render (bounds quadratic concatenation loops).
        public static let maxWorkBytes = 256 << 20
        /// Nested macro calls.
        public static let maxMacroDepth = 64
        /// Nested evaluation (statements inside statements, expressions inside expressions, across macro calls).
        public static let maxEvalDepth = 1_000
        /// Nesting of blocks and of expressions in the template text.
        public static let maxNesting = 256
        /// Length of `range(...)`, as in Jinja's sandbox (`MAX_RANGE`).
        public static let maxRange = 100_000
        /// Elements of one list or dict built while rendering.
        public static let maxCollection = 1_000_000
    }
}

/// Runs parsing and rendering on a thread with a known, large stack. The nesting limits bound recursion, and
/// this makes those bounds safe whatever thread the caller is on (secondary threads can have small stacks,
/// and debug builds use several kilobytes per nesting level).
enum JinjaThread {
    /// Virtual size; only the pages a deep template touches are used.
    static let stackSize = 32 << 20

    private final class Job {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    static func run<T>(_ body: () throws -> T) throws -> T {
        var outcome: Swift.Result<T, any Error>?
        withoutActuallyEscaping({ outcome = Swift.Result { try body() } }) { work in
            let job = Unmanaged.passRetained(Job(work))
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            defer { pthread_attr_destroy(&attributes) }
            pthread_attr_setstacksize(&attributes, stackSize)
            #if os(Linux)
            var thread = pthread_t()
            let started = pthread_create(&thread, &attributes, entry, job.toOpaque()) == 0
            if started { pthread_join(thread, nil) }
            #else
            var thread: pthread_t?
            let started = pthread_create(&thread, &attributes, entry, job.toOpaque()) == 0
            if started, let thread { pthread_join(thread, nil) }
            #endif
            if !started {
                // No thread to be had: run here, still bounded by the limits (only the stack margin is lost).
                job.release()
                work()
            }
        }
        guard let outcome else { throw ChatTemplateError.limitExceeded("the render thread did not run") }
        return try outcome.get()
    }

    /// The thread's entry point: runs the job (and releases it) exactly once; `run` joins before returning.
    #if os(Linux)
    private static let entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
        guard let raw else { return nil }
        let job = Unmanaged<Job>.fromOpaque(raw).takeRetainedValue()
        job.work()
        return nil
    }
    #else
    private static let entry: @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? = { raw in
        let job = Unmanaged<Job>.fromOpaque(raw).takeRetainedValue()
        job.work()
        return nil
    }
    #endif
}
