// Chat-template renderer tests: goldens from transformers' apply_chat_template, error positions, limits, fuzzing.
// Fixtures come from scripts/make_chat_template_fixtures.py (transformers 5.24, jinja2 3.1.6).
import Foundation
import RepengEngine
import XCTest

/// `Fixtures/chat/cases.json`, written by scripts/make_chat_template_fixtures.py.
private struct ChatFixtures: Decodable {
    struct Template: Decodable {
        let name: String
        let origin: String
    }

    struct Synthetic: Decodable {
        let name: String
        let source: String
    }

    struct Message: Decodable {
        let role: String
        let content: String
    }

    struct Case: Decodable {
        let template: String
        let conversation: String
        let bos_token: String
        let eos_token: String
        let messages: [Message]
        let add_generation_prompt: Bool
        let extra: [String: FixtureValue]
        let expected: String?
        let raised: String?
    }

    let transformers: String
    let jinja2: String
    let fixed_now: String
    let templates: [Template]
    let synthetic: [Synthetic]
    let cases: [Case]
}

/// The result of a render on another thread.
private final class RenderOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?

    func set(_ result: String) { lock.withLock { value = result } }
    func get() -> String? { lock.withLock { value } }
}

/// A template value in the fixture JSON; objects are `{"$object": [[key, value], ...]}` to keep key order.
private struct FixtureValue: Decodable {
    let value: TemplateValue

    private struct Keys: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: Keys.self), let key = Keys(stringValue: "$object"),
           keyed.contains(key) {
            var pairs = try keyed.nestedUnkeyedContainer(forKey: key)
            var object: [(key: String, value: TemplateValue)] = []
            while !pairs.isAtEnd {
                var pair = try pairs.nestedUnkeyedContainer()
                let name = try pair.decode(String.self)
                let item = try pair.decode(FixtureValue.self)
                object.append((name, item.value))
            }
            value = .object(object)
            return
        }
        if var array = try? decoder.unkeyedContainer() {
            var items: [TemplateValue] = []
            while !array.isAtEnd { items.append(try array.decode(FixtureValue.self).value) }
            value = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            value = .none
        } else if let b = try? single.decode(Bool.self) {
            value = .bool(b)
        } else if let i = try? single.decode(Int.self) {
            value = .int(i)
        } else if let d = try? single.decode(Double.self) {
            value = .double(d)
        } else {
            value = .string(try single.decode(String.self))
        }
    }
}

final class ChatTemplateTests: XCTestCase {
    private static let conversation = [
        ChatMessage(role: "system", content: "Be brief."),
        ChatMessage(role: "user", content: "Hi"),
        ChatMessage(role: "assistant", content: "Hello!"),
        ChatMessage(role: "user", content: "Bye"),
    ]

