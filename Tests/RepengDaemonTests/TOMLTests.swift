// The config file's TOML reader: values, tables and their rules, and refusals with a position.
import XCTest
@testable import RepengDaemon

final class TOMLTests: XCTestCase {
    func parse(_ text: String) throws -> TOMLTable { try TOML.parse(text) }

    func refuses(_ text: String, _ fragment: String, line: Int = 1, file: StaticString = #filePath, fileLine: UInt = #line) {
        do {
            let t = try TOML.parse(text)
            XCTFail("accepted \(text.debugDescription) as \(t)", file: file, line: fileLine)
        } catch {
            XCTAssertTrue(error.message.contains(fragment), "\(text.debugDescription): \(error)", file: file, line: fileLine)
            XCTAssertEqual(error.line, line, "\(text.debugDescription): \(error)", file: file, line: fileLine)
        }
    }

    func testScalars() throws {
        let t = try parse("a = 1\nb = 0xff_ff  # comment\n")
        XCTAssertEqual(t["a"], .integer(1))
        XCTAssertEqual(t["b"], .integer(0xffff))
        let u = try parse("""
            i = +1_000
            n = -9223372036854775808
            o = 0o17
            bin = 0b101
            f = 6.5e-3
            g = -1E2
            h = 1_0.2_5
            z = -0.0
            inf = -inf
            nan = +nan
            yes = true
            no = false
            """)
        XCTAssertEqual(u.keys, ["i", "n", "o", "bin", "f", "g", "h", "z", "inf", "nan", "yes", "no"])
        XCTAssertEqual(u["i"], .integer(1000))
        XCTAssertEqual(u["n"], .integer(Int.min))
        XCTAssertEqual(u["o"], .integer(15))
        XCTAssertEqual(u["bin"], .integer(5))
        XCTAssertEqual(u["f"], .float(6.5e-3))
        XCTAssertEqual(u["g"], .float(-100))
        XCTAssertEqual(u["h"], .float(10.25))
        XCTAssertEqual(u["inf"], .float(-.infinity))
        XCTAssertTrue(u["nan"]?.double?.isNaN == true)
        XCTAssertEqual(u["yes"], .bool(true))
        XCTAssertEqual(u["no"], .bool(false))
    }

