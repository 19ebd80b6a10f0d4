// Golden tests: ids and decodes of the bundled models against transformers (scripts/reference/make_tokenizer_fixtures.py).
import Foundation
import XCTest

@testable import RepengEngine

/// One model's fixture file.
struct TokenizerFixture: Decodable {
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
    let model: String
    let transformers: String
    let cases: [Case]
    let decodes: [Decode]
}

/// Tokenizers of the bundled models, built once per test process.
enum BundledTokenizers {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: any Tokenizer] = [:]

    static func load(_ file: String, architecture: String? = nil) throws -> any Tokenizer {
        let path = try TestSupport.modelPath(file)
        let key = file + "|" + (architecture ?? "")
        lock.lock()
        defer { lock.unlock() }
        if let t = cache[key] { return t }
        var vocab = try TokenizerVocabulary(gguf: GGUFFile(path: path))
        if let architecture { vocab.architecture = architecture }
        let t = try makeTokenizer(vocab)
        cache[key] = t
        return t
    }

    static func smolLM2() throws -> any Tokenizer { try load(TestSupport.smolLM2File) }
    static func gemma3() throws -> any Tokenizer { try load(TestSupport.gemma3File) }
}

final class TokenizerFixtureTests: XCTestCase {
    private func show(_ ids: [Int32]) -> String { ids.map(String.init).joined(separator: " ") }

    /// Compares every corpus string of a fixture; returns (ids matched, decodes matched).
    private func checkCorpus(_ tok: any Tokenizer, _ fixture: TokenizerFixture, name: String) {
        var idsMatched = 0, plainMatched = 0, decodeMatched = 0
        for c in fixture.cases {
            let ids = tok.encode(c.text, addSpecial: true)
            let plain = tok.encode(c.text, addSpecial: false)
            if ids == c.ids { idsMatched += 1 } else {
                XCTFail("\(name) ids for \(c.text.debugDescription):\n ours \(show(ids))\n HF   \(show(c.ids))")
            }
            if plain == c.ids_plain { plainMatched += 1 } else {
                XCTFail("\(name) plain ids for \(c.text.debugDescription):\n ours \(show(plain))\n HF   \(show(c.ids_plain))")
            }
            let d = tok.decode(c.ids, skipSpecial: false)
            let ds = tok.decode(c.ids, skipSpecial: true)
            if d.unicodeScalars.elementsEqual(c.decoded.unicodeScalars)
                && ds.unicodeScalars.elementsEqual(c.decoded_skip.unicodeScalars)
            {
                decodeMatched += 1
            } else {
                XCTFail("\(name) decode of \(show(c.ids)): \(d.debugDescription) / \(ds.debugDescription), HF \(c.decoded.debugDescription) / \(c.decoded_skip.debugDescription)")
            }
        }
        print("\(name): ids (add special) \(idsMatched)/\(fixture.cases.count), ids (plain) \(plainMatched)/\(fixture.cases.count), decodes \(decodeMatched)/\(fixture.cases.count) match transformers \(fixture.transformers)")
    }

    private func checkDecodes(_ tok: any Tokenizer, _ fixture: TokenizerFixture, name: String) {
        var matched = 0
        for d in fixture.decodes {
            let a = tok.decode(d.ids, skipSpecial: false)
            let b = tok.decode(d.ids, skipSpecial: true)
            if a.unicodeScalars.elementsEqual(d.decoded.unicodeScalars)
                && b.unicodeScalars.elementsEqual(d.decoded_skip.unicodeScalars)
            {
                matched += 1
            } else {
                XCTFail("\(name) decode of \(show(d.ids)): \(a.debugDescription) / \(b.debugDescription), HF \(d.decoded.debugDescription) / \(d.decoded_skip.debugDescription)")
            }
        }
        print("\(name): id-sequence decodes \(matched)/\(fixture.decodes.count) match")
    }

