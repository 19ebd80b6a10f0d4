// Control on a resident model: greedy output under coefficient 0, v * 0 and v − v is identical to
// the plain model; a real coefficient changes it; invalid control is refused.
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

final class ControlledModelTests: XCTestCase {
    let prompt = "<|im_start|>user\nTell me about your day.<|im_end|>\n<|im_start|>assistant\n"

    func testZeroControlIsBitIdenticalAndRealControlChangesOutput() throws {
        let model = try SharedModel.shared.load()
        let vector = try SharedModel.shared.happyVector()
        let cm = ControlledModel(model: model)
        let baseline = try cm.generate(prompt: prompt, maxTokens: 16)
        XCTAssertEqual(baseline.tokens.count, 16)
        print("baseline: \(baseline.text)")

        let zeroCases: [(String, () throws -> Void)] = [
            ("coefficient 0", { try cm.setControl(vector, coefficient: 0) }),
            ("v * 0", { try cm.setControl(vector * 0, coefficient: 1) }),
            ("v - v", { try cm.setControl(vector - vector, coefficient: 3) }),
            ("reset", { cm.reset() }),
        ]
        for (name, apply) in zeroCases {
            try apply()
            let out = try cm.generate(prompt: prompt, maxTokens: 16)
            XCTAssertEqual(out.tokens, baseline.tokens, name)
            XCTAssertEqual(out.text, baseline.text, name)
        }

        // Logits too, not just the argmax: a forward with all-zero steering is bit-identical.
        let tok = try XCTUnwrap(model.tokenizer)
        let ids = tok.encode(prompt, addSpecial: true)
        let plain = try model.forward([SequenceInput(tokens: ids)], workspace: ForwardWorkspace())
        let zero = try model.prepareSteering(vector.steering(for: model, coefficient: 0))
        let steered0 = try model.forward([SequenceInput(tokens: ids, steering: zero)], workspace: ForwardWorkspace())
        XCTAssertEqual(plain[0].logits.map(\.bitPattern), steered0[0].logits.map(\.bitPattern))

        var changed: [Float: String] = [:]
        for coefficient: Float in [8, -8] {
            try cm.setControl(vector, coefficient: coefficient, layers: Array(-20 ... -5))
            let out = try cm.generate(prompt: prompt, maxTokens: 16)
            print("coefficient \(coefficient): \(out.text)")
            changed[coefficient] = out.text
            XCTAssertNotEqual(out.tokens, baseline.tokens, "coefficient \(coefficient) left the output unchanged")
        }
        XCTAssertNotEqual(changed[8], changed[-8])
        XCTAssertEqual(cm.steering?.vectors.keys.sorted(), Array(10...25))

        // normalize rescales each steered position back to its norm: logits differ from the plain add.
        let add = try model.prepareSteering(vector.steering(for: model, coefficient: 8, layers: Array(-20 ... -5)))
        let norm = try model.prepareSteering(vector.steering(for: model, coefficient: 8, layers: Array(-20 ... -5), normalize: true))
        let la = try model.forward([SequenceInput(tokens: ids, steering: add)], workspace: ForwardWorkspace())[0].logits
        let ln = try model.forward([SequenceInput(tokens: ids, steering: norm)], workspace: ForwardWorkspace())[0].logits
        XCTAssertNotEqual(la, ln)
        XCTAssertNotEqual(la, plain[0].logits)
        try cm.setControl(vector, coefficient: 8, layers: Array(-20 ... -5), normalize: true)
        let normalized = try cm.generate(prompt: prompt, maxTokens: 16)
        print("coefficient 8, normalize: \(normalized.text)")
        cm.reset()
        XCTAssertEqual(try cm.generate(prompt: prompt, maxTokens: 16).tokens, baseline.tokens)
    }

    func testSteeringLayout() throws {
        let model = try SharedModel.shared.load()
        let v = ControlVector(modelType: "llama", directions: [3: [Float](repeating: 0.5, count: 576), 29: [Float](repeating: -1, count: 576)])
        let s = try v.steering(for: model, coefficient: 2)
        XCTAssertEqual(s.vectors.keys.sorted(), [3, 29])
        XCTAssertEqual(s.vectors[3]?.first, 1)
        XCTAssertEqual(s.vectors[29]?.first, -2)
        XCTAssertEqual(try v.steering(for: model, coefficient: 2, layers: [-1]).vectors.keys.sorted(), [29])
        XCTAssertTrue(try v.steering(for: model, coefficient: 0).vectors.isEmpty)
        XCTAssertTrue(v.compatibilityWarnings(for: model).isEmpty)
        var q = v
        q.modelType = "qwen2"
        XCTAssertEqual(q.compatibilityWarnings(for: model).count, 1)
        let cm = ControlledModel(model: model)
        try cm.setControl(q, coefficient: 1)
        XCTAssertEqual(cm.warnings.count, 1)
    }

    func testInvalidControlIsRefused() throws {
        let model = try SharedModel.shared.load()
        let cm = ControlledModel(model: model)
        let v = ControlVector(modelType: "llama", directions: [5: [Float](repeating: 0.1, count: 576)])
        for c: Float in [.nan, .infinity, -.infinity] {
            XCTAssertThrowsError(try cm.setControl(v, coefficient: c)) {
                guard case .nonFiniteCoefficient? = $0 as? ControlError else { return XCTFail("\($0)") }
            }
        }
        let big = ControlVector(modelType: "llama", directions: [5: [Float](repeating: 10, count: 576)])
        XCTAssertThrowsError(try cm.setControl(big, coefficient: .greatestFiniteMagnitude)) {  // coefficient × direction overflows
            XCTAssertEqual($0 as? ControlError, .nonFiniteControl(layer: 5))
        }
        XCTAssertThrowsError(try cm.setControl(ControlVector(modelType: "llama", directions: [5: [1, 2]]), coefficient: 1)) {
            XCTAssertEqual($0 as? ControlError, .hiddenSizeMismatch(vector: 2, model: 576))
        }
        XCTAssertThrowsError(try cm.setControl(v, coefficient: 1, layers: [6])) {
            XCTAssertEqual($0 as? ControlError, .missingLayer(6))
        }
        XCTAssertThrowsError(try cm.setControl(v, coefficient: 1, layers: [30])) {
            XCTAssertEqual($0 as? EngineError, .layerOutOfRange(layer: 30, blockCount: 30))
        }
        XCTAssertThrowsError(try cm.setControl(ControlVector(modelType: "llama", directions: [40: [Float](repeating: 0, count: 576)]), coefficient: 1))
        XCTAssertThrowsError(try cm.setControl(ControlVector(modelType: "llama", directions: [5: [Float](repeating: .nan, count: 576)]), coefficient: 1)) {
            XCTAssertEqual($0 as? ControlError, .nonFiniteControl(layer: 5))
        }
        // Nothing above took effect.
        XCTAssertNil(cm.steering)
    }

    func testTrainedVectorSurvivesFiles() throws {
        let model = try SharedModel.shared.load()
        let v = try SharedModel.shared.happyVector()
        let viaGGUF = try ControlVector(ggufBytes: v.ggufBytes())
        let viaJSON = try ControlVector(jsonData: v.jsonData())
        XCTAssertEqual(viaGGUF, v)
        XCTAssertEqual(viaJSON, v)
        XCTAssertEqual(try viaGGUF.steering(for: model, coefficient: 4), try v.steering(for: model, coefficient: 4))
        print("trained vector: \(v.layers.count) layers, \(v.metadata.trainingSummary ?? "")")
    }
}
