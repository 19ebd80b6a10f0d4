// Golden comparison with repeng 0.4's train_with_sae on SmolLM2-135M-Instruct, through SAEs saved
// by EleutherAI sparsify and SAELens (fixtures written by scripts/reference/make_sae_fixtures.py;
// run with -c release): encoder outputs, decoded and feature-space directions, both pairings.
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

/// A directions fixture (`eleuther_pca_center.json`, …).
private struct SAEDirectionsFixture: Decodable {
    var method: String
    var pairs: Int
    var layers: [Int]
    var directions: [String: [Float]]
    var norms: [String: Double]
    var top_features: [String: [[Double]]]?
}

/// One hidden-state row and what each library's encoder made of it (`encode_check.json`).
private struct EncodeCheckFixture: Decodable {
    struct Eleuther: Decodable { var layer: Int; var pre_acts: [Float] }
    struct Lens: Decodable { var layer: Int; var features: [Float] }
    var hidden_states: [String: [Float]]
    var eleuther: [String: Eleuther]
    var saelens: [String: Lens]
}

/// One model load and one hidden-state extraction for every layer the fixtures use.
private final class SAEGoldenState: @unchecked Sendable {
    static let shared = SAEGoldenState()
    static let layers = [9, 10, 14, 19, 20, 24, 28, 29]
    private let lock = NSLock()
    private var cached: (model: any LanguageModel, dataset: [DatasetEntry], hiddens: [Int: HiddenMatrix])?

    func load() throws -> (model: any LanguageModel, dataset: [DatasetEntry], hiddens: [Int: HiddenMatrix]) {
        let path = try SteeringTestSupport.modelPath()
        return try lock.withLock {
            if let c = cached { return c }
            let model = try loadModel(path: path)
            let dataset = try loadDataset(from: SteeringTestSupport.fixture("repeng/dataset.json"))
            var hiddens: [Int: HiddenMatrix] = [:]
            _ = try ControlVector.train(model: model, dataset: dataset, layers: Self.layers, batchSize: 32, method: .pcaCenter,
                                        transformHiddens: { h in hiddens = h; return h })
            cached = (model, dataset, hiddens)
            return (model, dataset, hiddens)
        }
    }
}

final class SAEGoldenTests: XCTestCase {
    static let minimumCosine = 0.999
    static let normTolerance = 1e-3

