// SAE folders written here (both layouts, F32/F16/BF16, every architecture): layer mapping,
// refusals with their messages, encoders against the plain reference, and the Gram-matrix fit
// against the direct PCA on the same features.
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

/// Small SAEs written as real files in a temporary folder.
struct SAEWriter {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "sae-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    /// Deterministic values in [-scale, scale).
    static func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    /// A safetensors file of the named tensors, in `dtype` ("F32", "F16" or "BF16").
    static func safetensors(_ tensors: [(String, [Int], [Float])], dtype: String = "F32") -> [UInt8] {
        var header = "{", data: [UInt8] = []
        for (i, (name, shape, values)) in tensors.enumerated() {
            let begin = data.count
            for v in values {
                switch dtype {
                case "F16": withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { data += $0 }
                case "BF16": withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { data += $0 }
                default: withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 }
                }
            }
            header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(data.count)]}"
        }
        header += "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
        return out + Array(header.utf8) + data
    }

    /// Rounds like the stored dtype, so references see the values the file holds.
    static func stored(_ v: [Float], dtype: String) -> [Float] {
        switch dtype {
        case "F16": return v.map { Float(Float16($0)) }
        case "BF16": return v.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
        default: return v
        }
    }

    @discardableResult
    func write(_ folder: String, cfg: String, file: String, tensors: [(String, [Int], [Float])], dtype: String = "F32") throws -> String {
        let dir = root + "/" + folder
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(cfg.utf8).write(to: URL(fileURLWithPath: dir + "/cfg.json"))
        try Data(Self.safetensors(tensors, dtype: dtype)).write(to: URL(fileURLWithPath: dir + "/" + file))
        return dir
    }

    /// An EleutherAI SAE at `layers.N` (or another folder name).
    @discardableResult
    func eleuther(_ name: String, d: Int, latents F: Int, seed: UInt64 = 1, dtype: String = "F32", extraCfg: String = "",
                  extraTensors: [(String, [Int], [Float])] = []) throws -> String {
        let cfg = "{\"expansion_factor\": 32, \"normalize_decoder\": true, \"num_latents\": \(F), \"k\": 4, \"multi_topk\": false, \"skip_connection\": false, \"transcode\": false, \"activation\": \"topk\", \"d_in\": \(d)\(extraCfg)}"
        return try write(name, cfg: cfg, file: "sae.safetensors", tensors: [
            ("encoder.weight", [F, d], Self.values(F * d, seed: seed)),
            ("encoder.bias", [F], Self.values(F, seed: seed + 1, scale: 0.2)),
            ("W_dec", [F, d], Self.values(F * d, seed: seed + 2)),
            ("b_dec", [d], Self.values(d, seed: seed + 3, scale: 0.3)),
        ] + extraTensors, dtype: dtype)
    }

    /// A SAELens SAE of `architecture` on `hook`.
    @discardableResult
    func saelens(_ name: String, hook: String, architecture: String, d: Int, latents F: Int, seed: UInt64 = 11,
                 dtype: String = "F32", normalize: String = "none", applyBDec: Bool = true, k: Int = 5) throws -> String {
        var tensors: [(String, [Int], [Float])] = [
            ("W_enc", [d, F], Self.values(F * d, seed: seed)),
            ("W_dec", [F, d], Self.values(F * d, seed: seed + 2)),
            ("b_dec", [d], Self.values(d, seed: seed + 3, scale: 0.3)),
        ]
        switch architecture {
        case "gated":
            tensors += [("b_gate", [F], Self.values(F, seed: seed + 4, scale: 0.2)),
                        ("r_mag", [F], Self.values(F, seed: seed + 5, scale: 0.5)),
                        ("b_mag", [F], Self.values(F, seed: seed + 6, scale: 0.2))]
        case "jumprelu":
            tensors += [("b_enc", [F], Self.values(F, seed: seed + 1, scale: 0.2)),
                        ("threshold", [F], Self.values(F, seed: seed + 7, scale: 0.5).map { abs($0) })]
        default:
            tensors += [("b_enc", [F], Self.values(F, seed: seed + 1, scale: 0.2))]
        }
        let cfg = "{\"architecture\": \"\(architecture)\", \"d_in\": \(d), \"d_sae\": \(F), \"dtype\": \"float32\", \"device\": \"cpu\", \"apply_b_dec_to_input\": \(applyBDec), \"normalize_activations\": \"\(normalize)\", \"k\": \(k), \"metadata\": {\"hook_name\": \"\(hook)\", \"hook_head_index\": null, \"model_name\": \"test\"}}"
        return try write(name, cfg: cfg, file: "sae_weights.safetensors", tensors: tensors, dtype: dtype)
    }
}

