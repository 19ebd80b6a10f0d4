// Golden comparison with repeng 0.4 on SmolLM2-135M-Instruct: trained directions (pca_diff,
// pca_center), repeng's export_gguf file, and greedy continuations under control (fixtures
// written by scripts/reference/make_repeng_fixtures.py; run with -c release).
import Foundation
import RepengEngine
import XCTest
import RepengSteering

/// Directions as repeng trained them (`directions_<method>.json`).
private struct RepengDirectionsFixture: Decodable {
    var method: String
    var model_type: String
    var training_seconds: Double
    var batch_size: Int
    var pairs: Int
    var layers: [Int]
    var directions: [String: [Float]]

    func vector() throws -> ControlVector {
        var dirs: [Int: [Float]] = [:]
        for (k, v) in directions {
            guard let layer = Int(k) else { throw GoldenFixtureError.badLayerKey(k) }
            dirs[layer] = v
        }
        return ControlVector(modelType: model_type, directions: dirs)
    }
}

/// Greedy continuations repeng produced under control (`generations.json`).
private struct RepengGenerationsFixture: Decodable {
    struct Case: Decodable {
        var name: String
        var prompt: String
        var prompt_ids: [Int32]
        var coefficient: Float
        var repetition_penalty: Float
        var generated_ids: [Int32]
        var text: String
    }
    var layers: [Int]
    var normalize: Bool
    var max_new_tokens: Int
    var cases: [Case]
}

private enum GoldenFixtureError: Error, CustomStringConvertible {
    case badLayerKey(String)
    var description: String {
        switch self {
        case .badLayerKey(let k): return "directions fixture has a non-integer layer key \"\(k)\"; rerun scripts/reference/make_repeng_fixtures.py"
        }
    }
}

/// One model load and one Swift training run per method, shared by the tests of this file.
private final class GoldenState: @unchecked Sendable {
    static let shared = GoldenState()
    private let lock = NSLock()
    private var model: (any LanguageModel)?
    private var trained: [TrainingMethod: ControlVector] = [:]

    func load() throws -> any LanguageModel {
        let path = try SteeringTestSupport.modelPath()
        return try lock.withLock {
            if let m = model { return m }
            let m = try loadModel(path: path)
            model = m
            return m
        }
    }

    /// The Swift-trained vector for `method` on the fixture dataset, with repeng's batch size.
    func swiftVector(_ method: TrainingMethod) throws -> ControlVector {
        let m = try load()
        return try lock.withLock {
            if let v = trained[method] { return v }
            let dataset = try loadDataset(from: RepengGoldenTests.fixtureURL("dataset.json"))
            let reference = try RepengGoldenTests.repengDirections(method)
            let start = Date()
            let v = try ControlVector.train(model: m, dataset: dataset, batchSize: reference.batch_size, method: method)
            let seconds = Date().timeIntervalSince(start)
            print(String(format: "[golden] Swift train %@: %.2f s (repeng: %.2f s for the same %d pairs)",
                         method.rawValue, seconds, reference.training_seconds, reference.pairs))
            trained[method] = v
            return v
        }
    }
}

final class RepengGoldenTests: XCTestCase {
    static let minimumCosine = 0.999

    static func fixtureURL(_ name: String) -> URL {
        SteeringTestSupport.fixture("repeng").appendingPathComponent(name)
    }

    fileprivate static func repengDirections(_ method: TrainingMethod) throws -> RepengDirectionsFixture {
        let data = try Data(contentsOf: fixtureURL("directions_\(method.rawValue).json"))
        return try JSONDecoder().decode(RepengDirectionsFixture.self, from: data)
    }