    private static func fixture<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: SteeringTestSupport.fixture("sae/" + name)))
    }

    private static func folder(_ name: String) -> String { SteeringTestSupport.fixture("sae/" + name).path }

    private static func norm(_ v: [Float]) -> Double { v.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

    /// Per-layer cosine ≥ 0.999 and norms within 1e-3 relative of repeng's directions.
    private func compare(_ directions: [Int: [Float]], _ fixture: SAEDirectionsFixture, label: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(directions.keys.sorted(), fixture.layers, label, file: file, line: line)
        var worstCos = 1.0, worstNorm = 0.0
        for layer in fixture.layers {
            guard let got = directions[layer], let want = fixture.directions[String(layer)] else {
                XCTFail("\(label): layer \(layer) missing", file: file, line: line)
                continue
            }
            let cos = RepengGoldenTests.cosine(got, want)
            let rel = abs(Self.norm(got) - fixture.norms[String(layer)]!) / fixture.norms[String(layer)]!
            worstCos = min(worstCos, cos)
            worstNorm = max(worstNorm, rel)
            XCTAssertGreaterThanOrEqual(cos, Self.minimumCosine, "\(label) layer \(layer)", file: file, line: line)
            XCTAssertLessThanOrEqual(rel, Self.normTolerance, "\(label) layer \(layer) norm", file: file, line: line)
        }
        print(String(format: "[sae golden] %@: min cosine %.7f, max relative norm difference %.2e (tolerances %.3f, %.0e)",
                     label, worstCos, worstNorm, Self.minimumCosine, Self.normTolerance))
    }

    func testEncodersMatchTheLibraries() throws {
        let check = try Self.fixture("encode_check.json", as: EncodeCheckFixture.self)
        let eleuther = try SAESet.load(folder: Self.folder("eleuther"))
        let lens = try SAESet.load(folder: Self.folder("saelens"))
        XCTAssertEqual(eleuther.layers, [9, 19, 28])
        XCTAssertEqual(lens.layers, [9, 14, 19, 24])
        XCTAssertEqual(lens.byLayer.values.map(\.activation.description).sorted(), ["gated", "jumprelu", "relu", "topk(32)"])
        XCTAssertEqual(eleuther.byLayer[19]?.dtype, .bf16)
        XCTAssertEqual(lens.byLayer[19]?.dtype, .f16)
        XCTAssertEqual(lens.byLayer[24]?.inputNormalization, .constantNormRescale)
        var cases: [(String, SparseAutoencoder, [Float])] = []
        for (name, e) in check.eleuther { cases.append((name, eleuther.byLayer[e.layer]!, e.pre_acts)) }
        for (name, l) in check.saelens { cases.append((name, lens.byLayer[l.layer]!, l.features)) }
        for (name, sae, want) in cases.sorted(by: { $0.0 < $1.0 }) {
            let h = try XCTUnwrap(check.hidden_states[String(sae.block)])
            let got = try sae.encode(try HiddenMatrix(rows: 1, columns: h.count, values: h)).values
            let scale = Double(want.map { abs($0) }.max() ?? 1)
            var worst = 0.0, mismatched = 0
            for (a, b) in zip(got, want) {
                worst = max(worst, Double(abs(a - b)))
                if (a != 0) != (b != 0) { mismatched += 1 }
            }
            print(String(format: "[sae golden] encode %@ (%@): max |difference| %.2e (%.2e of the largest), active-set mismatches %d",
                         name, sae.summary, worst, worst / scale, mismatched))
            XCTAssertEqual(mismatched, 0, name)
            XCTAssertLessThan(worst / scale, 1e-5, name)
        }
    }

    func testTrainWithEleutherSAEsMatchesRepeng() throws {
        let (model, dataset, hiddens) = try SAEGoldenState.shared.load()
        let sae = try SAESet.load(folder: Self.folder("eleuther"))
        let reference = try Self.fixture("eleuther_pca_center.json", as: SAEDirectionsFixture.self)
        // The whole path once, the model's own extraction included.
        let start = Date()
        let trained = try ControlVector.trainWithSAE(model: model, dataset: dataset, sae: sae, batchSize: 32)
        print(String(format: "[sae golden] trainWithSAE, 128 pairs, 3 layers: %.2f s", Date().timeIntervalSince(start)))
        XCTAssertNil(trained.metadata.featureSpace)
        XCTAssertEqual(trained.metadata.method, "pca_center")
        XCTAssertTrue(trained.metadata.trainingSummary?.contains("through eleuther SAEs (9:layers.9,19:layers.19,28:layers.28)") ?? false,
                      trained.metadata.trainingSummary ?? "")
        compare(trained.directions, reference, label: "eleuther pca_center")

        let diff = try Self.fixture("eleuther_pca_diff.json", as: SAEDirectionsFixture.self)
        compare(try ControlVector.fitWithSAE(hiddens: hiddens.filter { sae.layers.contains($0.key) }, sae: sae, method: .pcaDiff),
                diff, label: "eleuther pca_diff")

        // repeng's own from_eleuther: its layer N reads layers.{N-1}.
        let repengPairing = try SAESet.load(folder: Self.folder("eleuther"), pairing: .repeng)
        let viaRepeng = try Self.fixture("eleuther_repeng_pairing.json", as: SAEDirectionsFixture.self)
        compare(try ControlVector.fitWithSAE(hiddens: hiddens.filter { repengPairing.layers.contains($0.key) }, sae: repengPairing),
                viaRepeng, label: "eleuther, repeng's pairing")
    }

    func testKeptFeaturesMatchRepeng() throws {
        let (model, dataset, hiddens) = try SAEGoldenState.shared.load()
        let sae = try SAESet.load(folder: Self.folder("eleuther"))
        let reference = try Self.fixture("eleuther_features_pca_center.json", as: SAEDirectionsFixture.self)
        let v = try ControlVector.trainWithSAE(model: model, dataset: dataset, sae: sae, decode: false,
                                               computeHiddens: { _, layers in hiddens.filter { layers.contains($0.key) } })
        compare(v.directions, reference, label: "eleuther features pca_center")
        for layer in reference.layers {
            let want = reference.top_features![String(layer)]!.map { Int($0[0]) }
            XCTAssertEqual(ControlVector.topFeatures(v.directions[layer]!, count: 10).map(\.index), want, "layer \(layer)")
        }
        // Saved marked as features, read back marked, refused as control.
        XCTAssertEqual(v.metadata.featureSpace, "eleuther 9:layers.9,19:layers.19,28:layers.28")
        XCTAssertEqual(v.metadata.hiddenSize, 256)
        for back in [try ControlVector(ggufBytes: try v.ggufBytes()), try ControlVector(jsonData: try v.jsonData())] {
            XCTAssertEqual(back.metadata.featureSpace, v.metadata.featureSpace)
        }
        XCTAssertThrowsError(try ControlledModel(model: model).setControl(v, coefficient: 1)) { e in
            guard case .featureSpace? = e as? ControlError else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("SAE feature weights"))
        }
    }

    func testTrainWithSAELensSAEsMatchesRepeng() throws {
        let (model, dataset, hiddens) = try SAEGoldenState.shared.load()
        let sae = try SAESet.load(folder: Self.folder("saelens"))
        let reference = try Self.fixture("saelens_pca_center.json", as: SAEDirectionsFixture.self)
        compare(try ControlVector.fitWithSAE(hiddens: hiddens.filter { sae.layers.contains($0.key) }, sae: sae),
                reference, label: "saelens pca_center (standard, jumprelu, topk, gated)")
        // Layers follow the folder; asking for one it lacks names those it has.
        XCTAssertThrowsError(try ControlVector.trainWithSAE(model: model, dataset: dataset, sae: sae, layers: [10])) { e in
            XCTAssertEqual(e as? SAEError, .noSAEForLayer(layer: 10, available: [9, 14, 19, 24]))
        }
        // Negative ids count from the end, as everywhere: -21 is block 9 of 30.
        let one = try SAESet.load(folder: Self.folder("saelens/blocks.9.hook_resid_post"))
        let v = try ControlVector.trainWithSAE(model: model, dataset: Array(dataset.prefix(4)), sae: one, layers: [-21])
        XCTAssertEqual(v.layers, [9])
    }
}