final class SAEFolderTests: XCTestCase {
    private var w: SAEWriter!

    override func setUpWithError() throws { w = try SAEWriter() }
    override func tearDown() { w.remove() }

    private func expectError(_ folder: String, pairing: SAEPairing = .block, contains: String,
                             file: StaticString = #filePath, line: UInt = #line, _ matches: (SAEError) -> Bool) {
        do {
            _ = try SAESet.load(folder: folder, pairing: pairing)
            XCTFail("expected an error", file: file, line: line)
        } catch let e as SAEError {
            XCTAssertTrue(matches(e), "unexpected \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(contains), "message '\(e)' lacks '\(contains)'", file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
    }

    // MARK: Layers

    func testLayerMappingOfBothLayouts() throws {
        try w.eleuther("eleuther/layers.3", d: 8, latents: 16)
        try w.eleuther("eleuther/layers.5", d: 8, latents: 16, seed: 5)
        let e = try SAESet.load(folder: w.root + "/eleuther")
        XCTAssertEqual(e.layers, [3, 5])
        XCTAssertEqual(e.byLayer[3]?.block, 3)
        XCTAssertEqual(e.byLayer[3]?.hook, "layers.3")
        // repeng's from_eleuther: its layer N reads layers.{N-1}.
        let r = try SAESet.load(folder: w.root + "/eleuther", pairing: .repeng)
        XCTAssertEqual(r.layers, [4, 6])
        XCTAssertEqual(r.byLayer[4]?.hook, "layers.3")
        // One SAE folder named directly.
        XCTAssertEqual(try SAESet.load(folder: w.root + "/eleuther/layers.5").layers, [5])

        try w.saelens("lens/a", hook: "blocks.2.hook_resid_post", architecture: "standard", d: 8, latents: 16)
        try w.saelens("lens/b", hook: "blocks.4.hook_resid_pre", architecture: "topk", d: 8, latents: 16)
        let l = try SAESet.load(folder: w.root + "/lens")
        // hook_resid_pre of block 4 is the output of block 3.
        XCTAssertEqual(l.layers, [2, 3])
        XCTAssertEqual(l.byLayer[3]?.hook, "blocks.4.hook_resid_pre")
        XCTAssertEqual(l.byLayer[3]?.activation, .topK(5))
        XCTAssertEqual(SAEPairing.block.layer(servedBy: 7), 7)
        XCTAssertEqual(SAEPairing.repeng.layer(servedBy: 7), 8)
        XCTAssertThrowsError(try l.check(hiddenSize: 9, blockCount: 30)) { e in
            XCTAssertEqual(e as? SAEError, .hiddenSizeMismatch(path: w.root + "/lens/a", sae: 8, model: 9))
            XCTAssertTrue("\(e)".contains("hidden size is 9"))
        }
        XCTAssertThrowsError(try l.check(hiddenSize: 8, blockCount: 3)) { e in
            guard case .layerOutOfRange(_, 3, 3)? = e as? SAEError else { return XCTFail("\(e)") }
        }
        try l.check(hiddenSize: 8, blockCount: 4)
    }

    func testHooksOutsideTheResidualStreamAreRefused() throws {
        for (hook, text) in [("blocks.3.attn.hook_z", "attn.hook_z"), ("blocks.3.hook_mlp_out", "hook_mlp_out"),
                             ("blocks.0.hook_resid_pre", "token embeddings"), ("ln_final.hook_normalized", "ln_final")] {
            let dir = try w.saelens("h-\(hook)", hook: hook, architecture: "standard", d: 4, latents: 8)
            expectError(dir, contains: text) { if case .unsupportedHook = $0 { return true }; return false }
        }
        for name in ["layers.3.mlp", "embed_tokens", "layers.x"] {
            let dir = try w.eleuther(name, d: 4, latents: 8)
            expectError(dir, contains: name) { if case .unsupportedHook = $0 { return true }; return false }
        }
        XCTAssertEqual(try SAESet.load(folder: try w.eleuther("model.layers.2", d: 4, latents: 8)).layers, [2])
    }

    func testUnsupportedKindsAreRefused() throws {
        let transcoder = try w.eleuther("t/layers.1", d: 4, latents: 8, extraCfg: ", \"transcode\": true")
        expectError(transcoder, contains: "transcoder") { if case .unsupported = $0 { return true }; return false }
        let skip = try w.eleuther("s/layers.1", d: 4, latents: 8, extraTensors: [("W_skip", [4, 4], SAEWriter.values(16, seed: 9))])
        expectError(skip, contains: "skip connection") { if case .unsupported = $0 { return true }; return false }
        let arch = try w.saelens("arch", hook: "blocks.1.hook_resid_post", architecture: "jumprelu_skip_transcoder", d: 4, latents: 8)
        expectError(arch, contains: "jumprelu_skip_transcoder") { if case .unsupported = $0 { return true }; return false }
        let lens = try w.saelens("pair", hook: "blocks.1.hook_resid_post", architecture: "standard", d: 4, latents: 8)
        expectError(lens, pairing: .repeng, contains: "EleutherAI SAEs only") { $0 == .pairingNeedsEleuther(path: lens) }
    }

    func testMalformedFoldersAreRefused() throws {
        expectError(w.root + "/missing", contains: "does not exist") { $0 == .notFound(path: w.root + "/missing") }
        try FileManager.default.createDirectory(atPath: w.root + "/empty/sub", withIntermediateDirectories: true)
        expectError(w.root + "/empty", contains: "no SAE in") { $0 == .noSAEs(path: w.root + "/empty") }

        let unknown = w.root + "/unknown/layers.1"
        try FileManager.default.createDirectory(atPath: unknown, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: unknown + "/cfg.json"))
        expectError(w.root + "/unknown", contains: "neither sae.safetensors") { $0 == .unknownLayout(path: unknown) }

        let bad = try w.eleuther("badjson/layers.1", d: 4, latents: 8)
        try Data("{\"d_in\": ".utf8).write(to: URL(fileURLWithPath: bad + "/cfg.json"))
        expectError(bad, contains: "not valid JSON") { if case .badConfig = $0 { return true }; return false }
        let arr = try w.eleuther("arr/layers.1", d: 4, latents: 8)
        try Data("[1]".utf8).write(to: URL(fileURLWithPath: arr + "/cfg.json"))
        expectError(arr, contains: "not an object") { if case .badConfig = $0 { return true }; return false }
        let din = try w.eleuther("din/layers.1", d: 4, latents: 8, extraCfg: ", \"d_in\": 5")
        expectError(din, contains: "d_in is 5") { if case .badConfig = $0 { return true }; return false }

        let noDec = try w.write("nodec/layers.1", cfg: "{}", file: "sae.safetensors", tensors: [
            ("encoder.weight", [8, 4], SAEWriter.values(32, seed: 1)), ("encoder.bias", [8], SAEWriter.values(8, seed: 2)),
            ("b_dec", [4], SAEWriter.values(4, seed: 3))])
        expectError(noDec, contains: "no decoder") { if case .unsupported = $0 { return true }; return false }
        let shape = try w.write("shape/layers.1", cfg: "{}", file: "sae.safetensors", tensors: [
            ("encoder.weight", [8, 4], SAEWriter.values(32, seed: 1)), ("encoder.bias", [7], SAEWriter.values(7, seed: 2)),
            ("W_dec", [8, 4], SAEWriter.values(32, seed: 1)), ("b_dec", [4], SAEWriter.values(4, seed: 3))])
        expectError(shape, contains: "encoder.bias") { if case .badTensor = $0 { return true }; return false }
        let nan = try w.write("nan/layers.1", cfg: "{}", file: "sae.safetensors", tensors: [
            ("encoder.weight", [8, 4], SAEWriter.values(32, seed: 1)), ("encoder.bias", [8], [Float](repeating: .nan, count: 8)),
            ("W_dec", [8, 4], SAEWriter.values(32, seed: 1)), ("b_dec", [4], SAEWriter.values(4, seed: 3))])
        expectError(nan, contains: "NaN") { if case .badTensor = $0 { return true }; return false }

        let truncated = try w.eleuther("trunc/layers.1", d: 4, latents: 8)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: truncated + "/sae.safetensors"))
        expectError(truncated, contains: "safetensors") { if case .safetensors = $0 { return true }; return false }

