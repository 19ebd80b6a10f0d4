// Golden tests against transformers (float32) loading the same SmolLM2 GGUF: token ids, hidden
// states, last-position logits and greedy continuations (fixtures: scripts/reference/make_model_fixtures.py).
import Foundation
import XCTest
@testable import RepengEngine
@testable import RepengKernels

/// Relative error used throughout: max |a − b| over a vector divided by max |b|.
private let hiddenTolerance: Float = 1e-4
private let logitTolerance: Float = 1e-4

private struct HiddenFixture: Decodable {
    struct Prompt: Decodable {
        let name: String
        let text: String
        let token_ids: [Int32]
        let last_position: [String: [Float]]
        let top_logits: [[Float]]
        let argmax: Int
        let all_positions: [String: [[Float]]]?
    }
    let prompts: [Prompt]
}

private struct LogitsFixture: Decodable {
    struct Prompt: Decodable {
        let name: String
        let token_ids: [Int32]
        let argmax: Int
        let logits_f32le_base64: String
    }
    let prompts: [Prompt]
}

private struct GreedyFixture: Decodable {
    struct Case: Decodable {
        let name: String
        let prompt_text: String
        let prompt_ids: [Int32]
        let repetition_penalty: Float
        let new_ids: [Int32]
        let stopped_on_eos: Bool
        let text: String
        let min_top2_margin: Float?
    }
    let cases: [Case]
}

final class GoldenModelTests: XCTestCase {
    private func model() async throws -> any LanguageModel { try await BundledModels.shared.model(TestSupport.smolLM2File) }

