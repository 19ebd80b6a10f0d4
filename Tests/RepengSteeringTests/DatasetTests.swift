// Dataset builder (repeng's make_dataset recipe), chat formats, default suffixes and JSON loading.
import Foundation
import XCTest
import RepengEngine
@testable import RepengSteering

final class DatasetTests: XCTestCase {
    func testMakeDatasetMatchesRepengRecipe() throws {
        let ds = try makeDataset(template: "Act as if you're extremely {persona}.",
                                 positivePersonas: ["happy", "joyful"], negativePersonas: ["sad", "gloomy"],
                                 suffixes: ["I think", "The weather"])
        XCTAssertEqual(ds.count, 4)
        // Suffix-major, persona pairs inner, single spaces: f"{user_tag} {template} {asst_tag} {suffix}".
        XCTAssertEqual(ds[0], DatasetEntry(positive: "[INST] Act as if you're extremely happy. [/INST] I think",
                                           negative: "[INST] Act as if you're extremely sad. [/INST] I think"))
        XCTAssertEqual(ds[1].positive, "[INST] Act as if you're extremely joyful. [/INST] I think")
        XCTAssertEqual(ds[2].negative, "[INST] Act as if you're extremely sad. [/INST] The weather")
        XCTAssertEqual(ds[3].negative, "[INST] Act as if you're extremely gloomy. [/INST] The weather")

        let plain = try makeDataset(template: "Be {persona}", positivePersonas: ["a"], negativePersonas: ["b"],
                                    suffixes: [""], userTag: "", assistantTag: "")
        XCTAssertEqual(plain[0].positive, " Be a  ")
    }

    func testTemplateFormatting() throws {
        XCTAssertEqual(try formatPersonaTemplate("{{x}} {persona} {{", persona: "p"), "{x} p {")
        XCTAssertEqual(try formatPersonaTemplate("{persona}{persona}", persona: "ab"), "abab")
        XCTAssertThrowsError(try formatPersonaTemplate("no field", persona: "p")) {
            XCTAssertEqual($0 as? DatasetError, .templateMissingPersona(template: "no field"))
        }
        for bad in ["{name} {persona}", "{persona", "{persona} }", "{persona!r}", "{}"] {
            XCTAssertThrowsError(try formatPersonaTemplate(bad, persona: "p"), bad) { error in
                guard case .badTemplate = error as? DatasetError else { return XCTFail("\(bad): \(error)") }
            }
        }
        XCTAssertThrowsError(try makeDataset(template: "{persona}", positivePersonas: ["a", "b"], negativePersonas: ["c"],
                                             suffixes: ["x"])) {
            XCTAssertEqual($0 as? DatasetError, .personaCountMismatch(positive: 2, negative: 1))
        }
        XCTAssertThrowsError(try makeDataset(template: "{persona}", positivePersonas: ["a"], negativePersonas: ["c"], suffixes: []))
        XCTAssertThrowsError(try makeDataset(template: "{persona}", positivePersonas: [], negativePersonas: [], suffixes: ["x"]))
    }

    func testChatFormats() throws {
        XCTAssertEqual(ChatFormat.chatML.wrap(instruction: "Be happy.", reply: "I think"),
                       "<|im_start|>user\nBe happy.<|im_end|>\n<|im_start|>assistant\nI think")
        XCTAssertEqual(ChatFormat.gemma.wrap(instruction: "Be happy.", reply: "I think"),
                       "<start_of_turn>user\nBe happy.<end_of_turn>\n<start_of_turn>model\nI think")
        XCTAssertEqual(ChatFormat.plain.wrap(instruction: "Be happy.", reply: "I think"), "Be happy. I think")
        XCTAssertEqual(ChatFormat.detect(tokenizer: nil), .plain)
        let ds = try makeChatDataset(template: "Pretend you're {persona}.", positivePersonas: ["kind"],
                                     negativePersonas: ["cruel"], suffixes: ["Hello", "Well,"], format: .chatML)
        XCTAssertEqual(ds.count, 2)
        XCTAssertEqual(ds[1].negative, "<|im_start|>user\nPretend you're cruel.<|im_end|>\n<|im_start|>assistant\nWell,")
    }

