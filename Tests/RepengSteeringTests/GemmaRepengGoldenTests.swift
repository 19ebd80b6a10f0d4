// Golden comparison with repeng 0.4 on the bundled Gemma-3-270M: directions trained by the
// library against repeng's (pca_center, pca_diff; cosine per layer, same sign) and greedy text
// under control with repeng's and with the library's directions (fixtures written by
// scripts/reference/make_gemma3_repeng_fixtures.py). Gemma-3's residual stream has norms in
// the thousands, so the fixture steers with ±400.
import Foundation
import RepengEngine
import RepengSteering
import XCTest

private struct Directions: Decodable {
    var method: String
    var batch_size: Int
    var pairs: Int
    var training_seconds: Double
    var layers: [Int]
    var directions: [String: [Float]]

    func vector() -> ControlVector {
        var dirs: [Int: [Float]] = [:]
        for (k, v) in directions { if let layer = Int(k) { dirs[layer] = v } }
        return ControlVector(modelType: "gemma3", directions: dirs)
    }
}

private struct Generations: Decodable {
    struct Case: Decodable {
        var name: String
        var control: String
        var prompt: String
        var prompt_ids: [Int32]
        var coefficient: Float?
        var repetition_penalty: Float
        var generated_ids: [Int32]
        var text: String
    }
    var layers: [Int]
    var coefficient: Float
    var normalize: Bool
    var max_new_tokens: Int
    var cases: [Case]
}

/// The model and one library training run per method, shared by the tests of this file.
private final class GemmaState: @unchecked Sendable {
    static let shared = GemmaState()
    private let lock = NSLock()
    private var model: (any LanguageModel)?
    private var trained: [TrainingMethod: ControlVector] = [:]

    func load() throws -> any LanguageModel {
        let path = try SteeringTestSupport.modelPath("gemma-3-270m-q4_k_m.gguf")
        return try lock.withLock {
            if let m = model { return m }
            let m = try loadModel(path: path)
            model = m
            return m
        }
    }

    func trainedVector(_ method: TrainingMethod) throws -> ControlVector {
        let m = try load()
        return try lock.withLock {
            if let v = trained[method] { return v }
            let dataset = try loadDataset(from: GemmaRepengGoldenTests.fixture("gemma3_dataset.json"))
            let reference = try GemmaRepengGoldenTests.directions(method)
            let start = Date()
            let v = try ControlVector.train(model: m, dataset: dataset, batchSize: reference.batch_size, method: method)
            print(String(format: "[golden] gemma3 train %@: %.2f s (repeng: %.2f s for the same %d pairs)",
                         method.rawValue, Date().timeIntervalSince(start), reference.training_seconds, reference.pairs))
            trained[method] = v
            return v
        }
    }
}

final class GemmaRepengGoldenTests: XCTestCase {
    static func fixture(_ name: String) -> URL { SteeringTestSupport.fixture("repeng").appendingPathComponent(name) }

    fileprivate static func directions(_ method: TrainingMethod) throws -> Directions {
        try JSONDecoder().decode(Directions.self, from: Data(contentsOf: fixture("gemma3_directions_\(method.rawValue).json")))
    }

    private func checkTraining(_ method: TrainingMethod) throws {
        let reference = try Self.directions(method)
        let repeng = reference.vector()
        let mine = try GemmaState.shared.trainedVector(method)
        XCTAssertEqual(mine.layers, repeng.layers)
        XCTAssertEqual(mine.layers, Array(1..<18))
        var minCos = Double.infinity, minLayer = -1
        for layer in repeng.layers {
            guard let r = repeng.directions[layer], let s = mine.directions[layer] else { XCTFail("layer \(layer) missing"); continue }
            let c = RepengGoldenTests.cosine(s, r)
            if c < minCos { minCos = c; minLayer = layer }
            XCTAssertGreaterThanOrEqual(c, RepengGoldenTests.minimumCosine, "\(method.rawValue) layer \(layer): cosine \(c)\(c < 0 ? " (opposite sign)" : "")")
        }
        print(String(format: "[golden] gemma3 %@: min cosine with repeng %.9f at layer %d", method.rawValue, minCos, minLayer))
    }

    func testPcaCenterMatchesRepeng() throws { try checkTraining(.pcaCenter) }

    func testPcaDiffMatchesRepeng() throws { try checkTraining(.pcaDiff) }

    private func checkGenerations(_ vector: ControlVector, label: String) throws {
        let fx = try JSONDecoder().decode(Generations.self, from: Data(contentsOf: Self.fixture("gemma3_generations.json")))
        XCTAssertFalse(fx.normalize)
        let model = try GemmaState.shared.load()
        let tokenizer = try XCTUnwrap(model.tokenizer)
        let controlled = ControlledModel(model: model)
        var matched = 0
        for c in fx.cases {
            XCTAssertEqual(tokenizer.encode(c.prompt, addSpecial: true), c.prompt_ids, c.name)
            if c.control == "no_control" {
                controlled.reset()
            } else {
                try controlled.setControl(vector, coefficient: c.coefficient ?? 0, layers: fx.layers, normalize: fx.normalize)
            }
            let out = try controlled.generate(tokens: c.prompt_ids, maxTokens: fx.max_new_tokens,
                                              sampling: SamplingParameters(repetitionPenalty: c.repetition_penalty))
            if out.tokens == c.generated_ids { matched += 1 } else {
                XCTFail("""
                    [\(label)] \(c.name) \(c.control): continuation differs from repeng
                      repeng: \(c.text.debugDescription)
                      ours:   \(tokenizer.decode(out.tokens, skipSpecial: true).debugDescription)
                    """)
            }
        }
        controlled.reset()
        print("[golden] gemma3 \(label): \(matched)/\(fx.cases.count) continuations identical to repeng's (layers \(fx.layers.first!)...\(fx.layers.last!), ±\(fx.coefficient))")
    }

    func testGenerationsWithRepengDirectionsMatchRepeng() throws {
        try checkGenerations(try Self.directions(.pcaCenter).vector(), label: "repeng directions")
    }

    func testGenerationsWithOwnDirectionsMatchRepeng() throws {
        try checkGenerations(try GemmaState.shared.trainedVector(.pcaCenter), label: "library-trained directions")
    }
}
