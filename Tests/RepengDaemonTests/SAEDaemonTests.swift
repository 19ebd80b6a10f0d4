// Training through SAEs via the daemon and repengctl: folders from the daemon's SAE directory only,
// the library's vector, kept features (listed, refused as control), and the errors a client sees.
import Foundation
import GRPCCore
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

final class SAEDaemonTests: XCTestCase {
    static var fixtures: String {
        DaemonFixtures.repoRoot.appendingPathComponent("Tests/RepengSteeringTests/Fixtures/sae").path
    }

    /// SmolLM2 with an SAE directory holding links to the fixture SAE folders.
    private func config(_ dirs: TempDirs) throws -> DaemonConfig {
        var c = try dirs.config()
        c.saesDir = dirs.root + "/saes"
        try FileManager.default.createDirectory(atPath: c.saesDir, withIntermediateDirectories: true)
        for name in ["eleuther", "saelens"] {
            try FileManager.default.createSymbolicLink(atPath: c.saesDir + "/" + name, withDestinationPath: Self.fixtures + "/" + name)
        }
        return c
    }

    private func pairs() throws -> [Repeng_V1_DatasetEntry] {
        try DaemonFixtures.dataset().prefix(12).map { e in .with { $0.positive = e.positive; $0.negative = e.negative } }
    }

    func testTrainingThroughSAEsMatchesTheLibrary() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let model = try DaemonFixtures.model()
        let dataset = try DaemonFixtures.dataset().prefix(12).map { $0 }
        let cfg = try config(dirs)
        let entries = try pairs()
        let expected = try ControlVector.trainWithSAE(model: model, dataset: dataset,
                                                      sae: try SAESet.load(folder: Self.fixtures + "/eleuther"))
        try await withDaemon(cfg) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                var request = Repeng_V1_TrainRequest.with {
                    $0.name = "sae-happy"
                    $0.dataset = entries
                    $0.sae = "eleuther"
                }
                let (stages, first) = try await client.train(request) { r in
                    var stages: [String] = []
                    var result: Repeng_V1_TrainResult?
                    for try await ev in r.messages {
                        switch ev.event {
                        case .progress(let p)?: if stages.last != p.stage { stages.append(p.stage) }
                        case .result(let res)?: result = res
                        case nil: break
                        }
                    }
                    return (stages, result)
                }
                var result = first
                XCTAssertEqual(stages, ["hidden states", "sae encoding"])
                XCTAssertEqual(result?.vector.layers, [9, 19, 28])
                XCTAssertEqual(result?.vector.method, "pca_center")
                let trained = try ControlVector.importGGUF(path: dirs.vectors + "/sae-happy.gguf")
                XCTAssertEqual(trained.layers, expected.layers)
                var worst = 0.0
                for (layer, d) in expected.directions {
                    let t = try XCTUnwrap(trained.directions[layer])
                    for (a, b) in zip(d, t) { worst = max(worst, Double(abs(a - b))) }
                }
                // The daemon serves native weights, the library model here is exact (hidden states within ~2e-6).
                print("[sae] daemon (native weights) vs library trainWithSAE (exact weights): max |difference| \(worst)")
                XCTAssertLessThan(worst, 1e-4)
                // A decoded vector steers like any other.
                _ = try await client.setControl(.with { $0.control = control([("sae-happy", 2)]) })
                _ = try await client.reset(Repeng_V1_ResetRequest())

                // Kept features: saved marked as such, listed with their top features, refused as control.
                request.name = "sae-features"
                request.keepFeatures = true
                request.layers = [19]
                request.sae = cfg.saesDir + "/saelens"  // an absolute path inside the SAE directory
                result = try await client.train(request) { r in
                    var result: Repeng_V1_TrainResult?
                    for try await ev in r.messages { if case .result(let res)? = ev.event { result = res } }
                    return result
                }
                let top = try XCTUnwrap(result?.topFeatures.first)
                XCTAssertEqual(top.layer, 19)
                XCTAssertEqual(top.index.count, 10)
                XCTAssertEqual(result?.vector.hiddenSize, 256)
                let features = try ControlVector.importGGUF(path: dirs.vectors + "/sae-features.gguf")
                XCTAssertNotNil(features.metadata.featureSpace)
                XCTAssertEqual(ControlVector.topFeatures(features.directions[19]!, count: 10).map { UInt32($0.index) }, top.index)
                let listed = try await client.listVectors(Repeng_V1_ListVectorsRequest()).vectors.first { $0.name == "sae-features" }
                XCTAssertEqual(listed?.saeFeatures, "saelens 19:blocks.19.hook_resid_post")
                await assertRPCError(.failedPrecondition, containing: "SAE feature weights") {
                    _ = try await client.setControl(.with { $0.control = control([("sae-features", 1)]) })
                }

                // What a client gets wrong.
                request.keepFeatures = false
                request.name = "bad"
                request.layers = []
                for (sae, code, text) in [("/etc", RPCError.Code.invalidArgument, "outside the daemon's SAE directory"),
                                          ("eleuther/../../x", .invalidArgument, "no '..'"),
                                          ("missing", .notFound, "does not exist")] {
                    request.sae = sae
                    await assertRPCError(code, containing: text) { try await client.train(request) { r in for try await _ in r.messages {} } }
                }
                request.sae = "eleuther"
                request.layers = [5]
                await assertRPCError(.invalidArgument, containing: "no SAE for layer 5; the SAE folder covers layers 9,19,28") {
                    try await client.train(request) { r in for try await _ in r.messages {} }
                }
                request.layers = []
                request.sae = "saelens"
                request.saeRepengPairing = true
                await assertRPCError(.invalidArgument, containing: "EleutherAI SAEs only") {
                    try await client.train(request) { r in for try await _ in r.messages {} }
                }
                request.sae = ""
                await assertRPCError(.invalidArgument, containing: "sae_repeng_pairing is set but sae is not") {
                    try await client.train(request) { r in for try await _ in r.messages {} }
                }
            }
        }
    }

    func testRepengctlTrainsThroughAnSAE() async throws {
        let ctl = try DaemonFixtures.executable("repengctl")
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let datasetFile = dirs.root + "/happy.json"
        try encodeDataset(Array(try DaemonFixtures.dataset().prefix(8))).write(to: URL(fileURLWithPath: datasetFile))
        let S = dirs.socket
        try await withDaemon(try config(dirs)) { _ in
            var r = try await runProcess(ctl, ["--socket", S, "train", "feat", "--dataset", datasetFile, "--sae", "eleuther",
                                               "--layers", "19", "--keep-features"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("256 SAE features"), r.stdout)
            XCTAssertTrue(r.stdout.contains("layer 19 top features: "), r.stdout)
            r = try await runProcess(ctl, ["--socket", S, "train", "dec", "--dataset", datasetFile, "--sae", "eleuther",
                                           "--method", "pca_diff", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let out = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(out["layers"] as? [Int], [9, 19, 28])
            XCTAssertEqual(out["method"] as? String, "pca_diff")
            r = try await runProcess(ctl, ["--socket", S, "train", "x", "--dataset", datasetFile, "--sae", "eleuther", "--layers", "3"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("no SAE for layer 3"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            r = try await runProcess(ctl, ["--socket", S, "train", "x", "--dataset", datasetFile, "--keep-features"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--keep-features applies to --sae"), r.stderr)
        }
    }
}