    /// Chat datasets laid out by a model's own template: SmolLM2's (with its default system prompt)
    /// (whose BOS, `<|im_start|>`, the tokenizer does not add, so the text keeps it) and Gemma-3's,
    /// whose template writes the BOS its tokenizer adds: the text leaves it out, so encoding with the
    /// tokenizer's defaults writes it once and gives the ids of the template's output plus the reply.
    func testChatDatasetsUseTheModelsTemplate() throws {
        let smol = try loadModel(path: try SteeringTestSupport.modelPath())
        let tok = try XCTUnwrap(smol.tokenizer)
        let ds = try makeChatDataset(template: "Pretend you're {persona}.", positivePersonas: ["kind"],
                                     negativePersonas: ["cruel"], suffixes: ["Hello", "Well,"], model: smol)
        let rendered = try ChatTemplate(source: try XCTUnwrap(tok.chatTemplate))
            .render(messages: [ChatMessage(role: "user", content: "Pretend you're cruel.")], addGenerationPrompt: true)
        XCTAssertEqual(ds[1].negative, rendered + "Well,")
        XCTAssertTrue(ds[1].negative.hasPrefix("<|im_start|>system\n"), ds[1].negative)

        let gemmaTemplate = try String(contentsOf: SteeringTestSupport.packageRoot
            .appendingPathComponent("Tests/RepengEngineTests/Fixtures/chat/gemma3.jinja"), encoding: .utf8)
        let gemma = try loadModel(path: try SteeringTestSupport.modelPath("gemma-3-270m-q4_k_m.gguf"))
        let gtok = try XCTUnwrap(gemma.tokenizer)
        let bos = try XCTUnwrap(gtok.bosID)
        let layout = ChatLayout(template: try ChatTemplate(source: gemmaTemplate), bosToken: "<bos>", eosToken: "<eos>",
                                tokenizerAddsBOS: true)
        let text = try layout.datasetText(instruction: "Be happy.", reply: "I think")
        XCTAssertEqual(text, "<start_of_turn>user\nBe happy.<end_of_turn>\n<start_of_turn>model\nI think")
        let ids = gtok.encode(text, addSpecial: true)
        XCTAssertEqual(ids.filter { $0 == bos }.count, 1)
        let prompt = try layout.prompt([ChatMessage(role: "user", content: "Be happy.")])
        XCTAssertFalse(prompt.addSpecialTokens)
        XCTAssertEqual(ids, gtok.encode(prompt.text + "I think", addSpecial: false))

        // A model without a template: a clear error, unless a format is named.
        let folder = SteeringTestSupport.packageRoot.appendingPathComponent("Tests/RepengEngineTests/Fixtures/hf/qwen2").path
        let tiny = try loadModel(path: folder)
        XCTAssertThrowsError(try makeChatDataset(template: "{persona}", positivePersonas: ["a"], negativePersonas: ["b"],
                                                 suffixes: ["x"], model: tiny)) { error in
            XCTAssertEqual(error as? ChatError, .noTemplate)
            XCTAssertTrue("\(error)".contains("name a chat format"), "\(error)")
        }
        XCTAssertThrowsError(try ChatLayout(tokenizer: gtok, format: "llama9")) { error in
            XCTAssertEqual(error as? ChatError, .unknownFormat("llama9"))
        }
        XCTAssertThrowsError(try ChatLayout(format: .chatML).prompt([ChatMessage(role: "tool", content: "x")])) { error in
            XCTAssertEqual(error as? ChatError, .badRole(index: 0, role: "tool"))
        }
    }