    func testStrings() throws {
        let t = try parse(#"""
            basic = "tab\there \"q\" \\ \u00e9 \U0001F600"
            literal = 'C:\path\n'
            ml = """
            one
            two \
                three"""
            mll = '''
            raw \n ''quotes'''''
            "quoted key" = 1
            'single' = 2
            "" = 3
            """#)
        XCTAssertEqual(t["basic"], .string("tab\there \"q\" \\ é 😀"))
        XCTAssertEqual(t["literal"], .string(#"C:\path\n"#))
        XCTAssertEqual(t["ml"], .string("one\ntwo three"))
        XCTAssertEqual(t["mll"], .string(#"raw \n ''quotes''"#))
        XCTAssertEqual(t["quoted key"], .integer(1))
        XCTAssertEqual(t["single"], .integer(2))
        XCTAssertEqual(t[""], .integer(3))
        XCTAssertEqual(try parse("a = \"x\"\r\nb = 2\r\n")["b"], .integer(2))
    }

    func testTablesAndArrays() throws {
        let t = try parse("""
            top = [1, "two", [3.0], {x = 1}, ]
            multi = [
              1, # one
              2,
            ]
            [server]
            host.name = "h"
            host.port = 1
            [server.host.tls]
            on = true
            [[model]]
            name = "a"
            [model.extra]
            k = 1
            [[model]]
            name = "b"
            [[model]]
            [a.b.c]
            [a]
            d = {e.f = 1}
            """)
        XCTAssertEqual(t.keys, ["top", "multi", "server", "model", "a"])
        XCTAssertEqual(t["top"]?.array?.count, 4)
        XCTAssertEqual(t["top"]?.array?[3].table?["x"], .integer(1))
        XCTAssertEqual(t["multi"], .array([.integer(1), .integer(2)]))
        let host = t["server"]?.table?["host"]?.table
        XCTAssertEqual(host?["name"], .string("h"))
        XCTAssertEqual(host?["tls"]?.table?["on"], .bool(true))
        let models = t["model"]?.array
        XCTAssertEqual(models?.count, 3)
        XCTAssertEqual(models?[0].table?["extra"]?.table?["k"], .integer(1))
        XCTAssertEqual(models?[1].table?["name"], .string("b"))
        XCTAssertEqual(models?[2].table?.keys, [])
        XCTAssertEqual(t["a"]?.table?["d"]?.table?["e"]?.table?["f"], .integer(1))
        XCTAssertNotNil(t["a"]?.table?["b"]?.table?["c"]?.table)
    }

    func testRefusals() {
        refuses("a = 1\na = 2", "defined twice", line: 2)
        refuses("a.b = 1\na = 2", "defined twice", line: 2)
        refuses("[t]\n[t]", "defined twice", line: 2)
        refuses("[t]\nx.y = 1\n[t.x]", "defined twice", line: 3)
        refuses("[a.b]\n[a]\nb.c = 1", "dotted key cannot extend", line: 3)
        refuses("t = {x = 1}\n[t]", "defined twice", line: 2)
        refuses("t = {x = 1}\n[t.y]", "inline table", line: 2)
        refuses("t = {x = 1}\nt.y = 2", "inline table", line: 2)
        refuses("t = {x = 1,}", "trailing comma")
        refuses("t = {x = 1\n}", "expected ',' or '}'")
        refuses("a = [1]\n[[a]]", "already has a value", line: 2)
        refuses("[[a]]\n[a]", "array of tables", line: 2)
        refuses("[a]\n[[a]]", "not an array of tables", line: 2)
        refuses("a = 1\n[a.b]", "is a value", line: 2)
        refuses("a = 01", "not a valid value")
        refuses("a = 1__0", "not a valid value")
        refuses("a = 9223372036854775808", "does not fit in 64 bits")
        refuses("a = -0x1", "not a valid value")
        refuses("a = 1.", "not a valid value")
        refuses("a = .5", "not a valid value")
        refuses("a = 1e", "not a valid value")
        refuses("a = TRUE", "not a valid value")
        refuses("a = bare", "strings need quotes")
        refuses("a = 1979-05-27", "date or time")
        refuses("a = 07:32:00", "date or time")
        refuses("a = \"open", "not closed")
        refuses("a = \"a\nb\"", "line break in a single-line string")
        refuses("a = \"\\x41\"", "\\x is not a TOML escape")
        refuses("a = \"\\uD800\"", "not a Unicode scalar value")
        refuses("a = \"\u{01}\"", "control character 0x1")
        refuses("a = '''x''''''", "at most five")
        refuses("# \u{7f}\n", "in a comment")
        refuses("a = 1\r", "carriage return")
        refuses("a = 1 b = 2", "expected the end of the line")
        refuses("[a\n", "to close the table header")
        refuses("[[a]\n", "to close the table header")
        refuses("[é]", "expected a key, found a non-ASCII character")
        refuses("= 1", "expected a key")
        refuses("a =", "expected a value")
        refuses("a = [1 2]", "expected ',' or ']'")
        refuses("a = [\n1,\n", "not closed", line: 1)
        refuses("a = [}", "expected a value")
        refuses("\n\nx = {a = [}", "expected a value", line: 3)
    }

    func testNestingIsBounded() {
        let deep = String(repeating: "[", count: 100_000)
        refuses("a = " + deep, "nested deeper than \(TOML.maxDepth)")
        refuses("a = " + String(repeating: "{b = ", count: 1000), "nested deeper than \(TOML.maxDepth)")
        refuses("[" + Array(repeating: "k", count: 1000).joined(separator: ".") + "]", "more than \(TOML.maxDepth) parts")
        refuses(Array(repeating: "k", count: 40).joined(separator: ".") + " = 1\n[" + Array(repeating: "k", count: 40).joined(separator: ".") + "]",
                "already has a value", line: 2)
        XCTAssertNoThrow(try parse("a = " + String(repeating: "[", count: 60) + String(repeating: "]", count: 60)))
    }
}
