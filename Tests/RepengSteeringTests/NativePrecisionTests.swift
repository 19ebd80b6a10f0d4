// Native precision (weights in their GGUF encodings) against exact (f32) on both bundled models:
// resident bytes, hidden-state error and greedy agreement on the golden prompts, and vectors
// trained in native mode (cosine ≥ 0.99 to exact mode's, per layer).
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

    private func compare(file: String, prompts: String, dataset: String) throws {
        let path = try SteeringTestSupport.modelPath(file)
        let exact = try loadModel(path: path, precision: .exact)
        let native = try loadModel(path: path, precision: .native)
        let ratio = Double(exact.residentBytes) / Double(native.residentBytes)
        let cases = try JSONDecoder().decode(PromptsFixture.self, from: Data(contentsOf: SteeringTestSupport.fixture("repeng/" + prompts))).cases

        // Hidden states (every index, every position) and greedy continuations.
        let L = exact.config.blockCount
        let opts = ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .last)
        var hiddenError = 0.0, agree = 0, tokensAgree = 0, tokens = 0
        for c in cases {
            let a = try exact.forward([SequenceInput(tokens: c.prompt_ids)], options: opts, workspace: ForwardWorkspace())[0]
            let b = try native.forward([SequenceInput(tokens: c.prompt_ids)], options: opts, workspace: ForwardWorkspace())[0]
            for (k, v) in a.hidden { hiddenError = max(hiddenError, relativeError(b.hidden[k] ?? [], v)) }
            var ia: [Int32] = [], ib: [Int32] = []
            try exact.generate(GenerationRequest(prompt: c.prompt_ids, maxTokens: 24, sampling: .greedy), onEvent: { if let t = $0.token { ia.append(t) }; return true })
            try native.generate(GenerationRequest(prompt: c.prompt_ids, maxTokens: 24, sampling: .greedy), onEvent: { if let t = $0.token { ib.append(t) }; return true })
            if ia == ib { agree += 1 }
            tokensAgree += zip(ia, ib).prefix { $0 == $1 }.count
            tokens += ia.count
        }

        // Training: the same pairs, every layer but block 0.
        let pairs = Array(try loadDataset(from: SteeringTestSupport.fixture("repeng/" + dataset)).prefix(24))
        let ve = try ControlVector.train(model: exact, dataset: pairs, method: .pcaCenter)
        let vn = try ControlVector.train(model: native, dataset: pairs, method: .pcaCenter)
        var minCos = 1.0
        for (layer, d) in ve.directions { minCos = min(minCos, RepengGoldenTests.cosine(d, vn.directions[layer] ?? [])) }

        print(String(format: "[native] %@: resident weights %.0f MiB exact, %.0f MiB native (%.1f× smaller); hidden states max relative error %.2e over %d prompts; greedy 24 tokens identical on %d of %d prompts (%d of %d leading tokens); trained vectors (24 pairs, %d layers) min cosine %.6f",
                     file, Double(exact.residentBytes) / 1048576, Double(native.residentBytes) / 1048576, ratio, hiddenError,
                     cases.count, agree, cases.count, tokensAgree, tokens, ve.directions.count, minCos))
        XCTAssertGreaterThan(ratio, 1)
        XCTAssertLessThan(hiddenError, 1e-3, "hidden states")
        XCTAssertGreaterThanOrEqual(minCos, Self.minimumTrainingCosine, "trained vectors")
        XCTAssertEqual(agree, cases.count, "greedy continuations")
    }

    func testSmolLM2NativeMatchesExact() throws {
        try compare(file: SteeringTestSupport.smolLM2File, prompts: "generations.json", dataset: "dataset.json")
    }

    func testGemma3NativeMatchesExact() throws {
        try compare(file: "gemma-3-270m-q4_k_m.gguf", prompts: "gemma3_generations.json", dataset: "gemma3_dataset.json")
    }
}