    func testDefaultSuffixes() {
        XCTAssertGreaterThanOrEqual(defaultSuffixes.count, 300)
        XCTAssertEqual(Set(defaultSuffixes).count, defaultSuffixes.count, "duplicates in the default suffixes")
        for s in defaultSuffixes {
            XCTAssertFalse(s.isEmpty)
            XCTAssertEqual(s, s.trimmingCharacters(in: .whitespacesAndNewlines), "untrimmed suffix '\(s)'")
        }
    }

    func testParseDataset() throws {
        let good = Data(#"[{"positive": "a b", "negative": "c"}, {"negative": "y", "positive": "x\n"}]"#.utf8)
        XCTAssertEqual(try parseDataset(good), [DatasetEntry(positive: "a b", negative: "c"), DatasetEntry(positive: "x\n", negative: "y")])

        // Round trip through the writer.
        let ds = [DatasetEntry(positive: "ünï \"q\" / {x}", negative: "tab\there")]
        XCTAssertEqual(try parseDataset(encodeDataset(ds)), ds)

        let cases: [(String, String)] = [
            ("not json", "invalidJSON"),
            (#"{"positive": "a", "negative": "b"}"#, "notAnArray"),
            ("[]", "empty"),
            (#"[{"positive": "a"}]"#, "missing \"negative\""),
            (#"[{"positive": "a", "negative": 3}]"#, "must be a string"),
            (#"[{"positive": "a", "negative": ""}]"#, "is empty"),
            (#"[{"positive": "a", "negative": "b", "postive": "c"}]"#, "unknown key \"postive\""),
            (#"[{"positive": "a", "negative": "b"}, "x"]"#, "element 1"),
            (#"[{"positive": null, "negative": "b"}]"#, "must be a string"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try parseDataset(Data(text.utf8), path: "d.json"), text) { error in
                let message = String(describing: error)
                XCTAssertTrue(message.contains(expected) || "\(error)".contains(expected) || caseName(error) == expected,
                              "\(text): \(message)")
            }
        }
    }

    func testParseSuffixes() throws {
        XCTAssertEqual(try parseSuffixes(Data(#"["I think", "", "The"]"#.utf8)), ["I think", "", "The"])
        XCTAssertThrowsError(try parseSuffixes(Data("[]".utf8)))
        XCTAssertThrowsError(try parseSuffixes(Data(#"["a", 1]"#.utf8))) {
            XCTAssertEqual($0 as? DatasetError, .badElement(path: "<data>", index: 1, reason: "expected a string"))
        }
        XCTAssertThrowsError(try parseSuffixes(Data(#"{"a": 1}"#.utf8))) {
            XCTAssertEqual($0 as? DatasetError, .notAnArray(path: "<data>"))
        }
    }

    func testLoadFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("steer-ds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ds = dir.appendingPathComponent("ds.json"), sx = dir.appendingPathComponent("sx.json")
        try Data(#"[{"positive": "p", "negative": "n"}]"#.utf8).write(to: ds)
        try Data(#"["x"]"#.utf8).write(to: sx)
        XCTAssertEqual(try loadDataset(from: ds), [DatasetEntry(positive: "p", negative: "n")])
        XCTAssertEqual(try loadSuffixes(from: sx), ["x"])
        let missing = dir.appendingPathComponent("missing.json")
        XCTAssertThrowsError(try loadDataset(from: missing)) { error in
            guard case .unreadable(let path, _)? = error as? DatasetError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, missing.path)
        }
        XCTAssertThrowsError(try loadSuffixes(from: dir)) { error in
            guard case .unreadable? = error as? DatasetError else { return XCTFail("\(error)") }
        }
    }
}

private func caseName(_ error: Error) -> String {
    guard let e = error as? DatasetError else { return "" }
    switch e {
    case .invalidJSON: return "invalidJSON"
    case .notAnArray: return "notAnArray"
    case .empty: return "empty"
    default: return ""
    }
}
