// Model-free tokenizer tests: pre-tokenizer scanners, the BPE merge loop, tiny vocabularies, errors.
import Foundation
import XCTest

@testable import RepengEngine

final class TokenizerTests: XCTestCase {
    struct PreTokenizerFixture: Decodable {
        let tokenizers: String
        let corpus: [String]
        let pieces: [String: [[String]]]
    }

    /// Pieces the scanner cuts `text` into.
    private func pieces(_ kind: PreTokenizerKind, _ text: String) -> [String] {
        var scalars: [UInt32] = [], classes: [UInt8] = [], offsets: [Int] = []
        var copy = text
        copy.withUTF8 { UTF8Util.decodeValid($0, scalars: &scalars, classes: &classes, offsets: &offsets) }
        var out: [String] = []
        scalars.withUnsafeBufferPointer { s in
            classes.withUnsafeBufferPointer { c in
                PreTokenizerScanner(kind: kind).split(scalars: s, classes: c, range: 0 ..< s.count) { r in
                    var piece = String.UnicodeScalarView()
                    for v in s[r] { piece.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
                    out.append(String(piece))
                }
            }
        }
        return out
    }

    func testPreTokenizersMatchRegexSplits() throws {
        let fixture = try TestSupport.loadJSON(PreTokenizerFixture.self, "tokenizer/pretokenizers.json")
        XCTAssertEqual(Set(fixture.pieces.keys), ["gpt-2", "llama-bpe", "qwen2", "smollm"])
        for (name, expected) in fixture.pieces.sorted(by: { $0.key < $1.key }) {
            let kind = try XCTUnwrap(PreTokenizerKind(ggmlPre: name))
            var matched = 0
            for (text, want) in zip(fixture.corpus, expected) {
                let got = pieces(kind, text)
                let same = got.count == want.count
                    && zip(got, want).allSatisfy { $0.unicodeScalars.elementsEqual($1.unicodeScalars) }
                if same { matched += 1 } else {
                    XCTFail("\(name) split of \(text.debugDescription):\n ours \(got.map(\.debugDescription))\n HF   \(want.map(\.debugDescription))")
                }
            }
            print("pre-tokenizer \(name): \(matched)/\(fixture.corpus.count) strings split like tokenizers \(fixture.tokenizers)")
        }
    }

    func testPreTokenizerNames() {
        XCTAssertEqual(PreTokenizerKind(ggmlPre: nil), .gpt2)
        XCTAssertEqual(PreTokenizerKind(ggmlPre: "default"), .gpt2)
        XCTAssertEqual(PreTokenizerKind(ggmlPre: "gpt-2"), .gpt2)
        XCTAssertEqual(PreTokenizerKind(ggmlPre: "smollm"), .digitsThenGPT2)
        XCTAssertEqual(PreTokenizerKind(ggmlPre: "llama-bpe"), .llama3)
        XCTAssertEqual(PreTokenizerKind(ggmlPre: "qwen2"), .qwen2)
        XCTAssertNil(PreTokenizerKind(ggmlPre: "tekken"))
        XCTAssertEqual(pieces(.gpt2, "I'm  fine!\n"), ["I", "'m", " ", " fine", "!", "\n"])
        XCTAssertEqual(pieces(.llama3, "I'M 12345\r\n\nok"), ["I", "'M", " ", "123", "45", "\r\n\n", "ok"])
        XCTAssertEqual(pieces(.digitsThenGPT2, "a 123"), ["a", " ", "1", "2", "3"])
    }

    /// A ranker over random small ids, for comparing the heap merge loop with the O(n²) reference.
    struct RandomRanker: BPEPairRanker {
        let table: [UInt64: (BPERank, Int32)]
        func merge(_ left: Int32, _ right: Int32) -> (rank: BPERank, merged: Int32)? {
            table[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))].map { ($0.0, $0.1) }
        }
    }

    func testHeapMergeMatchesScanningReference() {
        var rng = SystemRandomNumberGenerator()
        var workspace = BPEWorkspace()
        for trial in 0 ..< 300 {
            // Few symbols and many merges so that ties and chains are frequent.
            let alphabet = Int32(2 + trial % 5)
            var table: [UInt64: (BPERank, Int32)] = [:]
            var next = alphabet
            for _ in 0 ..< 40 {
                let a = Int32.random(in: 0 ..< next, using: &rng), b = Int32.random(in: 0 ..< next, using: &rng)
                table[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] = (BPERank(UInt64.random(in: 0 ..< 20, using: &rng)), next)
                next += 1
            }
            let ranker = RandomRanker(table: table)
            var fast = (0 ..< Int.random(in: 0 ... 40, using: &rng)).map { _ in Int32.random(in: 0 ..< alphabet, using: &rng) }
            var slow = fast
            BPE.merge(&fast, ranker: ranker, workspace: &workspace)
            BPE.mergeByScanning(&slow, ranker: ranker)
            XCTAssertEqual(fast, slow)
        }
    }

    /// A tiny byte-level vocabulary: the 256 byte characters, a few merges, two control tokens.
    private func tinyByteLevel(pre: String = "gpt-2") -> TokenizerVocabulary {
        var tokens = (0 ..< 256).map { String(Character(Unicode.Scalar(ByteUnicode.characterForByte[$0]) ?? "?")) }
        tokens += ["he", "ll", "hell", "hello", "Ġw", "Ġwor", "Ġworld", "<|end|>", "<x>"]
        var types = [Int32](repeating: GGUFTokenType.normal, count: tokens.count)
        types[tokens.count - 2] = GGUFTokenType.control
        types[tokens.count - 1] = GGUFTokenType.userDefined
        return TokenizerVocabulary(
            model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types,
            merges: ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor ld", "Ġwor l", "Ġworl d"],
            bosID: 263, eosID: 263, addBOS: false)
    }

    func testTinyByteLevelVocabulary() throws {
        var vocab = tinyByteLevel()
        // "Ġwo" is not a token: the merge making it is rejected.
        XCTAssertThrowsError(try makeTokenizer(vocab)) { error in
            XCTAssertEqual(error as? TokenizerError, .mergeTokenNotInVocabulary(index: 5, token: "Ġwo"))
        }
        vocab.merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw or", "o r", "Ġwor ld", "l d"]
        vocab.tokens[0] = "or"  // reuse byte 0's slot for "or"; byte 0 then has no token
        vocab.tokens[1] = "ld"
        let tok = try makeTokenizer(vocab)
        let hello = Int32(259), world = Int32(262)
        XCTAssertEqual(tok.encode("hello world", addSpecial: false), [hello, world])
        XCTAssertEqual(tok.encode("hello<|end|> world<x>", addSpecial: true), [hello, 263, world, 264])
        XCTAssertEqual(tok.decode([hello, 263, world], skipSpecial: true), "hello world")
        XCTAssertEqual(tok.decode([hello, 263, world], skipSpecial: false), "hello<|end|> world")
        XCTAssertTrue(tok.isSpecial(263))
        XCTAssertFalse(tok.isSpecial(264))
        // Byte 0x00 has no token and is dropped, like HF's BPE without an unknown token.
        XCTAssertEqual(tok.encode("\u{0}", addSpecial: false), [])
        XCTAssertEqual(tok.tokenID("Ġworld"), world)
        XCTAssertEqual(tok.tokenBytes(world), Array(" world".utf8))
        XCTAssertEqual(tok.decode([-1, 9999, hello], skipSpecial: false), "hello")
    }

    /// A tiny SentencePiece vocabulary with byte fallback, in the Gemma and the Llama flavors.
    private func tinySentencePiece(architecture: String) -> TokenizerVocabulary {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
        tokens += (0 ..< 256).map { String(format: "<0x%02X>", $0) }
        tokens += ["▁", "a", "b", "c", "ab", "▁a", "▁ab", "bc", "abc", "  ", "\n"]
        var types = [Int32](repeating: GGUFTokenType.normal, count: tokens.count)
        for i in 0 ..< 4 { types[i] = GGUFTokenType.control }
        for i in 4 ..< 260 { types[i] = GGUFTokenType.byte }
        types[tokens.count - 2] = GGUFTokenType.userDefined
        types[tokens.count - 1] = GGUFTokenType.userDefined
        let scores = tokens.indices.map { -Float($0) }
        return TokenizerVocabulary(
            model: "llama", pre: "default", architecture: architecture, tokens: tokens, scores: scores,
            tokenTypes: types, bosID: 2, eosID: 1, unkID: 3, padID: 0, addBOS: nil, addEOS: nil)
    }

    func testTinySentencePieceVocabulary() throws {
        let gemma = try makeTokenizer(tinySentencePiece(architecture: "gemma3"))
        let id = { (s: String) -> Int32 in gemma.tokenID(s) ?? -1 }
        // BOS by default; "▁ab" (id order) beats "▁a" + "b"; "é" falls back to its two bytes.
        XCTAssertEqual(gemma.encode(" abc", addSpecial: true), [2, id("▁ab"), id("c")])
        XCTAssertEqual(gemma.encode("é", addSpecial: false), [4 + 0xC3, 4 + 0xA9])
        XCTAssertEqual(gemma.decode([4 + 0xC3, 4 + 0xA9], skipSpecial: false), "é")
        XCTAssertEqual(gemma.decode([4 + 0xC3, id("a")], skipSpecial: false), "\u{FFFD}a")
        XCTAssertEqual(gemma.decode([2, id("▁a"), 1], skipSpecial: true), " a")
        // Gemma re-spells "  " as "▁▁", an ordinary token then, while "\n" is an added token.
        XCTAssertEqual(gemma.encode("a  \nb", addSpecial: false), [id("a"), 269, 270, id("b")])
        XCTAssertEqual(gemma.tokenID("  "), 269)
        XCTAssertEqual(gemma.tokenID("▁▁"), 269)
        XCTAssertEqual(gemma.decode([269], skipSpecial: false), "  ")

        let llama = try makeTokenizer(tinySentencePiece(architecture: "llama"))
        // Metaspace prefix at the start of the input, and "  " stays an added token.
        XCTAssertEqual(llama.encode("abc", addSpecial: true), [2, id("▁ab"), id("c")])
        XCTAssertEqual(llama.encode("a  b", addSpecial: false), [id("▁a"), 269, id("b")])
        XCTAssertEqual(llama.decode([id("▁ab"), id("c")], skipSpecial: false), "abc")
    }

    func testErrors() throws {
        XCTAssertThrowsError(try makeTokenizer(TokenizerVocabulary(model: "bert", tokens: ["a"]))) {
            XCTAssertEqual($0 as? TokenizerError, .unsupportedModel("bert"))
        }
        XCTAssertThrowsError(try makeTokenizer(TokenizerVocabulary(model: "gpt2", tokens: []))) {
            XCTAssertEqual($0 as? TokenizerError, .badVocabularySize(0))
        }
        XCTAssertThrowsError(try makeTokenizer(tinyByteLevel(pre: "tekken"))) {
            XCTAssertEqual($0 as? TokenizerError, .unsupportedPreTokenizer("tekken"))
        }
        var v = tinyByteLevel()
        v.merges = nil
        XCTAssertThrowsError(try makeTokenizer(v)) { XCTAssertEqual($0 as? TokenizerError, .missingMerges) }
        v.merges = ["h e", "hl"]
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .malformedMerge(index: 1, rule: "hl"))
        }
        v.merges = ["h e", "h  e"]
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .malformedMerge(index: 1, rule: "h  e"))
        }
        v.merges = ["h 世"]
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .mergeTokenNotInVocabulary(index: 0, token: "世"))
        }
        v.merges = ["h é"]  // "é" is the byte-alphabet spelling of 0xE9, but "hé" is no token
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .mergeTokenNotInVocabulary(index: 0, token: "hé"))
        }
        v = tinyByteLevel()
        v.eosID = 100_000
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .tokenIDOutOfRange(key: "tokenizer.ggml.eos_token_id", id: 100_000, vocabularySize: 265))
        }
        v = tinyByteLevel()
        v.bosID = -1
        XCTAssertThrowsError(try makeTokenizer(v)) {
            XCTAssertEqual($0 as? TokenizerError, .tokenIDOutOfRange(key: "tokenizer.ggml.bos_token_id", id: -1, vocabularySize: 265))
        }
        var s = tinySentencePiece(architecture: "gemma3")
        s.scores = [0, 1]
        XCTAssertThrowsError(try makeTokenizer(s)) {
            XCTAssertEqual($0 as? TokenizerError, .countMismatch(key: "tokenizer.ggml.scores", expected: 271, found: 2))
        }
        s = tinySentencePiece(architecture: "gemma3")
        s.tokenTypes = [1]
        XCTAssertThrowsError(try makeTokenizer(s)) {
            XCTAssertEqual($0 as? TokenizerError, .countMismatch(key: "tokenizer.ggml.token_type", expected: 271, found: 1))
        }
        for e in [TokenizerError.missingMerges, .unsupportedModel("x"), .malformedMerge(index: 3, rule: "a")] {
            XCTAssertFalse(e.description.isEmpty)
        }
    }

    /// GGUF metadata → vocabulary, including the wrong-type and missing-key errors.
    func testVocabularyFromGGUFMetadata() throws {
        let tiny = tinyByteLevel()
        var w = GGUFWriter()
        w.add(key: "general.architecture", .string("llama"))
        w.add(key: "tokenizer.ggml.model", .string("gpt2"))
        w.add(key: "tokenizer.ggml.pre", .string("smollm"))
        w.add(key: "tokenizer.ggml.tokens", .array(GGUFArray(.string(tiny.tokens))))
        w.add(key: "tokenizer.ggml.token_type", .array(GGUFArray(.int32(tiny.tokenTypes ?? []))))
        w.add(key: "tokenizer.ggml.merges", .array(GGUFArray(.string(["h e", "l l", "he ll", "hell o"]))))
        w.add(key: "tokenizer.ggml.bos_token_id", .uint32(263))
        w.add(key: "tokenizer.ggml.eos_token_id", .uint32(263))
        w.add(key: "tokenizer.ggml.add_bos_token", .bool(true))
        w.add(key: "tokenizer.chat_template", .string("{{ messages }}"))
        let file = try GGUFFile(bytes: try w.serialize())
        let vocab = try TokenizerVocabulary(gguf: file)
        XCTAssertEqual(vocab.model, "gpt2")
        XCTAssertEqual(vocab.pre, "smollm")
        XCTAssertEqual(vocab.architecture, "llama")
        XCTAssertEqual(vocab.tokens, tiny.tokens)
        XCTAssertEqual(vocab.tokenTypes, tiny.tokenTypes)
        XCTAssertEqual(vocab.bosID, 263)
        XCTAssertEqual(vocab.addBOS, true)
        XCTAssertNil(vocab.addEOS)
        XCTAssertNil(vocab.scores)
        let tok = try makeTokenizer(gguf: file)
        XCTAssertEqual(tok.encode("hello", addSpecial: true), [263, 259])
        XCTAssertEqual(tok.chatTemplate, "{{ messages }}")

        var bad = GGUFWriter()
        bad.add(key: "tokenizer.ggml.model", .string("gpt2"))
        XCTAssertThrowsError(try TokenizerVocabulary(gguf: GGUFFile(bytes: try bad.serialize()))) {
            XCTAssertEqual($0 as? TokenizerError, .missingKey("tokenizer.ggml.tokens"))
        }
        bad.add(key: "tokenizer.ggml.tokens", .array(GGUFArray(.float32([1]))))
        XCTAssertThrowsError(try TokenizerVocabulary(gguf: GGUFFile(bytes: try bad.serialize()))) {
            XCTAssertEqual($0 as? TokenizerError, .wrongType(key: "tokenizer.ggml.tokens", expected: "an array of strings"))
        }
        var bad2 = GGUFWriter()
        bad2.add(key: "tokenizer.ggml.model", .uint8(1))
        XCTAssertThrowsError(try TokenizerVocabulary(gguf: GGUFFile(bytes: try bad2.serialize()))) {
            XCTAssertEqual($0 as? TokenizerError, .wrongType(key: "tokenizer.ggml.model", expected: "a string"))
        }
    }

    func testLossyUTF8MatchesMaximalSubpartReplacement() {
        // Expected strings follow Python's bytes.decode("utf-8", "replace") (maximal subparts).
        let cases: [([UInt8], String)] = [
            ([0xE2, 0x82, 0x41], "\u{FFFD}A"),
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0xF0, 0x9F, 0x98], "\u{FFFD}"),
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            ([0x61, 0xFF, 0x62], "a\u{FFFD}b"),
        ]
        for (bytes, want) in cases {
            XCTAssertTrue(UTF8Util.lossy(bytes).unicodeScalars.elementsEqual(want.unicodeScalars), "\(bytes)")
        }
        XCTAssertEqual(UTF8Util.incompleteTail([0x61, 0xF0, 0x9F]), 2)
        XCTAssertEqual(UTF8Util.incompleteTail([0x61, 0xF0, 0x9F, 0x98, 0x80]), 0)
        XCTAssertEqual(UTF8Util.incompleteTail([0xED, 0xA0]), 0)
        XCTAssertEqual(UTF8Util.incompleteTail([0xE2]), 1)
        XCTAssertEqual(UTF8Util.incompleteTail([0x80, 0x80]), 0)
    }
}
