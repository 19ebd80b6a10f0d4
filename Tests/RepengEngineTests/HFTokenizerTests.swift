// Golden tests: tokenizer.json folders against the tokenizers library (scripts/reference/make_hf_tokenizer_fixtures.py), plus hostile files.
import Foundation
import XCTest

@testable import RepengEngine

/// expected.json of one fixture folder.
struct HFTokenizerFixture: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let ids_plain: [Int32]
        let decoded: String
        let decoded_skip: String
    }
    struct Decode: Decodable {
        let ids: [Int32]
        let decoded: String
        let decoded_skip: String
    }
    let name: String
    let transformers: String
    let tokenizers: String
    let vocab_size: Int
    let bos_id: Int32?
    let eos_id: Int32?
    let chat_template: String?
    let cases: [Case]
    let decodes: [Decode]
}

final class HFTokenizerTests: XCTestCase {
    static let fixturesDir = TestSupport.fixture("tokenizers")

    private func show(_ ids: [Int32]) -> String { ids.map(String.init).joined(separator: " ") }

    private func same(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

    /// Fixture folders whose name passes `include`, sorted.
    private func folders(_ include: (String) -> Bool) throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixturesDir.path)
        return names.filter(include).sorted().map { Self.fixturesDir.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("expected.json").path) }
    }

    /// Checks one folder; returns the number of strings compared.
    @discardableResult
    private func check(_ folder: URL) throws -> Int {
        let name = folder.lastPathComponent
        let tok = try makeTokenizer(huggingFaceFolder: folder.path)
        let data = try Data(contentsOf: folder.appendingPathComponent("expected.json"))
        let fixture = try JSONDecoder().decode(HFTokenizerFixture.self, from: data)
        var failures = 0
        func fail(_ message: String) {
            failures += 1
            if failures <= 8 { XCTFail("\(name): \(message)") }
        }
        var ids = 0, plain = 0, decodes = 0
        for c in fixture.cases {
            let a = tok.encode(c.text, addSpecial: true)
            let b = tok.encode(c.text, addSpecial: false)
            if a == c.ids { ids += 1 } else { fail("ids for \(c.text.debugDescription):\n ours \(show(a))\n HF   \(show(c.ids))") }
            if b == c.ids_plain { plain += 1 } else { fail("plain ids for \(c.text.debugDescription):\n ours \(show(b))\n HF   \(show(c.ids_plain))") }
            let d = tok.decode(c.ids, skipSpecial: false), ds = tok.decode(c.ids, skipSpecial: true)
            if same(d, c.decoded) && same(ds, c.decoded_skip) {
                decodes += 1
            } else {
                fail("decode of \(show(c.ids)):\n ours \(d.debugDescription) / \(ds.debugDescription)\n HF   \(c.decoded.debugDescription) / \(c.decoded_skip.debugDescription)")
            }
        }
        var sequences = 0
        for d in fixture.decodes {
            let a = tok.decode(d.ids, skipSpecial: false), b = tok.decode(d.ids, skipSpecial: true)
            if same(a, d.decoded) && same(b, d.decoded_skip) {
                sequences += 1
            } else {
                fail("decode of \(show(d.ids)):\n ours \(a.debugDescription) / \(b.debugDescription)\n HF   \(d.decoded.debugDescription) / \(d.decoded_skip.debugDescription)")
            }
        }
        XCTAssertEqual(tok.vocabularySize, fixture.vocab_size, "\(name) vocabulary size")
        XCTAssertEqual(tok.bosID, fixture.bos_id, "\(name) BOS")
        XCTAssertEqual(tok.eosID, fixture.eos_id, "\(name) EOS")
        XCTAssertEqual(tok.chatTemplate, fixture.chat_template, "\(name) chat template")
        let n = fixture.cases.count
        print("HFTokenizer \(name): \(n) strings compared; ids (add special) \(ids)/\(n), ids (plain) \(plain)/\(n), decodes \(decodes)/\(n), id-sequence decodes \(sequences)/\(fixture.decodes.count) identical to tokenizers \(fixture.tokenizers)")
        return n
    }

    /// Tokenizers trained by the fixture script, one per pipeline kind.
    func testTrainedTokenizersMatchTokenizersLibrary() throws {
        let list = try folders { !$0.hasPrefix("hf_") && $0 != "smollm2" }
        XCTAssertGreaterThanOrEqual(list.count, 15)
        var total = 0
        for folder in list { total += try check(folder) }
        print("HFTokenizer trained: \(total) strings over \(list.count) tokenizers")
    }

    /// The tiny model tokenizers (gpt2, qwen2, qwen3, mistral, phi3, gemma2), when generated.
    func testTinyModelTokenizersMatchTokenizersLibrary() throws {
        let list = try folders { $0.hasPrefix("hf_") }
        if list.isEmpty { throw XCTSkip("no hf_<family> fixtures (the tiny model tokenizers were not there when the fixtures were made)") }
        for folder in list { try check(folder) }
    }

    /// SmolLM2's tokenizer as transformers exports it from the GGUF.
    func testSmolLM2TokenizerJSONMatchesTokenizersLibrary() throws {
        let folder = Self.fixturesDir.appendingPathComponent("smollm2")
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path) else {
            throw XCTSkip("Fixtures/tokenizers/smollm2/tokenizer.json missing")
        }
        XCTAssertGreaterThanOrEqual(try check(folder), 200)
    }

    func testChatTemplates() throws {
        // chat_template.jinja wins over tokenizer_config.json's chat_template.
        let qwen = try makeTokenizer(huggingFaceFolder: Self.fixturesDir.appendingPathComponent("qwen2_style").path)
        XCTAssertEqual(qwen.chatTemplate?.hasPrefix("{% for message in messages %}"), true)
        // A list of named templates: the "default" one.
        let smol = try makeTokenizer(huggingFaceFolder: Self.fixturesDir.appendingPathComponent("smollm_style").path)
        XCTAssertEqual(smol.chatTemplate?.hasPrefix("{% for message in messages %}"), true)
        XCTAssertNil(try makeTokenizer(huggingFaceFolder: Self.fixturesDir.appendingPathComponent("no_decoder").path).chatTemplate)
    }

    /// tokenizer_config.json's add_bos_token / add_eos_token where tokenizer.json has no post-processor.
    func testConfigFlagsAddBOSAndEOS() throws {
        let tok = try makeTokenizer(huggingFaceFolder: Self.fixturesDir.appendingPathComponent("mistral_metaspace").path)
        let plain = tok.encode("Hello world", addSpecial: false)
        XCTAssertEqual(tok.encode("Hello world", addSpecial: true), [tok.bosID!] + plain + [tok.eosID!])
        XCTAssertEqual(tok.tokenID("<s>"), tok.bosID)
        XCTAssertTrue(tok.isSpecial(tok.bosID!))
        XCTAssertFalse(tok.isSpecial(plain[0]))
    }

    /// Streaming decode equals the full decode for byte-level and byte-fallback tokenizers.
    func testIncrementalDecodeEqualsFullDecode() throws {
        for name in ["gpt2_bytelevel", "llama3_style", "qwen2_style", "gemma_style", "llama2_metaspace"] {
            let folder = Self.fixturesDir.appendingPathComponent(name)
            let tok = try makeTokenizer(huggingFaceFolder: folder.path)
            let fixture = try JSONDecoder().decode(HFTokenizerFixture.self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))
            var matched = 0
            for c in fixture.cases {
                for skip in [false, true] {
                    var d = IncrementalDecoder(tokenizer: tok, skipSpecial: skip)
                    var text = ""
                    for id in c.ids { text += d.append(id) }
                    text += d.flush()
                    if same(text, tok.decode(c.ids, skipSpecial: skip)) { matched += 1 } else {
                        XCTFail("\(name) streamed \(show(c.ids)): \(text.debugDescription) vs \(tok.decode(c.ids, skipSpecial: skip).debugDescription)")
                    }
                }
            }
            print("HFTokenizer \(name): streaming decode equals full decode \(matched)/\(2 * fixture.cases.count)")
        }
    }

    // MARK: hostile input

    private func tempFolder(_ files: [String: [UInt8]]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hftok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: dir.appendingPathComponent(name)) }
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func error(_ files: [String: [UInt8]]) throws -> TokenizerError? {
        let dir = try tempFolder(files)
        do {
            _ = try makeTokenizer(huggingFaceFolder: dir.path)
            return nil
        } catch let e as TokenizerError {
            return e
        }
    }

    private func error(json: String) throws -> TokenizerError? { try error(["tokenizer.json": Array(json.utf8)]) }

    /// A small valid tokenizer.json with `edit` applied to its text.
    private func minimal(_ edit: (String) -> String = { $0 }) -> String {
        edit(#"""
        {"version":"1.0","added_tokens":[{"id":0,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
         "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
         "post_processor":null,"decoder":{"type":"ByteLevel"},
         "model":{"type":"BPE","dropout":null,"unk_token":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
                  "vocab":{"<s>":0,"h":1,"i":2,"hi":3,"Ġ":4},"merges":["h i"]}}
        """#)
    }

    func testMinimalTokenizerWorks() throws {
        let dir = try tempFolder(["tokenizer.json": Array(minimal().utf8)])
        let tok = try makeTokenizer(huggingFaceFolder: dir.path)
        XCTAssertEqual(tok.encode("hi <s>hi", addSpecial: true), [3, 4, 0, 3])
        XCTAssertEqual(tok.decode([3, 4, 0, 3], skipSpecial: true), "hi hi")
        XCTAssertEqual(tok.vocabularySize, 5)
        XCTAssertEqual(tok.bosID, nil)
    }

    /// BPEDecoder and Strip, with the results tokenizers 0.23.3 gives (where it gives one: its
    /// Strip panics when `stop` exceeds a token's length, which here leaves that token empty).
    func testSuffixAndStripDecoders() throws {
        let json = #"""
        {"added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,
         "decoder":{"type":"Sequence","decoders":[{"type":"BPEDecoder","suffix":"</w>"},{"type":"Strip","content":"x","start":2,"stop":3}]},
         "model":{"type":"BPE","vocab":{"he":0,"llo</w>":1,"wor":2,"ld</w>":3,"xxaxx":4,"x":5,"</w>":6},"merges":[]}}
        """#
        let tok = try makeTokenizer(huggingFaceFolder: tempFolder(["tokenizer.json": Array(json.utf8)]).path)
        XCTAssertEqual(tok.decode([0, 1, 2, 3], skipSpecial: false), "hello world")
        XCTAssertEqual(tok.decode([4, 0, 1], skipSpecial: false), "ahello")
        XCTAssertEqual(tok.decode([5, 6, 5], skipSpecial: false), " ")
    }

    func testHostileFilesAreTypedErrors() throws {
        // Missing file, garbage, truncation, deep nesting, wrong top level.
        let missing = try error([:])
        guard case .fileUnreadable? = missing else { return XCTFail("missing tokenizer.json: \(String(describing: missing))") }
        for garbage in [[UInt8](repeating: 0xFF, count: 100), Array("{\"model\": ".utf8), Array(minimal().utf8.prefix(200)), []] {
            let e = try error(["tokenizer.json": garbage])
            guard case .invalidJSON? = e else { return XCTFail("garbage: \(String(describing: e))") }
        }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        guard case .invalidJSON? = try error(json: deep) else { return XCTFail("deep nesting") }
        guard case .invalidValue(_, "(top level)", _)? = try error(json: "[1, 2]") else { return XCTFail("array at top level") }
        guard case .invalidValue(_, "model", _)? = try error(json: "{}") else { return XCTFail("no model") }

        // Unknown component types name the type and where it is.
        let cases: [(String, String, String)] = [
            (#""normalizer":null"#, #""normalizer":{"type":"Precompiled","precompiled_charsmap":""}"#, "normalizer"),
            (#""normalizer":null"#, #""normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Frobnicate"}]}"#, "normalizer.normalizers[1]"),
            (#""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#,
             #""pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"UnicodeScripts"}]}"#,
             "pre_tokenizer.pretokenizers[1]"),
            (#""decoder":{"type":"ByteLevel"}"#, #""decoder":{"type":"CTC"}"#, "decoder"),
            (#""post_processor":null"#, #""post_processor":{"type":"Mystery"}"#, "post_processor"),
            (#""type":"BPE","dropout""#, #""type":"Unigram","dropout""#, "model"),
        ]
        for (old, new, key) in cases {
            let e = try error(json: minimal { $0.replacingOccurrences(of: old, with: new) })
            guard case .unsupportedComponent(let f, key, _)? = e, f.hasSuffix("tokenizer.json") else {
                XCTFail("\(new): \(String(describing: e))")
                continue
            }
            XCTAssertTrue(e!.description.contains("tokenizer.json"), e!.description)
        }
        // Merges naming unknown tokens, malformed merges, bad ids, bad regexes, bad templates.
        let wrong: [(String, String)] = [
            (#"["h i"]"#, #"["h x"]"#),
            (#"["h i"]"#, #"["i h"]"#),
            (#"["h i"]"#, #"["h  i"]"#),
            (#"["h i"]"#, #"[["h"]]"#),
            (#"["h i"]"#, #"7"#),
            (#""hi":3"#, #""hi":-3"#),
            (#""hi":3"#, #""hi":2147483648"#),
            (#""hi":3"#, #""hi":2000000000"#),
            (#""hi":3"#, #""hi":"3""#),
            (#""use_regex":true}"#, #""use_regex":true},"x":{"#),
            (#""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#,
             #""pre_tokenizer":{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false}"#),
            (#""pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#,
             #""pre_tokenizer":{"type":"Split","pattern":{"Regex":"a"},"behavior":"Sideways","invert":false}"#),
            (#""post_processor":null"#, #""post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>","type_id":0}}],"pair":[],"special_tokens":{}}"#),
            (#""post_processor":null"#, #""post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[99],"tokens":["<s>"]}}}"#),
            (#""decoder":{"type":"ByteLevel"}"#, #""decoder":{"type":"Strip","content":"ab","start":1,"stop":0}"#),
            (#""continuing_subword_prefix""#, #""x""#),
            (#""dropout":null"#, ###""dropout":null,"continuing_subword_prefix":"##""###),
            (#""added_tokens":["#, #""added_tokens":[{"id":-1,"content":"x"},"#),
        ]
        for (old, new) in wrong {
            let text = minimal { $0.replacingOccurrences(of: old, with: new) }
            if text == minimal() { continue }
            let e = try error(json: text)
            XCTAssertNotNil(e, "accepted: \(new)")
            if let e { XCTAssertFalse(e.description.isEmpty) }
        }
        if case .unknownToken(_, let key, let token)? = try error(json: minimal { $0.replacingOccurrences(of: #"["h i"]"#, with: #"["h x"]"#) }) {
            XCTAssertEqual(key, "model.merges[0]")
            XCTAssertEqual(token, "x")
        } else {
            XCTFail("merge with an unknown token")
        }
        // Oversized files are refused before parsing.
        let dir = try tempFolder(["tokenizer.json": Array(repeating: 0x20, count: 4096)])
        XCTAssertThrowsError(try HFFiles.read(dir.appendingPathComponent("tokenizer.json").path, limit: 1024)) {
            guard case .fileUnreadable? = $0 as? TokenizerError else { return XCTFail("\($0)") }
        }
        // A bad tokenizer_config.json or chat template.
        guard case .invalidJSON? = try error(["tokenizer.json": Array(minimal().utf8), "tokenizer_config.json": Array("{".utf8)]) else {
            return XCTFail("bad config")
        }
        guard case .invalidValue(_, "add_bos_token", _)? = try error(["tokenizer.json": Array(minimal().utf8), "tokenizer_config.json": Array(#"{"add_bos_token": "yes"}"#.utf8)]) else {
            return XCTFail("bad flag")
        }
        guard case .fileUnreadable? = try error(["tokenizer.json": Array(minimal().utf8), "chat_template.jinja": [0xC3, 0x28]]) else {
            return XCTFail("bad jinja")
        }
    }

    /// Random byte mutations of a real tokenizer.json never crash: each either loads (and then
    /// encodes and decodes) or throws a `TokenizerError`.
    func testMutatedTokenizerJSONNeverCrashes() throws {
        var seedState: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seedState &+= 0x9E37_79B9_7F4A_7C15
            var z = seedState
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var loaded = 0, refused = 0
        for name in ["no_decoder", "metaspace_first_strip", "split_contiguous"] {
            let base = try [UInt8](Data(contentsOf: Self.fixturesDir.appendingPathComponent(name).appendingPathComponent("tokenizer.json")))
            // Mutate mostly the head, where the components live, rather than the vocabulary.
            let head = base.firstIndex(of: UInt8(ascii: "v")).map { min(base.count, $0 + 2000) } ?? base.count
            for _ in 0 ..< 60 {
                var bytes = base
                for _ in 0 ..< Int(next() % 4) + 1 {
                    let at = Int(next() % UInt64(min(head, bytes.count)))
                    let punctuation = Array("{}[]\",:0-9aeE\\".utf8)
                    switch next() % 4 {
                    case 0: bytes[at] = UInt8(truncatingIfNeeded: next())
                    case 1: bytes.remove(at: at)
                    case 2: bytes.insert(punctuation[Int(next() % UInt64(punctuation.count))], at: at)
                    default: bytes[at] = UInt8(ascii: "0") + UInt8(next() % 10)
                    }
                }
                guard let root = (try? JSONReader.parse(bytes))?.object else {
                    refused += 1
                    continue
                }
                do {
                    let tok = try makeTokenizer(tokenizerJSON: root)
                    for text in ["Hello world 123!", "  ", "", "日本語 😀", String(repeating: "ab ", count: 50)] {
                        let ids = tok.encode(text, addSpecial: true)
                        _ = tok.decode(ids, skipSpecial: false)
                        _ = tok.decode([0, 1, 2, -5, Int32.max], skipSpecial: true)
                        var d = IncrementalDecoder(tokenizer: tok, skipSpecial: false)
                        for id in ids { _ = d.append(id) }
                    }
                    loaded += 1
                } catch is TokenizerError {
                    refused += 1
                }
            }
        }
        print("HFTokenizer mutations: \(loaded) loaded, \(refused) refused (invalid JSON or a TokenizerError), none crashed")
    }
}