    func testSmolLM2MatchesTransformers() throws {
        let tok = try BundledTokenizers.smolLM2()
        let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/smollm2.json")
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 120)
        checkCorpus(tok, fixture, name: "SmolLM2")
        checkDecodes(tok, fixture, name: "SmolLM2")
    }

    func testGemma3MatchesTransformers() throws {
        let tok = try BundledTokenizers.gemma3()
        let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/gemma3.json")
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 120)
        checkCorpus(tok, fixture, name: "Gemma-3")
        checkDecodes(tok, fixture, name: "Gemma-3")
    }

    /// The Gemma-3 vocabulary taken as a generic SentencePiece GGUF (any architecture but Gemma):
    /// score-ranked merges, Metaspace prefix, leading-space strip on decode.
    func testGenericSentencePieceMatchesTransformers() throws {
        let tok = try BundledTokenizers.load(TestSupport.gemma3File, architecture: "llama")
        let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/gemma3_as_llama.json")
        checkCorpus(tok, fixture, name: "Gemma-3 vocabulary as generic SentencePiece")
        checkDecodes(tok, fixture, name: "Gemma-3 vocabulary as generic SentencePiece")
    }

    /// The Gemma-3 vocabulary taken as a Phi-3 GGUF: "▁" before every run of text.
    func testPhi3SentencePieceMatchesTransformers() throws {
        let tok = try BundledTokenizers.load(TestSupport.gemma3File, architecture: "phi3")
        let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/gemma3_as_phi3.json")
        checkCorpus(tok, fixture, name: "Gemma-3 vocabulary as Phi-3 SentencePiece")
        checkDecodes(tok, fixture, name: "Gemma-3 vocabulary as Phi-3 SentencePiece")
    }

    /// Streaming the fixture ids reproduces the full decode, for both models and skip settings.
    func testIncrementalDecodeEqualsFullDecode() throws {
        for (file, architecture, fixtureName) in [
            (TestSupport.smolLM2File, nil, "smollm2"), (TestSupport.gemma3File, nil, "gemma3"),
            (TestSupport.gemma3File, "llama", "gemma3_as_llama"), (TestSupport.gemma3File, "phi3", "gemma3_as_phi3"),
        ] {
            let tok = try BundledTokenizers.load(file, architecture: architecture)
            let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/\(fixtureName).json")
            var sequences = fixture.cases.map(\.ids)
            // Byte-level decoding streams exactly for any ids; SentencePiece for well-formed byte runs.
            if fixtureName == "smollm2" { sequences += fixture.decodes.map(\.ids) }
            var matched = 0
            for ids in sequences {
                for skip in [false, true] {
                    var decoder = IncrementalDecoder(tokenizer: tok, skipSpecial: skip)
                    var streamed = ""
                    for id in ids {
                        let piece = decoder.append(id)
                        // Never a dangling half character: each chunk is well-formed on its own.
                        XCTAssertNotNil(String(validating: Array(piece.utf8), as: UTF8.self))
                        streamed += piece
                    }
                    streamed += decoder.flush()
                    let full = tok.decode(ids, skipSpecial: skip)
                    if streamed.unicodeScalars.elementsEqual(full.unicodeScalars) {
                        matched += 1
                    } else {
                        XCTFail("\(fixtureName) streamed \(streamed.debugDescription) != \(full.debugDescription) for \(ids)")
                    }
                }
            }
            print("\(fixtureName): incremental decode equals full decode for \(matched)/\(sequences.count * 2) sequences")
        }
    }

    /// An emoji spelled as four byte tokens comes out whole, only when its last byte arrives.
    func testEmojiSplitAcrossByteTokens() throws {
        let emoji = "\u{1F600}"
        let smol = try BundledTokenizers.smolLM2()
        let gemma = try BundledTokenizers.gemma3()
        let smolBytes = try Array(emoji.utf8).map { b -> Int32 in
            try XCTUnwrap(smol.tokenID(String(Character(Unicode.Scalar(ByteUnicode.characterForByte[Int(b)])!))))
        }
        let gemmaBytes = try Array(emoji.utf8).map { b -> Int32 in
            try XCTUnwrap(gemma.tokenID(String(format: "<0x%02X>", b)))
        }
        for (tok, ids) in [(smol, smolBytes), (gemma, gemmaBytes)] {
            for b in ids { XCTAssertEqual(tok.tokenBytes(b).count, 1) }
            var decoder = IncrementalDecoder(tokenizer: tok, skipSpecial: false)
            let outputs = ids.map { decoder.append($0) }
            XCTAssertEqual(outputs, ["", "", "", emoji])
            XCTAssertEqual(decoder.flush(), "")
            XCTAssertEqual(tok.decode(ids, skipSpecial: false), emoji)
            // Cut short: the unfinished character is flushed as U+FFFD.
            var cut = IncrementalDecoder(tokenizer: tok, skipSpecial: false)
            XCTAssertEqual(ids.prefix(3).map { cut.append($0) }.joined(), "")
            XCTAssertFalse(cut.flush().isEmpty)
        }
        // The encoder itself splits a character missing from the vocabulary into those tokens.
        XCTAssertEqual(gemma.encode("\u{1F600}", addSpecial: false).count >= 1, true)
    }

    func testSpecialTokensAndMetadata() throws {
        let smol = try BundledTokenizers.smolLM2()
        XCTAssertEqual(smol.vocabularySize, 49152)
        XCTAssertEqual(smol.tokenID("<|im_start|>"), 1)
        XCTAssertEqual(smol.tokenID("<|im_end|>"), 2)
        XCTAssertEqual(smol.eosID, 2)
        XCTAssertTrue(smol.isSpecial(2))
        XCTAssertFalse(smol.isSpecial(smol.tokenID("Ġthe") ?? 0))
        XCTAssertEqual(smol.tokenBytes(smol.tokenID("Ġthe") ?? 0), Array(" the".utf8))
        XCTAssertNotNil(smol.chatTemplate)
        XCTAssertEqual(smol.encode("<|im_start|>user", addSpecial: true).first, 1)

        let gemma = try BundledTokenizers.gemma3()
        XCTAssertEqual(gemma.vocabularySize, 262144)
        XCTAssertEqual(gemma.bosID, 2)
        XCTAssertEqual(gemma.eosID, 1)
        XCTAssertEqual(gemma.tokenID("<start_of_turn>"), 105)
        XCTAssertEqual(gemma.tokenID("<end_of_turn>"), 106)
        XCTAssertEqual(gemma.tokenID("  "), 138)
        XCTAssertTrue(gemma.isSpecial(106))
        XCTAssertFalse(gemma.isSpecial(107))  // "\n" is a user-defined, non-special added token
        XCTAssertEqual(gemma.encode("", addSpecial: true), [2])
        XCTAssertEqual(gemma.encode("<start_of_turn>user\n", addSpecial: false).prefix(1), [105])
        XCTAssertEqual(gemma.tokenBytes(gemma.tokenID("▁the") ?? 0), Array(" the".utf8))
        XCTAssertEqual(gemma.tokenBytes(gemma.tokenID("<0x0A>") ?? 0), [0x0A])
    }

    /// Rough encode throughput; prints a figure, asserts nothing. Times are this thread's CPU time
    /// (steadier than wall time on a busy machine).
    func testEncodeSpeed() throws {
        func cpuMS() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
        }
        let fixture = try TestSupport.loadJSON(TokenizerFixture.self, "tokenizer/smollm2.json")
        // About 20 tokens each: corpus strings cut to 80 characters, cycled up to 400 strings.
        let base = fixture.cases.map { String($0.text.prefix(80)) }.filter { $0.count > 10 }
        let texts = (0 ..< 400).map { base[$0 % base.count] + " #\($0)" }
        for (name, file) in [("SmolLM2", TestSupport.smolLM2File), ("Gemma-3", TestSupport.gemma3File)] {
            let gguf = try GGUFFile(path: try TestSupport.modelPath(file))
            let t0 = cpuMS()
            let vocab = try TokenizerVocabulary(gguf: gguf)
            let t1 = cpuMS()
            let tok = try makeTokenizer(vocab)
            let t2 = cpuMS()
            print(String(format: "%@: vocabulary read from GGUF metadata in %.1f ms, tokenizer built in %.1f ms (CPU)", name, t1 - t0, t2 - t1))
            _ = texts.prefix(20).map { tok.encode($0, addSpecial: true) }
            var tokens = 0
            let start = cpuMS()
            for t in texts { tokens += tok.encode(t, addSpecial: true).count }
            let ms = cpuMS() - start
            print(String(format: "%@: encoded %d strings (%d tokens, %.1f per string) in %.2f ms (CPU)", name, texts.count, tokens, Double(tokens) / Double(texts.count), ms))
        }
    }
}
