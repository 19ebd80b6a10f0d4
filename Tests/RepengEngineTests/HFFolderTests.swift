// Hugging Face model folders (config.json + safetensors) of every family against transformers, the same checks as their GGUF conversions, plus sharded, BF16 and F16 checkpoints and malformed folders.
import Foundation
import XCTest
@testable import RepengEngine

final class HFFolderTests: XCTestCase {
    private func folder(_ name: String) -> String { TestSupport.fixture("hf/\(name)").path }

    private func check(_ family: String) throws {
        let m = try loadModel(path: folder(family))
        try ArchCheck.check(family, model: m)
    }

    func testGPT2() throws { try check("gpt2") }
    func testQwen2() throws { try check("qwen2") }
    func testQwen3() throws { try check("qwen3") }
    func testMistral() throws { try check("mistral") }
    func testPhi3() throws { try check("phi3") }
    func testGemma2() throws { try check("gemma2") }

    /// F32 weights stay in the mapped file: no matrix of the model owns memory but the stacked
    /// q | k | v and gate | up parts' own tensors, which are in place too.
    func testF32WeightsAreUsedInPlace() throws {
        let m = try XCTUnwrap(try loadModel(path: folder("qwen2")) as? DecoderModel)
        func inPlace(_ w: WeightMatrix) -> Bool {
            switch w.storage {
            case .mapped, .encoded: return true
            case .stacked(let parts): return parts.allSatisfy(inPlace)
            case .f32: return false
            }
        }
        XCTAssertTrue(inPlace(m.tokenEmbedding))
        for b in m.blocks {
            for w in [b.qkv, b.attnOut, b.gateUp, b.down] { XCTAssertTrue(inPlace(w)) }
        }
        // GPT-2's Conv1D weights are transposed at load, so they are copies.
        let g = try XCTUnwrap(try loadModel(path: folder("gpt2")) as? DecoderModel)
        XCTAssertFalse(inPlace(g.blocks[0].qkv))
        XCTAssertTrue(inPlace(g.tokenEmbedding))
    }

    /// The Hugging Face folder and its GGUF conversion give the same hidden states and logits.
    func testFolderAgreesWithItsGGUF() throws {
        for family in ["qwen3", "mistral", "gemma2", "gpt2"] {
            let a = try loadModel(path: folder(family))
            let b = try loadModel(path: TestSupport.fixture("arch/\(family).gguf").path)
            let ids: [Int32] = [5, 9, 17, 33, 2, 11, 7, 3, 8, 13]
            let opts = ForwardOptions(hiddenStates: Array(0...a.config.blockCount), hiddenPositions: .all, logits: .all)
            let x = try a.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
            let y = try b.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
            var worst: Float = 0
            for (k, v) in x.hidden { worst = max(worst, relativeError(v, y.hidden[k] ?? [])) }
            worst = max(worst, relativeError(x.logits, y.logits))
            print("\(family): Hugging Face folder vs GGUF, 10 tokens: max relative difference \(worst)")
            XCTAssertLessThan(worst, 1e-5, family)
        }
    }

    // MARK: RoPE scaling

    private struct RopeFixture: Decodable {
        let ids: [Int32]
        let frequency_factors: [Float]
        let hidden: [[[Float]]]
        let logits: [[Float]]
        let logits_without_scaling: [[Float]]
    }

