// Golden tests of the smaller families against transformers: tiny random checkpoints (fixed
// seed, float32) converted to GGUF by llama.cpp's own convert_hf_to_gguf.py (fixtures:
// scripts/reference/make_arch_fixtures.py). Per family: hidden states at every index, all
// positions at two, last-position logits, greedy continuations, and steering at two blocks as
// repeng's ControlModel applies it (coefficient 0 bit-identical to no control).
import Foundation
import XCTest
@testable import RepengEngine
@testable import RepengKernels

private let tolerance: Float = 1e-4

struct ArchFixture: Decodable {
    struct Prompt: Decodable {
        let name: String
        let token_ids: [Int32]
        let hidden_last_position: [String: [Float]]
        let logits_last_f32le_base64: String
        let argmax: Int
        let greedy_new_ids: [Int32]
    }
    struct AllPositions: Decodable {
        let prompt: String
        let indices: [String: [[Float]]]
    }
    struct Steered: Decodable {
        let coefficient: Float?
        let greedy_new_ids: [Int32]
        let logits_last_f32le_base64: String
    }
    struct SteeringCase: Decodable {
        let prompt: String
        let no_control: Steered
        let zero: Steered
        let positive: Steered
    }
    struct Steering: Decodable {
        let layers: [Int]
        let coefficient: Float
        let directions: [String: [Float]]
        let cases: [SteeringCase]
    }
    struct Unwindowed: Decodable {
        let prompt: String
        let num_tokens: Int
        let hidden_last_position: [String: [Float]]
        let logits_last_f32le_base64: String
        let argmax: Int
        let greedy_new_ids: [Int32]
    }
    struct SlidingWindow: Decodable {
        let hf_config_sliding_window: Int
        let without_window: [Unwindowed]
    }
    struct Tokenizer: Decodable {
        struct Text: Decodable { let text: String; let hf_ids_no_special: [Int32]; let sentencepiece_ids: [Int32]? }
        let texts: [Text]
    }
    let tokenizer: Tokenizer
    let prompts: [Prompt]
    let all_positions: AllPositions
    let steering: Steering
    let sliding_window: SlidingWindow?
}

func floats(_ base64: String) -> [Float] {
    let data = Data(base64Encoded: base64) ?? Data()
    return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

/// The per-family comparison with transformers, shared by the GGUF and Hugging Face folder tests.
enum ArchCheck {
    static func load(_ family: String) throws -> (any LanguageModel, ArchFixture) {
        let model = try loadModel(path: TestSupport.fixture("arch/\(family).gguf").path)
        let fx = try TestSupport.loadJSON(ArchFixture.self, "arch/\(family).json")
        return (model, fx)
    }

    /// Greedy ids with no stop token (the fixtures disable EOS).
    static func greedy(_ m: any LanguageModel, _ prompt: [Int32], _ n: Int, steering: PreparedSteering? = nil) throws -> [Int32] {
        try m.generate(GenerationRequest(prompt: prompt, maxTokens: n, stopTokens: [], steering: steering)).tokens
    }

    /// Checks every prompt; for a family whose GGUF has no window (Mistral), prompts longer than
    /// transformers' window are checked against its run without the window, as llama.cpp runs it.
    /// `sentencePieceIds`: the ids to expect are the sentencepiece library's (a "▁" before every
    /// text, as llama.cpp and Phi-3's own Prepend normalizer do), not the tiny fixture tokenizer's.
    /// `model`: the family's model loaded another way (its Hugging Face folder), which applies
    /// transformers' sliding window where the GGUF has none.
    static func check(_ family: String, sentencePieceIds: Bool = false, model: (any LanguageModel)? = nil) throws {
        var (m, fx) = try load(family)
        if let model { m = model }
        let L = m.config.blockCount
        let ws = ForwardWorkspace()
        let window = model != nil ? Int.max : fx.sliding_window?.hf_config_sliding_window ?? Int.max
        var worst: Float = 0, worstAt = ""
        var greedyMatched = 0
        func note(_ e: Float, _ at: String) { if e > worst { worst = e; worstAt = at } }
        for t in fx.tokenizer.texts {
            guard let tok = m.tokenizer else { break }
            let want = sentencePieceIds ? try XCTUnwrap(t.sentencepiece_ids) : t.hf_ids_no_special
            XCTAssertEqual(tok.encode(t.text, addSpecial: false), want, "\(family) ids of \(t.text.debugDescription)")
        }
        for p in fx.prompts {
            var hidden = p.hidden_last_position, logitsRef = floats(p.logits_last_f32le_base64)
            var argmax = p.argmax, greedyRef = p.greedy_new_ids
            if p.token_ids.count + greedyRef.count - 1 > window,
               let u = fx.sliding_window?.without_window.first(where: { $0.prompt == p.name }) {
                (hidden, logitsRef, argmax, greedyRef) = (u.hidden_last_position, floats(u.logits_last_f32le_base64), u.argmax, u.greedy_new_ids)
            }
            let out = try m.forward([SequenceInput(tokens: p.token_ids)],
                                    options: ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .last, logits: .last),
                                    workspace: ws)[0]
            for (k, ref) in hidden { note(relativeError(out.hidden[Int(k)!]!, ref), "\(p.name) index \(k)") }
            note(relativeError(out.logits, logitsRef), "\(p.name) logits")
            XCTAssertEqual(Kernels.argmax(out.logits, out.logits.count), argmax, "\(family) \(p.name)")
            let ids = try greedy(m, p.token_ids, greedyRef.count)
            XCTAssertEqual(ids, greedyRef, "\(family) \(p.name) greedy")
            if ids == greedyRef { greedyMatched += 1 }
        }
        if let p = fx.prompts.first(where: { $0.name == fx.all_positions.prompt }), p.token_ids.count <= window {
            let indices = fx.all_positions.indices.keys.compactMap(Int.init)
            let out = try m.forward([SequenceInput(tokens: p.token_ids)],
                                    options: ForwardOptions(hiddenStates: indices, hiddenPositions: .all, logits: .none), workspace: ws)[0]
            for (k, rows) in fx.all_positions.indices { note(relativeError(out.hidden[Int(k)!]!, rows.flatMap { $0 }), "\(p.name) index \(k) all positions") }
        }
        print("\(family) (\(m.config.architecture)\(model != nil ? ", Hugging Face folder" : "")) vs transformers: max relative error \(worst) at \(worstAt); greedy \(greedyMatched)/\(fx.prompts.count)")
        XCTAssertLessThan(worst, tolerance, "\(family) at \(worstAt)")

        // Steering: coefficient × unit direction added to the outputs of the fixture's blocks.
        let s = fx.steering
        func prepared(_ coefficient: Float) throws -> PreparedSteering {
            var vectors: [Int: [Float]] = [:]
            for b in s.layers { vectors[b] = s.directions[String(b)]!.map { $0 * coefficient } }
            return try m.prepareSteering(Steering(vectors: vectors))
        }
        var steeredMatched = 0, checked = 0
        for c in s.cases {
            guard let p = fx.prompts.first(where: { $0.name == c.prompt }),
                  p.token_ids.count + c.positive.greedy_new_ids.count - 1 <= window else { continue }
            checked += 1
            let plus = try prepared(s.coefficient), zero = try prepared(0)
            let a = try m.forward([SequenceInput(tokens: p.token_ids, steering: plus)], workspace: ws)[0].logits
            XCTAssertLessThan(relativeError(a, floats(c.positive.logits_last_f32le_base64)), tolerance, "\(family) \(c.prompt) steered logits")
            let ids = try greedy(m, p.token_ids, c.positive.greedy_new_ids.count, steering: plus)
            XCTAssertEqual(ids, c.positive.greedy_new_ids, "\(family) \(c.prompt) steered greedy")
            if ids == c.positive.greedy_new_ids { steeredMatched += 1 }
            XCTAssertNotEqual(ids, c.no_control.greedy_new_ids, "\(family) \(c.prompt): the control changes the text")
            let none = try m.forward([SequenceInput(tokens: p.token_ids)], workspace: ws)[0].logits
            let z = try m.forward([SequenceInput(tokens: p.token_ids, steering: zero)], workspace: ws)[0].logits
            XCTAssertEqual(z, none, "\(family): coefficient 0 is bit-identical to no control")
        }
        print("\(family) steered at blocks \(s.layers) × \(s.coefficient): greedy identical to repeng's ControlModel \(steeredMatched)/\(checked)")
        XCTAssertGreaterThan(checked, 0)
    }
}