    /// The fixtures' pinned wall-clock time, in the local time zone (as Python's naive `datetime.now()`).
    private func fixedNow(_ iso: String) throws -> Date {
        let parts = iso.split(whereSeparator: { "-T:".contains($0) }).compactMap { Int($0) }
        XCTAssertEqual(parts.count, 6, "fixed_now \(iso)")
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let components = DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: parts[3],
                                        minute: parts[4], second: parts[5])
        return try XCTUnwrap(calendar.date(from: components))
    }

    /// First differing position and the text around it, for a readable failure message.
    private func diff(_ actual: String, _ expected: String) -> String {
        let a = Array(actual.unicodeScalars), e = Array(expected.unicodeScalars)
        var i = 0
        while i < a.count && i < e.count && a[i] == e[i] { i += 1 }
        func context(_ s: [Unicode.Scalar]) -> String {
            let lo = max(0, i - 40), hi = min(s.count, i + 40)
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s[lo..<hi])
            return String(reflecting: String(view))
        }
        return "first difference at character \(i) (lengths \(a.count) vs expected \(e.count))\n"
            + "  actual:   \(context(a))\n  expected: \(context(e))"
    }

    func testGoldenFixturesMatchTransformers() throws {
        let fixtures = try TestSupport.loadJSON(ChatFixtures.self, "chat/cases.json")
        let now = try fixedNow(fixtures.fixed_now)
        XCTAssertGreaterThanOrEqual(fixtures.templates.count, 13)
        var sources: [String: String] = [:]
        for template in fixtures.templates {
            sources[template.name] = try String(contentsOf: TestSupport.fixture("chat/\(template.name).jinja"),
                                                encoding: .utf8)
        }
        for synthetic in fixtures.synthetic { sources[synthetic.name] = synthetic.source }

        var parsed: [String: ChatTemplate] = [:]
        var failures = 0
        for (index, c) in fixtures.cases.enumerated() {
            let label = "case \(index) \(c.template) / \(c.conversation) / add_generation_prompt=\(c.add_generation_prompt)"
            guard let source = sources[c.template] else {
                XCTFail("\(label): no template source")
                failures += 1
                continue
            }
            do {
                let template = try parsed[c.template] ?? ChatTemplate(source: source)
                parsed[c.template] = template
                let output = try template.render(
                    messages: c.messages.map { ChatMessage(role: $0.role, content: $0.content) },
                    addGenerationPrompt: c.add_generation_prompt, bosToken: c.bos_token, eosToken: c.eos_token,
                    extra: c.extra.mapValues(\.value), now: now)
                if let expected = c.expected {
                    // Byte for byte: Swift's `==` on String would accept canonically equivalent text.
                    if !output.utf8.elementsEqual(expected.utf8) {
                        failures += 1
                        XCTFail("\(label): output differs from transformers\n\(diff(output, expected))")
                    }
                } else {
                    failures += 1
                    XCTFail("\(label): expected raise_exception(\(c.raised ?? "")), got output")
                }
            } catch let error as ChatTemplateError {
                if let raised = c.raised, error == .raised(raised) { continue }
                failures += 1
                XCTFail("\(label): \(error)")
            }
        }
        print("chat template fixtures: \(fixtures.cases.count - failures)/\(fixtures.cases.count) cases match "
            + "transformers \(fixtures.transformers) / jinja2 \(fixtures.jinja2)")
    }

    private func parseError(_ source: String) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source: source)
            return nil
        } catch let error as ChatTemplateError {
            return error
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    private func renderError(_ source: String, extra: [String: TemplateValue] = [:]) -> ChatTemplateError? {
        do {
            let template = try ChatTemplate(source: source)
            _ = try template.render(messages: Self.conversation, addGenerationPrompt: true, extra: extra)
            return nil
        } catch let error as ChatTemplateError {
            return error
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    private func render(_ source: String, extra: [String: TemplateValue] = [:]) throws -> String {
        try ChatTemplate(source: source).render(messages: Self.conversation, addGenerationPrompt: true,
                                                bosToken: "<s>", eosToken: "</s>", extra: extra)
    }

    func testSyntaxErrorsCarryLineAndColumn() {
        func position(_ error: ChatTemplateError?) -> (Int, Int)? {
            if case let .syntax(_, line, column)? = error { return (line, column) }
            return nil
        }
        // Inside the open parenthesis `}}` is two operators; the first `}` does not match `(`.
        XCTAssertEqual(position(parseError("Hello\n  {{ foo( }}")).map { "\($0.0):\($0.1)" }, "2:11")
        XCTAssertEqual(position(parseError("ab\n\ncd {% for x in y %}{{ x }}")).map { "\($0.0)" }, "3")
        XCTAssertEqual(position(parseError("{% if x %}\n{% endfor %}")).map { "\($0.0):\($0.1)" }, "2:4")
        XCTAssertEqual(position(parseError("é😀 {{ 'unterminated }}")).map { "\($0.0):\($0.1)" }, "1:7")
        XCTAssertEqual(position(parseError("{# never closed")).map { "\($0.0):\($0.1)" }, "1:1")
        XCTAssertEqual(position(parseError("{{ 1 + }}")).map { "\($0.0):\($0.1)" }, "1:8")
        XCTAssertEqual(position(parseError("line\n{% frobnicate %}")).map { "\($0.0):\($0.1)" }, "2:4")
        XCTAssertEqual(position(parseError("{% break %}")).map { "\($0.0)" }, "1")
        XCTAssertEqual(position(parseError("{{ x ) }}")).map { "\($0.0):\($0.1)" }, "1:6")
        if case let .syntax(message, _, _)? = parseError("{% for x in y %}") {
            XCTAssertTrue(message.contains("endfor"), message)
        } else {
            XCTFail("unclosed for should be a syntax error")
        }
        XCTAssertTrue("\(parseError("{{ x ) }}")!)".contains("1:6"))
    }

    func testUnknownFilterTestAndFunctionAreNamed() throws {
        XCTAssertEqual(parseError("ok\n{{ x | nosuchfilter }}"), .unknownFilter(name: "nosuchfilter", line: 2, column: 8))
        XCTAssertEqual(parseError("{{ x is nosuchtest }}"), .unknownTest(name: "nosuchtest", line: 1, column: 9))
        // Inside `if` branches Jinja only fails when the filter runs.
        XCTAssertEqual(try render("{% if false %}{{ x | nosuchfilter }}{% endif %}ok"), "ok")
        XCTAssertEqual(renderError("{% if true %}{{ 1 | nosuchfilter }}{% endif %}"),
                       .unknownFilter(name: "nosuchfilter", line: 1, column: 21))
        XCTAssertEqual(renderError("{{ foo(1) }}"), .unknownFunction(name: "foo", line: 1, column: 4))
        // Jinja has `batch`, this renderer does not: the message says so.
        let unsupported = renderError("{% if true %}{{ [1] | batch(2) }}{% endif %}")
        XCTAssertEqual(unsupported, .unknownFilter(name: "batch", line: 1, column: 23))
        XCTAssertTrue("\(unsupported!)".contains("not support"))
    }

    func testRaiseExceptionAndTypeErrors() {
        XCTAssertEqual(renderError("{{ raise_exception('Bad role: ' ~ messages[1].role) }}"), .raised("Bad role: user"))
        guard case .typeError? = renderError("{{ 'a' + 1 }}") else { return XCTFail("str + int") }
        guard case .undefinedValue? = renderError("{{ missing.attribute }}") else { return XCTFail("undefined.attr") }
        guard case .typeError? = renderError("{{ [1].append(2) }}") else { return XCTFail("sandboxed append") }
        guard case .typeError? = renderError("{% set ns = namespace(_x=1) %}") else { return XCTFail("_ attribute") }
        guard case .typeError? = renderError("{{ 1 // 0 }}") else { return XCTFail("division by zero") }
    }

    func testPublicValuesReachTheTemplate() throws {
        let tools: TemplateValue = [["type": "function", "function": ["name": "get_weather", "zeta": 1, "alpha": nil]]]
        XCTAssertEqual(try render("{{ tools | tojson }}|{{ flag }}|{{ tools[0].function.items() | list }}",
                                  extra: ["tools": tools, "flag": true]),
                       #"[{"type": "function", "function": {"name": "get_weather", "zeta": 1, "alpha": null}}]|True|[('name', 'get_weather'), ('zeta', 1), ('alpha', None)]"#)
        XCTAssertEqual(try render("[{{ u }}]{{ u is defined }}", extra: ["u": .undefined]), "[]False")
        XCTAssertEqual(try render("{{ messages | length }} {{ bos_token }}{{ eos_token }} {{ add_generation_prompt }}"),
                       "4 <s></s> True")
        XCTAssertEqual(TemplateValue.object([("a", 1), ("b", 2)]), TemplateValue.object([("b", 2), ("a", 1)]))
    }

    /// CPU time of this process: the work the renderer did (on its own thread), whatever else the machine runs.
    private func processCPUTime() -> TimeInterval {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return TimeInterval(ts.tv_sec) + TimeInterval(ts.tv_nsec) / 1e9
    }

    /// Runs a template expected to hit a limit; the limit must trip within a second of work.
    private func assertLimit(_ source: String, file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        let cpuStart = processCPUTime()
        var error: ChatTemplateError?
        do {
            let template = try ChatTemplate(source: source)
            _ = try template.render(messages: Self.conversation, addGenerationPrompt: false)
        } catch let e as ChatTemplateError {
            error = e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        let cpu = processCPUTime() - cpuStart
        let wall = Date().timeIntervalSince(start)
        guard case .limitExceeded? = error else {
            return XCTFail("expected limitExceeded, got \(String(describing: error))", file: file, line: line)
        }
        print(String(format: "limit after %.3fs CPU (%.3fs wall): ", cpu, wall) + "\(error!)")
        XCTAssertLessThan(cpu, 1.0, "limit took \(cpu)s of CPU: \(error!)", file: file, line: line)
    }

    func testHostileTemplatesHitLimitsQuickly() {
        assertLimit("{% for i in range(10**9) %}x{% endfor %}")
        assertLimit("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
        assertLimit("{% set ns = namespace(n=0) %}{% for i in range(100000) %}{% for j in range(100000) %}{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}")
        assertLimit("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        assertLimit("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}")
        assertLimit("{{ 'a' * 10**9 }}")
        assertLimit("{{ [0] * 10**8 }}")
        assertLimit("{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}")
        assertLimit("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
        assertLimit("{% set s = 'x' * 4000000 %}{% for i in range(100000) %}{% set t = s ~ '' %}{% endfor %}")
        assertLimit("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}")
        assertLimit("{{ 2 ** 64 }}")
        assertLimit("{{ 9223372036854775807 + 1 }}")
        assertLimit("{{ -9223372036854775807 - 2 }}")
        // 1 MB templates: nesting is bounded at parse time.
        let depth = 1_000_000 / 24
        assertLimit(String(repeating: "{% if true %}", count: depth) + "x" + String(repeating: "{% endif %}", count: depth))
        assertLimit("{{ " + String(repeating: "(", count: 1_000_000) + "1" + String(repeating: ")", count: 1_000_000) + " }}")
        assertLimit("{{ " + String(repeating: "1 + ", count: 250_000) + "1 }}")
        assertLimit("{{ " + String(repeating: "not ", count: 250_000) + "1 }}")
        assertLimit("{{ x" + String(repeating: "|trim", count: 200_000) + " }}")
    }

    /// The deepest nesting the limits allow must not overflow a stack, even when the caller's thread has a
    /// small one (the renderer works on its own thread), both when it ends in a limit and when it succeeds.
    func testDeepNestingFitsASmallStack() throws {
        let deepExpression = String(repeating: "(", count: 250) + "n" + String(repeating: " + 1)", count: 250)
        let cases: [(source: String, expectLimit: Bool)] = [
            ("{% macro f(n) %}{{ f(\(deepExpression)) }}{% endmacro %}{{ f(0) }}", true),
            ("{% macro f(n) %}{% if n < 3 %}{{ f(\(deepExpression)) }}{% endif %}{% endmacro %}{{ f(0) }}", false),
            (String(repeating: "{% if true %}", count: 250) + "{{ " + deepExpression.replacingOccurrences(of: "n", with: "1")
                + " }}" + String(repeating: "{% endif %}", count: 250), false),
            ("{% macro f(n) %}" + String(repeating: "{% if true %}", count: 200) + "{{ f(n + 1) }}"
                + String(repeating: "{% endif %}", count: 200) + "{% endmacro %}{{ f(0) }}", true),
            ("{% set ns = namespace(l=[]) %}{% for i in range(150) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l | tojson }}{{ ns.l }}{{ ns.l == ns.l }}", false),
        ]
        for (source, expectLimit) in cases {
            let outcome = RenderOutcome()
            let thread = Thread {
                do {
                    _ = try ChatTemplate(source: source).render(messages: Self.conversation, addGenerationPrompt: false)
                    outcome.set("ok")
                } catch let error as ChatTemplateError {
                    if case .limitExceeded = error { outcome.set("limit") } else { outcome.set("\(error)") }
                } catch {
                    outcome.set("\(error)")
                }
            }
            thread.stackSize = 256 << 10
            thread.start()
            let deadline = Date().addingTimeInterval(30)
            while outcome.get() == nil && Date() < deadline { usleep(1000) }
            XCTAssertEqual(outcome.get(), expectLimit ? "limit" : "ok", String(source.prefix(80)))
        }
    }

    func testLargeFlatTemplateParsesQuickly() throws {
        let chunk = "text {{ messages[0].role }} {% if add_generation_prompt %}yes{% endif %}\n"
        let source = String(repeating: chunk, count: 1_000_000 / chunk.utf8.count)
        let start = Date()
        let output = try ChatTemplate(source: source).render(messages: Self.conversation, addGenerationPrompt: true)
        // trim_blocks eats the newline after `{% endif %}`.
        XCTAssertTrue(output.hasPrefix("text system yestext system yes"), String(output.prefix(40)))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5.0)
    }

    func testSlicingAndIndexingWithExtremeBoundsIsSafe() throws {
        let extremes = ["-9223372036854775807 - 1", "9223372036854775807", "0", "-1", "1", "none"]
        for a in extremes {
            for b in extremes {
                for c in extremes where c != "0" {
                    let source = "{{ 'héllo'[\(a):\(b):\(c)] }}{{ [1, 2, 3][\(a):\(b):\(c)] }}{{ [1][\(a)] }}{{ 'x'[\(b)] }}"
                    _ = try render(source)
                }
            }
        }
        XCTAssertEqual(try render("{{ [1, 2, 3][::-9223372036854775807 - 1] }}"), "[3]")
        guard case .typeError? = renderError("{{ 'abc'[::0] }}") else { return XCTFail("zero step") }
    }

    /// SplitMix64: a small deterministic generator for the fuzz run.
    private struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func testFuzzedTemplatesNeverCrash() throws {
        var rng = SeededGenerator(state: 0x5EED_CAFE)
        let fixtures = try TestSupport.loadJSON(ChatFixtures.self, "chat/cases.json")
        var seeds = try fixtures.templates.map {
            try String(contentsOf: TestSupport.fixture("chat/\($0.name).jinja"), encoding: .utf8)
        }
        seeds += fixtures.synthetic.map(\.source)
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "{%-", "-%}", "(", ")", "[", "]", "{", "}", "'",
                      "\"", "\\", "|", ".", ",", ":", "=", "==", "*", "**", "/", "//", "%", "~", " ", "\n", "\t",
                      "if", "else", "elif", "endif", "for", "in", "endfor", "set", "endset", "macro", "endmacro",
                      "not", "and", "or", "is", "defined", "none", "true", "loop", "messages", "message", "range",
                      "namespace", "ns", "x", "1", "-1", "0.5", "1e308", "9223372036854775807", "'a'", "\"b\"",
                      "trim", "tojson", "join", "length", "items", "raw", "endraw", "break", "continue", "é", "😀",
                      "\u{0}", "\u{2028}", "10**9", "'x'*99"]
        var cases = 0
        let start = Date()
        for round in 0..<3000 {
            var text: String
            if round % 3 == 0 {
                text = (0..<Int.random(in: 1...40, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }
                    .joined()
            } else {
                var bytes = Array(seeds.randomElement(using: &rng)!.utf8)
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    guard !bytes.isEmpty else { break }
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...20, using: &rng)))
                    case 1: bytes.insert(contentsOf: Array(pieces.randomElement(using: &rng)!.utf8), at: at)
                    case 2:
                        let end = min(bytes.count, at + Int.random(in: 1...200, using: &rng))
                        bytes.insert(contentsOf: Array(bytes[at..<end]), at: Int.random(in: 0...bytes.count, using: &rng))
                    default: bytes[at] = UInt8.random(in: 0x20...0x7E, using: &rng)
                    }
                }
                text = String(decoding: bytes, as: UTF8.self)
            }
            guard let template = try? ChatTemplate(source: text) else { continue }
            cases += 1
            _ = try? template.render(messages: Self.conversation, addGenerationPrompt: round % 2 == 0,
                                     bosToken: "<s>", eosToken: "</s>")
        }
        print("fuzz: 3000 templates, \(cases) parsed and rendered, \(Date().timeIntervalSince(start))s")
    }
}