    /// Llama 3 RoPE scaling (`rope_type` llama3) against transformers, in the v5 layout
    /// transformers wrote (`rope_parameters`) and the v4 one published Llama 3.x folders carry
    /// (`rope_theta` + `rope_scaling`); the per-frequency factors as llama.cpp's `rope_freqs`.
    func testLlama3RopeScaling() throws {
        let dir = folder("llama3-rope")
        let fixture = try JSONDecoder().decode(RopeFixture.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
        let v5 = try HFConfig(path: dir + "/config.json")
        let factors = try XCTUnwrap(try v5.ropeFrequencyFactors(config: try LlamaArchitecture.config(hf: v5)))
        XCTAssertLessThan(relativeError(factors, fixture.frequency_factors), 1e-6)

        // The same folder with a v4 config.json.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("llama3-rope-v4-\(getpid())")
        try? FileManager.default.removeItem(at: tmp)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.copyItem(atPath: dir + "/model.safetensors", toPath: tmp.path + "/model.safetensors")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as? [String: Any])
        var rope = try XCTUnwrap(config.removeValue(forKey: "rope_parameters") as? [String: Any])
        config["rope_theta"] = rope.removeValue(forKey: "rope_theta")
        config["rope_scaling"] = rope
        try JSONSerialization.data(withJSONObject: config).write(to: tmp.appendingPathComponent("config.json"))

        for path in [dir, tmp.path] {
            let m = try loadModel(path: path)
            let opts = ForwardOptions(hiddenStates: Array(0...m.config.blockCount), hiddenPositions: .all, logits: .all)
            let out = try m.forward([SequenceInput(tokens: fixture.ids)], options: opts, workspace: ForwardWorkspace())[0]
            var worst: Float = 0
            for (i, h) in fixture.hidden.enumerated() { worst = max(worst, relativeError(out.hidden[i] ?? [], h.flatMap { $0 })) }
            let logits = relativeError(out.logits, fixture.logits.flatMap { $0 })
            let unscaled = relativeError(out.logits, fixture.logits_without_scaling.flatMap { $0 })
            print("llama3 RoPE scaling (\(path == dir ? "v5" : "v4") config), 48 tokens: hidden states max relative error \(worst), "
                  + "logits \(logits) (without the scaling the logits would differ by \(unscaled))")
            XCTAssertLessThan(worst, 1e-5)
            XCTAssertLessThan(logits, 1e-5)
            XCTAssertGreaterThan(unscaled, 1e-2)
        }

        // Incomplete or unknown scaling is refused with the key named.
        var bad = config
        bad["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0]
        try JSONSerialization.data(withJSONObject: bad).write(to: tmp.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try loadModel(path: tmp.path)) { XCTAssertTrue("\($0)".contains("low_freq_factor"), "\($0)") }
        bad["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0]
        try JSONSerialization.data(withJSONObject: bad).write(to: tmp.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try loadModel(path: tmp.path)) { XCTAssertTrue("\($0)".contains("RoPE type 'yarn'"), "\($0)") }
    }

    // MARK: Sharded, BF16 and F16 checkpoints

    private struct Variant: Decodable {
        struct Prompt: Decodable {
            let name: String
            let token_ids: [Int32]
            let logits_last_f32le_base64: String
            let greedy_new_ids: [Int32]
            let hidden_last_position: [String: [Float]]
        }
        let prompts: [Prompt]
    }

    /// Each variant against transformers' float32 run of the same folder (weights upcast as here).
    private func checkVariant(_ name: String) throws {
        let m = try loadModel(path: folder(name))
        let fx = try TestSupport.loadJSON(Variant.self, "hf/\(name)/expected.json")
        var worst: Float = 0
        for p in fx.prompts {
            let out = try m.forward([SequenceInput(tokens: p.token_ids)],
                                    options: ForwardOptions(hiddenStates: Array(0...m.config.blockCount), hiddenPositions: .last, logits: .last),
                                    workspace: ForwardWorkspace())[0]
            for (k, ref) in p.hidden_last_position { worst = max(worst, relativeError(out.hidden[Int(k)!] ?? [], ref)) }
            worst = max(worst, relativeError(out.logits, floats(p.logits_last_f32le_base64)))
            let ids = try m.generate(GenerationRequest(prompt: p.token_ids, maxTokens: p.greedy_new_ids.count, stopTokens: [])).tokens
            XCTAssertEqual(ids, p.greedy_new_ids, "\(name) \(p.name) greedy")
        }
        print("\(name) vs transformers: max relative error \(worst); greedy \(fx.prompts.count)/\(fx.prompts.count) checked")
        XCTAssertLessThan(worst, 1e-4, name)
    }

    func testShardedCheckpoint() throws {
        try checkVariant("qwen2-sharded")
        let c = try SafeTensorsCheckpoint(folder: folder("qwen2-sharded"))
        XCTAssertEqual(c.files.count, 4)
    }

    func testBF16Checkpoint() throws { try checkVariant("qwen3-bf16") }

    func testF16Checkpoint() throws { try checkVariant("mistral-f16") }

    // MARK: Malformed folders

    /// A copy of the qwen2 folder with config.json replaced by `config` (nil: removed) and its
    /// weights left as they are.
    private func brokenFolder(config: String?) throws -> String {
        let dir = NSTemporaryDirectory() + "hf-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: folder("qwen2") + "/model.safetensors", toPath: dir + "/model.safetensors")
        if let config { try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/config.json")) }
        return dir
    }

    private func expectLoadError(config: String?, _ needle: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try brokenFolder(config: config)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try loadModel(path: dir), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(needle), "\(e)", file: file, line: line)
        }
    }

    func testBadConfigsAreRefusedClearly() throws {
        let good = try String(contentsOfFile: folder("qwen2") + "/config.json", encoding: .utf8)
        try expectLoadError(config: nil, "config.json: cannot open")
        try expectLoadError(config: "{", "not valid JSON")
        try expectLoadError(config: "[]", "not a JSON object")
        try expectLoadError(config: #"{"model_type":"bert"}"#, "unsupported model_type 'bert' in config.json (supported: gemma2, gemma3, gemma3_text, gpt2, llama, mistral, phi3, qwen2, qwen3)")
        try expectLoadError(config: #"{"model_type":"qwen2"}"#, "num_hidden_layers is missing")
        try expectLoadError(config: good.replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": "64""#), "hidden_size is a string, not an integer")
        try expectLoadError(config: good.replacingOccurrences(of: #""intermediate_size": 128"#, with: #""intermediate_size": 96"#), "has shape [128, 64], expected [96, 64]")
        try expectLoadError(config: good.replacingOccurrences(of: #""rope_type": "default""#, with: #""rope_type": "yarn""#), "RoPE type 'yarn'")
    }
}