    fileprivate static func generations() throws -> RepengGenerationsFixture {
        let data = try Data(contentsOf: fixtureURL("generations.json"))
        return try JSONDecoder().decode(RepengGenerationsFixture.self, from: data)
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<min(a.count, b.count) {
            dot += Double(a[i]) * Double(b[i])
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        return dot / max((na * nb).squareRoot(), .leastNormalMagnitude)
    }

    // MARK: Dataset

    func testDatasetFixtureIsAChatDataset() throws {
        let dataset = try loadDataset(from: Self.fixtureURL("dataset.json"))
        XCTAssertGreaterThanOrEqual(dataset.count, 120)
        for e in dataset {
            XCTAssertTrue(e.positive.hasPrefix("<|im_start|>user\nAct as if you're extremely "), e.positive)
            XCTAssertTrue(e.positive.contains("<|im_end|>\n<|im_start|>assistant\n"), e.positive)
            XCTAssertNotEqual(e.positive, e.negative)
        }
        // The same text as the library's own chat-dataset builder makes from the same parts.
        let first = try XCTUnwrap(dataset.first)
        let rebuilt = try makeChatDataset(template: "Act as if you're extremely {persona}.",
                                          positivePersonas: ["happy"], negativePersonas: ["sad"],
                                          suffixes: ["I think"], format: .chatML)
        XCTAssertEqual(rebuilt.first, first)
    }

    // MARK: Training

    private func checkTraining(_ method: TrainingMethod) throws {
        let reference = try Self.repengDirections(method)
        let repeng = try reference.vector()
        let swift = try GoldenState.shared.swiftVector(method)
        XCTAssertEqual(reference.method, method.rawValue)
        XCTAssertEqual(swift.layers, repeng.layers, "trained layers differ from repeng's (default: every block but block 0)")
        XCTAssertEqual(swift.layers, Array(1..<30))
        XCTAssertEqual(swift.modelType, repeng.modelType)

        var minCos = Double.infinity, minLayer = -1
        var report: [String] = []
        for layer in repeng.layers {
            guard let r = repeng.directions[layer], let s = swift.directions[layer] else {
                XCTFail("layer \(layer) missing on one side")
                continue
            }
            XCTAssertEqual(s.count, r.count)
            let c = Self.cosine(s, r)
            report.append(String(format: "%d:%.1e", layer, 1 - c))
            if c < minCos { minCos = c; minLayer = layer }
            XCTAssertGreaterThanOrEqual(c, Self.minimumCosine,
                                        "\(method.rawValue) layer \(layer): cosine with repeng \(c)\(c < 0 ? " (opposite sign: sign vote differs)" : "")")
        }
        print(String(format: "[golden] %@: min cosine with repeng %.9f (1 - cos = %.2e) at layer %d",
                     method.rawValue, minCos, 1 - minCos, minLayer))
        print("[golden] \(method.rawValue) per-layer 1 - cosine: \(report.joined(separator: " "))")
    }

    func testPcaDiffMatchesRepeng() throws { try checkTraining(.pcaDiff) }

    func testPcaCenterMatchesRepeng() throws { try checkTraining(.pcaCenter) }

    // MARK: Files

    func testRepengGGUFImportMatchesItsJSON() throws {
        let url = Self.fixtureURL("happy_pca_diff.gguf")
        let imported = try ControlVector.importGGUF(path: url.path)
        let viaLoad = try ControlVector.load(path: url.path)
        let json = try Self.repengDirections(.pcaDiff).vector()
        XCTAssertEqual(imported.modelType, "llama")
        XCTAssertEqual(imported.layers, Array(1..<30))
        XCTAssertEqual(imported.layers, json.layers)
        XCTAssertEqual(viaLoad.directions, imported.directions)
        var maxDiff: Float = 0
        for layer in json.layers {
            guard let a = imported.directions[layer], let b = json.directions[layer] else {
                XCTFail("layer \(layer) missing")
                continue
            }
            XCTAssertEqual(a.count, 576)
            XCTAssertEqual(a.count, b.count)
            for i in 0..<min(a.count, b.count) { maxDiff = max(maxDiff, abs(a[i] - b[i])) }
        }
        print("[golden] repeng GGUF vs JSON max |difference|: \(maxDiff)")
        XCTAssertEqual(maxDiff, 0, "repeng's GGUF and JSON hold the same float32 values")
    }

    // MARK: Generation under control

    /// Runs every fixture case with `vector` and compares token ids. Returns the names of
    /// the cases that matched.
    private func checkGenerations(vector: ControlVector, label: String) throws {
        let fixture = try Self.generations()
        XCTAssertFalse(fixture.normalize)
        let model = try GoldenState.shared.load()
        let tokenizer = try XCTUnwrap(model.tokenizer)
        let controlled = ControlledModel(model: model)
        var matched: [String] = [], differed: [String] = []
        for c in fixture.cases {
            let encoded = tokenizer.encode(c.prompt, addSpecial: true)
            XCTAssertEqual(encoded, c.prompt_ids, "\(c.name): prompt tokenization differs from transformers'")
            if c.coefficient == 0 {
                controlled.reset()
            } else {
                try controlled.setControl(vector, coefficient: c.coefficient, layers: fixture.layers, normalize: fixture.normalize)
            }
            let sampling = SamplingParameters(repetitionPenalty: c.repetition_penalty)
            let out = try controlled.generate(tokens: c.prompt_ids, maxTokens: fixture.max_new_tokens, sampling: sampling)
            let tag = "\(c.name) coeff \(c.coefficient) rp \(c.repetition_penalty)"
            if out.tokens == c.generated_ids {
                matched.append(tag)
            } else {
                differed.append(tag)
                let firstDiff = zip(out.tokens, c.generated_ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                    ?? min(out.tokens.count, c.generated_ids.count)
                let swiftText = tokenizer.decode(out.tokens, skipSpecial: true)
                XCTFail("""
                    [\(label)] \(tag): continuation differs from repeng at token \(firstDiff)
                      repeng: \(c.text.debugDescription)
                      swift:  \(swiftText.debugDescription)
                      repeng ids: \(c.generated_ids)
                      swift ids:  \(out.tokens)
                    """)
            }
        }
        controlled.reset()
        print("[golden] \(label): \(matched.count)/\(fixture.cases.count) continuations identical to repeng's")
        for m in matched { print("[golden]   match: \(m)") }
        for d in differed { print("[golden]   DIFF:  \(d)") }
    }

    func testGenerationsWithRepengDirectionsMatchRepeng() throws {
        try checkGenerations(vector: try Self.repengDirections(.pcaDiff).vector(), label: "repeng directions")
    }

    func testGenerationsWithSwiftDirectionsMatchRepeng() throws {
        try checkGenerations(vector: try GoldenState.shared.swiftVector(.pcaDiff), label: "Swift-trained directions")
    }
}