        try w.eleuther("dup/a/layers.2", d: 4, latents: 8)
        try w.saelens("dup/b", hook: "blocks.2.hook_resid_post", architecture: "standard", d: 4, latents: 8)
        // Only one level down is looked at, so a/ (without cfg.json) is skipped…
        XCTAssertEqual(try SAESet.load(folder: w.root + "/dup").layers, [2])
        try w.saelens("dup2/x", hook: "blocks.2.hook_resid_post", architecture: "standard", d: 4, latents: 8)
        try w.saelens("dup2/y", hook: "blocks.3.hook_resid_pre", architecture: "standard", d: 4, latents: 8)
        // …and two SAEs serving one layer are an error.
        expectError(w.root + "/dup2", contains: "two SAEs serve layer 2") { if case .duplicateLayer(2, _, _) = $0 { return true }; return false }
    }

    // MARK: Encoding

    /// Fast encode (chunked, every layout, dtype and architecture) against the plain reference.
    func testEncodersMatchTheReference() throws {
        let d = 24, F = 200
        var saes: [SparseAutoencoder] = []
        for dtype in ["F32", "F16", "BF16"] {
            saes.append(try SAESet.load(folder: try w.eleuther("e-\(dtype)/layers.1", d: d, latents: F, dtype: dtype)).byLayer[1]!)
            for arch in ["standard", "jumprelu", "topk", "gated"] {
                for norm in ["none", "constant_norm_rescale", "layer_norm"] {
                    let dir = try w.saelens("l-\(dtype)-\(arch)-\(norm)", hook: "blocks.1.hook_resid_post", architecture: arch,
                                            d: d, latents: F, dtype: dtype, normalize: norm, applyBDec: norm != "layer_norm", k: 17)
                    saes.append(try SAESet.load(folder: dir).byLayer[1]!)
                }
            }
        }
        let rows = 5
        let x = SAEWriter.values(rows * d, seed: 77, scale: 2)
        var worst = 0.0
        for s in saes {
            for chunk in [F, 64, 37] {
                var out = [Float](repeating: 0, count: rows * F)
                try x.withUnsafeBufferPointer { xp in
                    try out.withUnsafeMutableBufferPointer { try s.encode(xp.baseAddress!, rows: rows, into: $0.baseAddress!, chunk: chunk) }
                }
                for r in 0..<rows {
                    let ref = try s.encodeReference(Array(x[(r * d)..<((r + 1) * d)]))
                    let got = Array(out[(r * F)..<((r + 1) * F)])
                    // Features near a threshold may switch on or off with rounding; none do here.
                    XCTAssertEqual(ref.map { $0 != 0 }, got.map { $0 != 0 }, "\(s.summary) chunk \(chunk) row \(r): active set")
                    for j in 0..<F { worst = max(worst, Double(abs(ref[j] - got[j]))) }
                }
            }
            if case .topK(let k) = s.activation {
                var out = [Float](repeating: 0, count: F)
                try Array(x[0..<d]).withUnsafeBufferPointer { xp in
                    try out.withUnsafeMutableBufferPointer { try s.encode(xp.baseAddress!, rows: 1, into: $0.baseAddress!) }
                }
                XCTAssertLessThanOrEqual(out.filter { $0 != 0 }.count, k)
            }
        }
        print("[sae] encode fast vs reference over \(saes.count) SAEs: max |difference| \(worst)")
        XCTAssertLessThan(worst, 1e-4)
    }

    func testDecodeIsFeaturesTimesTheDecoder() throws {
        let d = 12, F = 150
        for dtype in ["F32", "BF16"] {
            let s = try SAESet.load(folder: try w.eleuther("dec-\(dtype)/layers.1", d: d, latents: F, seed: 3, dtype: dtype)).byLayer[1]!
            let wDec = SAEWriter.stored(SAEWriter.values(F * d, seed: 5), dtype: dtype)
            let f = SAEWriter.values(F, seed: 99)
            var worst = 0.0
            for chunk in [F, 64] {
                let got = try s.decode(f, chunk: chunk)
                for c in 0..<d {
                    var ref = 0.0
                    for j in 0..<F { ref += Double(f[j]) * Double(wDec[j * d + c]) }
                    worst = max(worst, abs(ref - Double(got[c])))
                }
            }
            XCTAssertLessThan(worst, 1e-4, dtype)
            XCTAssertThrowsError(try s.decode([1, 2])) { XCTAssertTrue("\($0)".contains("2 feature values")) }
        }
    }

    func testKthLargest() {
        for n in [1, 2, 7, 100] {
            let v = SAEWriter.values(n, seed: UInt64(n))
            for k in [1, (n + 1) / 2, n] {
                var copy = v
                XCTAssertEqual(SparseAutoencoder.kthLargest(&copy, k), v.sorted(by: >)[k - 1])
            }
        }
        var ties: [Float] = [3, 1, 3, 3, 2]
        XCTAssertEqual(SparseAutoencoder.kthLargest(&ties, 3), 3)
    }

    // MARK: Fitting

    /// The Gram-matrix fit of `trainWithSAE` equals `fitLayer` on the explicit feature rows.
    func testGramFitEqualsDirectPCA() throws {
        let pairs = 9, F = 40
        let h = SAEWriter.values(2 * pairs * F, seed: 123).map { max(0, $0) }  // sparse-ish, non-negative
        var D = [Float](repeating: 0, count: pairs * F)
        for p in 0..<pairs { for j in 0..<F { D[p * F + j] = h[2 * p * F + j] - h[(2 * p + 1) * F + j] } }
        let matrix = try HiddenMatrix(rows: 2 * pairs, columns: F, values: h)
        for method in TrainingMethod.allCases {
            let direct = try ControlVector.fitLayer(matrix, layer: 1, method: method)
            let gram = try ControlVector.fitDifferences(D, pairs: pairs, latents: F, layer: 1, method: method)
            let cos = RepengGoldenTests.cosine(direct.direction, gram.direction)
            print("[sae] \(method.rawValue): Gram fit vs direct PCA cosine \(cos)")
            XCTAssertGreaterThan(cos, 0.999999, method.rawValue)
            XCTAssertEqual(direct.pairsHigher, gram.pairsHigher, method.rawValue)
            if let a = direct.explainedRatio, let b = gram.explainedRatio { XCTAssertEqual(a, b, accuracy: 1e-9) }
        }
        XCTAssertThrowsError(try ControlVector.fitDifferences([Float](repeating: 0, count: pairs * F), pairs: pairs, latents: F,
                                                              layer: 4, method: .pcaCenter)) { e in
            guard case .degenerate(4, _)? = e as? TrainingError else { return XCTFail("\(e)") }
        }
    }

    /// Encoding in batches of pairs gives the same differences as one batch, up to the rounding
    /// of BLAS products of another height.
    func testPairBatchesDoNotChangeTheDifferences() throws {
        let d = 16, F = 90, pairs = 7
        let s = try SAESet.load(folder: try w.saelens("b", hook: "blocks.1.hook_resid_post", architecture: "topk", d: d, latents: F, k: 9)).byLayer[1]!
        let h = try HiddenMatrix(rows: 2 * pairs, columns: d, values: SAEWriter.values(2 * pairs * d, seed: 8))
        let one = try ControlVector.pairDifferences(h, sae: s, pairsPerBatch: pairs)
        let scale = Double(one.map { abs($0) }.max() ?? 1)
        var worst = 0.0
        for batch in [1, 2, 3] {
            let d = try ControlVector.pairDifferences(h, sae: s, pairsPerBatch: batch)
            XCTAssertEqual(d.map { $0 != 0 }, one.map { $0 != 0 }, "batch \(batch): active features")
            for (a, b) in zip(d, one) { worst = max(worst, Double(abs(a - b))) }
        }
        print("[sae] pair batches of 1, 2, 3 vs one batch: max |difference| \(worst) (\(worst / scale) of the largest)")
        XCTAssertLessThan(worst / scale, 1e-5)
        XCTAssertEqual(SAETrainingMemory.pairsPerBatch(latents: 65536, pairs: 1000), 128)
        let bytes = SAETrainingMemory.bytes(pairs: 128, latents: 65536, inputSize: 4096)
        print("[sae] training memory for 128 pairs, 65,536 latents, width 4,096: \(bytes >> 20) MiB per layer")
        XCTAssertLessThan(bytes, 200 << 20)
    }

    func testTopFeatures() {
        let top = ControlVector.topFeatures([0.1, -0.5, 0.3, 0.5, 0], count: 3)
        XCTAssertEqual(top, [SAEFeatureWeight(index: 1, weight: -0.5), SAEFeatureWeight(index: 3, weight: 0.5),
                             SAEFeatureWeight(index: 2, weight: 0.3)])
        XCTAssertEqual(ControlVector.topFeatures([1], count: 5).count, 1)
    }
}
