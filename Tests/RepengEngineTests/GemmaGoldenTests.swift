// Golden tests of the Gemma-3 architecture against transformers (float32) loading the bundled
// gemma-3-270m GGUF: token ids, hidden states (embeddings scaled by √640, sliding-window and
// global blocks, the final norm), last-position logits, greedy continuations, and a 660-token
// prompt that crosses the 512-position window (fixtures: scripts/reference/make_gemma3_fixtures.py).
import Foundation
import XCTest
@testable import RepengEngine
@testable import RepengKernels

/// Relative error: max |a − b| over a vector divided by max |b|.
private let tolerance: Float = 1e-4

private struct HiddenFixture: Decodable {
    struct Prompt: Decodable {
        let name: String
        let text: String
        let token_ids: [Int32]
        let last_position: [String: [Float]]
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
        let logsumexp: Double
        let top_logits: [[Float]]
    }
    let prompts: [Prompt]
}

private struct GreedyFixture: Decodable {
    struct Case: Decodable {
        let name: String
        let prompt_text: String
        let prompt_ids: [Int32]
        let new_ids: [Int32]
        let stopped_on_eos: Bool
        let text: String
    }
    let cases: [Case]
}

private struct LongFixture: Decodable {
    let token_ids: [Int32]
    let last_position: [String: [Float]]
    let argmax: Int
    let top_logits: [[Float]]
}

final class GemmaGoldenTests: XCTestCase {
    private func model() async throws -> any LanguageModel { try await BundledModels.shared.model(TestSupport.gemma3File) }

    func testConfigFromTheFile() async throws {
        let c = try await model().config
        XCTAssertEqual(c.architecture, "gemma3")
        XCTAssertEqual([c.blockCount, c.hiddenSize, c.headCount, c.kvHeadCount, c.headDim, c.feedForwardSize, c.vocabSize],
                       [18, 640, 4, 1, 256, 2048, 262_144])
        XCTAssertEqual(c.layerWindows, (0..<18).map { ($0 + 1) % 6 == 0 ? 0 : 512 })
        XCTAssertEqual(c.layerRopeBases, (0..<18).map { ($0 + 1) % 6 == 0 ? 1_000_000 : 10_000 })
        XCTAssertEqual(c.embeddingScale, Float(640).squareRoot())
        XCTAssertEqual(c.attentionScale, 1 / 16)
        XCTAssertEqual(c.activation, .geluTanh)
        XCTAssertTrue(c.qkNorm && c.postNorms && c.tiedEmbeddings && !c.ropeInterleaved)
    }