final class ArchitectureGoldenTests: XCTestCase {
    private func check(_ family: String, sentencePieceIds: Bool = false) throws {
        try ArchCheck.check(family, sentencePieceIds: sentencePieceIds)
    }

    func testQwen2() throws { try check("qwen2") }

    func testQwen3() throws { try check("qwen3") }

    func testMistral() throws { try check("mistral") }

    /// Phi-3's tokenizer puts "▁" before every text (its Prepend normalizer); the tiny fixture's
    /// Hugging Face tokenizer (Metaspace, prepend "first") does not before a leading space, the
    /// sentencepiece library and llama.cpp do.
    func testPhi3() throws { try check("phi3", sentencePieceIds: true) }

    func testGPT2() throws { try check("gpt2") }

    /// Gemma-2 with small soft-caps (attention 5, logits 3) so that capping changes the logits
    /// (by up to 1.2 each in the fixture), a 16-position window on blocks 0 and 2.
    func testGemma2() throws {
        try check("gemma2")
        let m = try loadModel(path: TestSupport.fixture("arch/gemma2.gguf").path)
        XCTAssertEqual(m.config.attentionSoftcap, 5)
        XCTAssertEqual(m.config.logitSoftcap, 3)
        XCTAssertEqual(m.config.layerWindows, [16, 0, 16, 0])
    }

    /// An architecture the engine does not run (the GPT-2 fixture relabelled `gptj`) is refused by name.
    func testUnknownArchitectureIsRefusedClearly() throws {
        var bytes = [UInt8](try Data(contentsOf: TestSupport.fixture("arch/gpt2.gguf")))
        let key = Array("general.architecture".utf8), value = Array("gpt2".utf8)
        let k = try XCTUnwrap((0...(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key })
        let v = try XCTUnwrap((k...(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == value })
        bytes[v + 3] = UInt8(ascii: "j")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gptj-\(getpid()).gguf")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try loadModel(path: url.path)) { e in
            XCTAssertEqual(e as? EngineError, .unsupportedArchitecture("gptj"))
            XCTAssertTrue("\(e)".contains("supported: gemma2, gemma3, gpt2, llama, phi3, qwen2, qwen3"), "\(e)")
        }
    }
}
