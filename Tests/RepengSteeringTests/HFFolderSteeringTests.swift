// SmolLM2 as a Hugging Face folder written by transformers (scripts/reference/make_smollm2_folder.py) against the bundled GGUF: ids, hidden states, greedy text and trained vectors.
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

final class HFFolderSteeringTests: XCTestCase {
    /// The folder is 540 MB and made by hand from the bundled GGUF; skipped when absent.
    private func folder() throws -> String {
        let path = SteeringTestSupport.modelsDir.appendingPathComponent("SmolLM2-135M-Instruct-hf").path
        guard FileManager.default.fileExists(atPath: path + "/config.json") else {
            throw XCTSkip("no \(path); make it with scripts/reference/make_smollm2_folder.py")
        }
        return path
    }

    func testSmolLM2FolderMatchesTheGGUF() throws {
        let hf = try loadModel(path: folder())
        let gguf = try SharedModel.shared.load()
        let texts = ["The quick brown fox jumps over the lazy dog.", " Hello  world\n\tcode: x = 42", "café 東京 3.14 🙂",
                     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"]
        let ht = try XCTUnwrap(hf.tokenizer), gt = try XCTUnwrap(gguf.tokenizer)
        for t in texts {
            XCTAssertEqual(ht.encode(t, addSpecial: true), gt.encode(t, addSpecial: true), t)
            XCTAssertEqual(ht.encode(t, addSpecial: false), gt.encode(t, addSpecial: false), t)
        }
        // Hidden states at every index and the logits of the same ids.
        let ids = gt.encode(texts[0], addSpecial: true)
        let opts = ForwardOptions(hiddenStates: Array(0...hf.config.blockCount), hiddenPositions: .all, logits: .last)
        let a = try hf.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
        let b = try gguf.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
        var worst: Float = 0
        for (k, v) in a.hidden { worst = max(worst, maxRelative(v, b.hidden[k] ?? [])) }
        worst = max(worst, maxRelative(a.logits, b.logits))
        print("SmolLM2 folder vs GGUF: hidden states and logits max relative difference \(worst)")
        XCTAssertLessThan(worst, 1e-5)
        let prompt = gt.encode(texts[3], addSpecial: true)
        let greedyA = try hf.generate(GenerationRequest(prompt: prompt, maxTokens: 24)).tokens
        let greedyB = try gguf.generate(GenerationRequest(prompt: prompt, maxTokens: 24)).tokens
        XCTAssertEqual(greedyA, greedyB, "greedy text")
        // A vector trained on each: the same directions.
        let va = try ControlVector.train(model: hf, dataset: smallDataset(model: hf, suffixCount: 6), method: .pcaCenter)
        let vb = try ControlVector.train(model: gguf, dataset: smallDataset(model: gguf, suffixCount: 6), method: .pcaCenter)
        var minCos = 1.0
        for (layer, d) in va.directions { minCos = min(minCos, cosine(d, vb.directions[layer] ?? [])) }
        print("SmolLM2 folder vs GGUF: trained vectors min cosine over \(va.directions.count) layers \(minCos)")
        XCTAssertGreaterThan(minCos, 0.9999)
    }
}

private func maxRelative(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count, !a.isEmpty else { return .infinity }
    var num: Float = 0, den: Float = 0
    for i in 0..<a.count { num = max(num, abs(a[i] - b[i])); den = max(den, abs(b[i])) }
    return num / max(den, 1e-20)
}