    func testTokenIdsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(HiddenFixture.self, "model/gemma3_hidden.json")
        for p in fx.prompts {
            XCTAssertEqual(m.tokenizer?.encode(p.text, addSpecial: true), p.token_ids, p.name)
        }
        let gx = try TestSupport.loadJSON(GreedyFixture.self, "model/gemma3_greedy.json")
        for c in gx.cases {
            XCTAssertEqual(m.tokenizer?.encode(c.prompt_text, addSpecial: true), c.prompt_ids, c.name)
        }
    }

    func testHiddenStatesMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(HiddenFixture.self, "model/gemma3_hidden.json")
        let ws = ForwardWorkspace()
        let indices = fx.prompts[0].last_position.keys.compactMap(Int.init).sorted()
        let dim = m.config.hiddenSize
        var worst: Float = 0, worstAt = ""
        // All prompts in one packed batch, as extraction runs them.
        let out = try m.forward(fx.prompts.map { SequenceInput(tokens: $0.token_ids) },
                                options: ForwardOptions(hiddenStates: indices, hiddenPositions: .all, logits: .last),
                                workspace: ws)
        for (p, o) in zip(fx.prompts, out) {
            let n = p.token_ids.count
            for (k, ref) in p.last_position {
                let i = Int(k)!
                let e = relativeError(Array(o.hidden[i]![((n - 1) * dim)..<(n * dim)]), ref)
                if e > worst { worst = e; worstAt = "\(p.name) index \(i)" }
            }
            for (k, rows) in p.all_positions ?? [:] {
                let i = Int(k)!
                let e = relativeError(o.hidden[i]!, rows.flatMap { $0 })
                if e > worst { worst = e; worstAt = "\(p.name) index \(i) (all positions)" }
            }
            XCTAssertEqual(Kernels.argmax(o.logits, o.logits.count), p.argmax, p.name)
        }
        print("gemma3 hidden states vs transformers: \(fx.prompts.count) prompts, indices \(indices), max relative error \(worst) at \(worstAt) (tolerance \(tolerance))")
        XCTAssertLessThan(worst, tolerance)
    }

    func testLastPositionLogitsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(LogitsFixture.self, "model/gemma3_logits.json")
        let ws = ForwardWorkspace()
        var worst: Float = 0, worstLSE = 0.0
        for p in fx.prompts {
            let logits = try m.forward([SequenceInput(tokens: p.token_ids)], workspace: ws)[0].logits
            XCTAssertEqual(Kernels.argmax(logits, logits.count), p.argmax, p.name)
            let scale = p.top_logits.map { abs($0[1]) }.max() ?? 1
            for pair in p.top_logits { worst = max(worst, abs(logits[Int(pair[0])] - pair[1]) / scale) }
            let mx = Double(logits.max()!)
            let lse = mx + Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp(Double($1) - mx) })
            worstLSE = max(worstLSE, abs(lse - p.logsumexp))
        }
        print("gemma3 top-50 logits vs transformers: \(fx.prompts.count) prompts, max relative error \(worst); logsumexp max difference \(worstLSE)")
        XCTAssertLessThan(worst, tolerance)
        XCTAssertLessThan(worstLSE, 1e-3)
    }

    func testGreedyContinuationsMatchTransformers() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(GreedyFixture.self, "model/gemma3_greedy.json")
        var matched = 0
        for c in fx.cases {
            let (ids, finish) = try m.generate(GenerationRequest(prompt: c.prompt_ids, maxTokens: c.new_ids.count))
            if ids == c.new_ids { matched += 1 } else {
                print("mismatch in \(c.name):\n  ours: \(m.tokenizer!.decode(ids, skipSpecial: false))\n  ref:  \(c.text)")
            }
            XCTAssertEqual(ids, c.new_ids, c.name)
            XCTAssertEqual(finish == .eos, c.stopped_on_eos, c.name)
            XCTAssertEqual(m.tokenizer!.decode(ids, skipSpecial: false), c.text, c.name)
        }
        print("gemma3 greedy continuations identical to transformers: \(matched)/\(fx.cases.count)")
    }

    /// 660 tokens: the last query of a sliding-window block sees positions 148...659 only. Run
    /// whole, in prefill chunks (the KV-cache path) and through the BLAS attention path.
    func testPromptLongerThanTheWindow() async throws {
        let m = try await model()
        let fx = try TestSupport.loadJSON(LongFixture.self, "model/gemma3_long.json")
        XCTAssertGreaterThan(fx.token_ids.count, 512)
        let dim = m.config.hiddenSize
        let indices = fx.last_position.keys.compactMap(Int.init).sorted()
        func check(_ label: String, _ hidden: [Int: [Float]], _ logits: [Float]) {
            var worst: Float = 0
            for i in indices {
                let h = hidden[i]!
                worst = max(worst, relativeError(Array(h[(h.count - dim)...]), fx.last_position[String(i)]!))
            }
            let scale = fx.top_logits.map { abs($0[1]) }.max() ?? 1
            for pair in fx.top_logits { worst = max(worst, abs(logits[Int(pair[0])] - pair[1]) / scale) }
            print("gemma3 \(fx.token_ids.count)-token prompt (\(label)) vs transformers: max relative error \(worst)")
            XCTAssertLessThan(worst, tolerance, label)
            XCTAssertEqual(Kernels.argmax(logits, logits.count), fx.argmax, label)
        }
        let options = ForwardOptions(hiddenStates: indices, hiddenPositions: .last, logits: .last)
        let ws = ForwardWorkspace()
        let whole = try m.forward([SequenceInput(tokens: fx.token_ids)], options: options, workspace: ws)[0]
        check("one pass", whole.hidden, whole.logits)

        let cache = m.makeCache(capacity: 64)
        var last = SequenceOutput()
        var at = 0
        while at < fx.token_ids.count {
            let end = min(fx.token_ids.count, at + 200)
            last = try m.forward([SequenceInput(tokens: Array(fx.token_ids[at..<end]), cache: cache)], options: options, workspace: ws)[0]
            at = end
        }
        check("chunks of 200 with a KV cache", last.hidden, last.logits)

        let blas = ForwardWorkspace()
        blas.simdAttention = false
        let b = try m.forward([SequenceInput(tokens: fx.token_ids)], options: options, workspace: blas)[0]
        check("BLAS attention", b.hidden, b.logits)
    }
}
