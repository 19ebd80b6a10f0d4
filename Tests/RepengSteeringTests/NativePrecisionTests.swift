// Native precision (weights in their GGUF encodings) against exact (f32) on both bundled models:
// resident bytes, hidden-state error and greedy agreement on the golden prompts (decode steps with
// f32 and with int8 activations), and vectors trained in native mode (cosine ≥ 0.99 to exact's).
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

private struct PromptsFixture: Decodable {
    struct Case: Decodable { var prompt_ids: [Int32] }
    var cases: [Case]
}

final class NativePrecisionTests: XCTestCase {
    static let minimumTrainingCosine = 0.99

    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) {
            num = max(num, Double(abs(x - y)))
            den = max(den, Double(abs(y)))
        }
        return num / max(den, .leastNormalMagnitude)
    }

    /// int8 decode activations: the share of the 24 greedy tokens per prompt that must match
    /// exact mode's before the first difference (measured 0.70 SmolLM2, 0.83 Gemma-3), and the
    /// fewest leading tokens any prompt must match (measured 6 and 16).
    static let int8LeadingShare = 0.6, int8LeadingTokens = 4

    private func compare(file: String, prompts: String, dataset: String) throws {
        let path = try SteeringTestSupport.modelPath(file)
        let exact = try loadModel(path: path, precision: .exact)
        let native = try loadModel(path: path, precision: .native)
        let ratio = Double(exact.residentBytes) / Double(native.residentBytes)
        let cases = try JSONDecoder().decode(PromptsFixture.self, from: Data(contentsOf: SteeringTestSupport.fixture("repeng/" + prompts))).cases

        // Hidden states (every index, every position) and greedy continuations.
        let L = exact.config.blockCount
        let opts = ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .last)
        // Native decode steps twice: f32 activations (the weights' encodings alone), and int8
        // activations (the default), whose rounding can flip a near tie and so a continuation.
        let f32Decode = ForwardWorkspace(), int8Decode = ForwardWorkspace()
        f32Decode.int8Decode = false
        int8Decode.int8Decode = true
        var hiddenError = 0.0, agree = 0, tokensAgree = 0, tokens = 0, int8Agree = 0, int8TokensAgree = 0
        var int8FirstDivergence: [Int] = []
        for c in cases {
            let a = try exact.forward([SequenceInput(tokens: c.prompt_ids)], options: opts, workspace: ForwardWorkspace())[0]
            let b = try native.forward([SequenceInput(tokens: c.prompt_ids)], options: opts, workspace: ForwardWorkspace())[0]
            for (k, v) in a.hidden { hiddenError = max(hiddenError, relativeError(b.hidden[k] ?? [], v)) }
            var ia: [Int32] = [], ib: [Int32] = [], i8: [Int32] = []
            let request = GenerationRequest(prompt: c.prompt_ids, maxTokens: 24, sampling: .greedy)
            try exact.generate(request, onEvent: { if let t = $0.token { ia.append(t) }; return true })
            try native.generate(request, workspace: f32Decode, onEvent: { if let t = $0.token { ib.append(t) }; return true })
            try native.generate(request, workspace: int8Decode, onEvent: { if let t = $0.token { i8.append(t) }; return true })
            if ia == ib { agree += 1 }
            tokensAgree += zip(ia, ib).prefix { $0 == $1 }.count
            tokens += ia.count
            let leading = zip(ia, i8).prefix { $0 == $1 }.count
            if ia == i8 { int8Agree += 1 } else { int8FirstDivergence.append(leading) }
            int8TokensAgree += leading
        }

        // Training: the same pairs, every layer but block 0.
        let pairs = Array(try loadDataset(from: SteeringTestSupport.fixture("repeng/" + dataset)).prefix(24))
        let ve = try ControlVector.train(model: exact, dataset: pairs, method: .pcaCenter)
        let vn = try ControlVector.train(model: native, dataset: pairs, method: .pcaCenter)
        var minCos = 1.0
        for (layer, d) in ve.directions { minCos = min(minCos, RepengGoldenTests.cosine(d, vn.directions[layer] ?? [])) }

        print(String(format: "[native] %@: resident weights %.0f MiB exact, %.0f MiB native (%.1f× smaller); hidden states max relative error %.2e over %d prompts; greedy 24 tokens identical on %d of %d prompts (%d of %d leading tokens); with int8 decode activations identical on %d of %d (%d of %d leading tokens; the others first differ at token %@); trained vectors (24 pairs, %d layers) min cosine %.6f",
                     file, Double(exact.residentBytes) / 1048576, Double(native.residentBytes) / 1048576, ratio, hiddenError,
                     cases.count, agree, cases.count, tokensAgree, tokens, int8Agree, cases.count, int8TokensAgree, tokens,
                     int8FirstDivergence.map(String.init).joined(separator: ", "), ve.directions.count, minCos))
        XCTAssertGreaterThan(ratio, 1)
        XCTAssertLessThan(hiddenError, 1e-3, "hidden states")
        XCTAssertGreaterThanOrEqual(minCos, Self.minimumTrainingCosine, "trained vectors")
        XCTAssertEqual(agree, cases.count, "greedy continuations")
        XCTAssertGreaterThanOrEqual(Double(int8TokensAgree) / Double(tokens), Self.int8LeadingShare, "int8 decode: leading tokens")
        XCTAssertGreaterThanOrEqual(int8FirstDivergence.min() ?? 24, Self.int8LeadingTokens, "int8 decode: first difference")
    }

    func testSmolLM2NativeMatchesExact() throws {
        try compare(file: SteeringTestSupport.smolLM2File, prompts: "generations.json", dataset: "dataset.json")
    }

    func testGemma3NativeMatchesExact() throws {
        try compare(file: "gemma-3-270m-q4_k_m.gguf", prompts: "gemma3_generations.json", dataset: "gemma3_dataset.json")
    }
}