    func testTokenIdsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(HiddenFixture.self, "model/smollm2_hidden.json")
        for p in fx.prompts {
            XCTAssertEqual(m.tokenizer?.encode(p.text, addSpecial: true), p.token_ids, p.name)
        }
        let gx = try TestSupport.loadJSON(GreedyFixture.self, "model/smollm2_greedy.json")
        for c in gx.cases {
            XCTAssertEqual(m.tokenizer?.encode(c.prompt_text, addSpecial: true), c.prompt_ids, c.name)
        }
    }

    func testHiddenStatesMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(HiddenFixture.self, "model/smollm2_hidden.json")
        XCTAssertGreaterThanOrEqual(fx.prompts.count, 8)
        let ws = ForwardWorkspace()
        var worst: Float = 0, worstAt = ""
        var layersChecked = Set<Int>()
        // All prompts in one packed batch, as extraction runs them.
        let indices = fx.prompts[0].last_position.keys.compactMap(Int.init).sorted()
        let out = try m.forward(fx.prompts.map { SequenceInput(tokens: $0.token_ids) },
                                options: ForwardOptions(hiddenStates: indices, hiddenPositions: .all, logits: .last),
                                workspace: ws)
        let dim = m.config.hiddenSize
        for (p, o) in zip(fx.prompts, out) {
            let n = p.token_ids.count
            for (k, ref) in p.last_position {
                let i = Int(k)!
                layersChecked.insert(i)
                let mine = Array(o.hidden[i]![((n - 1) * dim)..<(n * dim)])
                let e = relativeError(mine, ref)
                if e > worst { worst = e; worstAt = "\(p.name) index \(i)" }
            }
            for (k, rows) in p.all_positions ?? [:] {
                let i = Int(k)!
                let e = relativeError(o.hidden[i]!, rows.flatMap { $0 })
                if e > worst { worst = e; worstAt = "\(p.name) index \(i) (all positions)" }
            }
            // Top logits: same argmax, values within tolerance.
            XCTAssertEqual(Kernels.argmax(o.logits, o.logits.count), p.argmax, p.name)
            let scale = p.top_logits.map { abs($0[1]) }.max() ?? 1
            for pair in p.top_logits {
                let e = abs(o.logits[Int(pair[0])] - pair[1]) / scale
                if e > worst { worst = e; worstAt = "\(p.name) top logits" }
            }
        }
        print("hidden states vs transformers: \(fx.prompts.count) prompts, indices \(layersChecked.sorted()), max relative error \(worst) at \(worstAt) (tolerance \(hiddenTolerance))")
        XCTAssertGreaterThanOrEqual(layersChecked.count, 4)
        XCTAssertLessThan(worst, hiddenTolerance)
    }

    func testLastPositionLogitsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(LogitsFixture.self, "model/smollm2_logits.json")
        let ws = ForwardWorkspace()
        var worst: Float = 0
        for p in fx.prompts {
            let data = Data(base64Encoded: p.logits_f32le_base64)!
            let ref = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let mine = try m.forward([SequenceInput(tokens: p.token_ids)], workspace: ws)[0].logits
            XCTAssertEqual(mine.count, ref.count)
            XCTAssertEqual(Kernels.argmax(mine, mine.count), p.argmax)
            worst = max(worst, relativeError(mine, ref))
        }
        print("last-position logits vs transformers: \(fx.prompts.count) prompts × \(m.config.vocabSize) values, max relative error \(worst) (tolerance \(logitTolerance))")
        XCTAssertLessThan(worst, logitTolerance)
    }

    func testGreedyContinuationsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(GreedyFixture.self, "model/smollm2_greedy.json")
        XCTAssertGreaterThanOrEqual(fx.cases.count, 5)
        XCTAssertTrue(fx.cases.contains { $0.repetition_penalty == 1.1 })
        var matched = 0
        for c in fx.cases {
            let req = GenerationRequest(prompt: c.prompt_ids, maxTokens: 32,
                                        sampling: SamplingParameters(repetitionPenalty: c.repetition_penalty))
            let (ids, finish) = try m.generate(req)
            if ids == c.new_ids { matched += 1 } else {
                print("mismatch in \(c.name):\n  ours: \(m.tokenizer!.decode(ids, skipSpecial: false))\n  ref:  \(c.text)")
            }
            XCTAssertEqual(ids, c.new_ids, c.name)
            XCTAssertEqual(finish == .eos, c.stopped_on_eos, c.name)
            XCTAssertEqual(m.tokenizer!.decode(ids, skipSpecial: false), c.text, c.name)
        }
        print("greedy continuations identical to transformers: \(matched)/\(fx.cases.count)")
    }

    /// A prompt run in chunks (the scheduler's prefill) gives the same logits as one pass, up to
    /// float rounding, and the same greedy text; coefficient-0 steering stays identical.
    func testChunkedPrefillMatchesWholePrompt() async throws {
        let m = try await model()
        let tok = m.tokenizer!
        let prompt = tok.encode(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 30)
                                + "<|im_start|>user\nWhat are you doing this weekend?<|im_end|>\n<|im_start|>assistant\n",
                                addSpecial: true)
        XCTAssertGreaterThan(prompt.count, 300)
        func lastLogits(chunk: Int) throws -> [Float] {
            let state = try GenerationState(model: m, request: GenerationRequest(prompt: prompt, maxTokens: 1, prefillChunk: chunk))
            let ws = ForwardWorkspace()
            var logits = [Float](repeating: 0, count: m.config.vocabSize)
            var passes = 0
            while true {
                let input = [SequenceInput(tokens: state.nextInput, cache: state.cache)]
                passes += 1
                if state.nextInputNeedsLogits {
                    try logits.withUnsafeMutableBufferPointer { try m.decodeStep(input, workspace: ws, logits: $0.baseAddress!) }
                } else {
                    _ = try m.forward(input, options: ForwardOptions(logits: .none), workspace: ws)
                }
                if state.ran() { break }
            }
            XCTAssertEqual(passes, chunk == 0 ? 1 : (prompt.count + chunk - 1) / chunk)
            XCTAssertEqual(state.cache.length, prompt.count)
            return logits
        }
        let whole = try lastLogits(chunk: 0)
        var worst: Float = 0
        for chunk in [1, 7, 64, 128] {
            let e = relativeError(try lastLogits(chunk: chunk), whole)
            worst = max(worst, e)
            XCTAssertLessThan(e, 1e-4, "chunk \(chunk)")
        }
        print("chunked prefill vs one pass, \(prompt.count) tokens: max relative logit difference \(worst)")
        let (a, _) = try m.generate(GenerationRequest(prompt: prompt, maxTokens: 16, prefillChunk: 0))
        let (b, _) = try m.generate(GenerationRequest(prompt: prompt, maxTokens: 16, prefillChunk: 64))
        XCTAssertEqual(a, b)
    }

    func testStreamingTextEqualsFullDecode() async throws {
        let m = try await model()
        let tok = m.tokenizer!
        let prompt = tok.encode("<|im_start|>user\nWrite a haiku about snow.<|im_end|>\n<|im_start|>assistant\n", addSpecial: true)
        var streamed = ""
        let (ids, _) = try m.generate(GenerationRequest(prompt: prompt, maxTokens: 24)) { ev in
            streamed += ev.text
            return true
        }
        XCTAssertEqual(streamed, tok.decode(ids, skipSpecial: true))
        // Stop strings end generation and are not returned.
        let first = String(streamed.prefix(6))
        if first.count == 6 {
            var text = ""
            let (_, finish) = try m.generate(GenerationRequest(prompt: prompt, maxTokens: 24, stopStrings: [String(first.suffix(3))])) { ev in
                text += ev.text
                return true
            }
            XCTAssertEqual(finish, .stop)
            XCTAssertEqual(text, String(first.prefix(3)))
        }
    }
}
