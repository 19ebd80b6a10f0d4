// Int8 activations for encoded weights (decode steps): every kernel level bit-identical to the scalar
// reference for every type, whatever the batch and the row split; the error against the exact
// product within the activation quantization's bound; decode steps of the bundled models.
import CKernelSupport
import Foundation
@testable import RepengEngine
@testable import RepengKernels
import XCTest

final class Int8ActivationTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
    let levels = KernelLevel.allCases.filter { $0.rawValue <= Kernels.supportedLevel.rawValue }

    /// Input rows whose 32-value blocks differ in size (×8, ×0.01, all zero, one large value in
    /// some), so the per-block scales and the rounding see a spread of cases.
    private func inputs(n: Int, cols: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<(n * cols)).map { i in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(Int((s >> 33) % 2001) - 1000) / 1000
            let block = i / 32
            let scale: Float = block % 11 == 3 ? 0 : block % 5 == 0 ? 8 : block % 7 == 0 ? 0.01 : 1
            return scale * u * (i % 97 == 0 ? 10 : 1)
        }
    }

    /// Columns per type: 608 (19 blocks of 32, so a partial group of 8) or 768 (3 super-blocks).
    private func columns(_ type: GGMLType) -> Int { type.blockSize == 256 ? 768 : 608 }

    func testEveryLevelMatchesReference() throws {
        var seed: UInt64 = 11
        for type in Self.types {
            let rows = 37, cols = columns(type), n = Kernels.streamingBatchLimit, t = Int(type.rawValue)
            let bytes = TestSupport.encodedRows(type, rows: rows, cols: cols, seed: &seed)
            let rowBytes = try XCTUnwrap(type.byteCount(elements: cols))
            let x = inputs(n: n, cols: cols, seed: seed)
            let start = (0..<(n * rows)).map { Float($0 % 5) - 2 }
            try bytes.withUnsafeBytes { raw in
                let w = try XCTUnwrap(raw.baseAddress)
                var ref = [Float](repeating: 0, count: n * rows), refAccumulated = start
                XCTAssertTrue(Kernels.quantProductQ8Reference(type: t, x, n: n, ldx: cols, w: w, rowBytes: rowBytes, cols: cols,
                                                              outRows: 0..<rows, into: &ref, ldy: rows, accumulate: false))
                XCTAssertTrue(Kernels.quantProductQ8Reference(type: t, x, n: n, ldx: cols, w: w, rowBytes: rowBytes, cols: cols,
                                                              outRows: 0..<rows, into: &refAccumulated, ldy: rows, accumulate: true))
                XCTAssertTrue(ref.allSatisfy(\.isFinite))
                for level in levels {
                    // Every batch size 1 … 16, the rows in two pieces: each input row's outputs
                    // are the reference's, bit for bit.
                    for m in 1...n {
                        var y = [Float](repeating: .nan, count: m * rows)
                        for part in [0..<13, 13..<rows] {
                            XCTAssertTrue(Kernels.quantProductQ8(type: t, x, n: m, ldx: cols, w: w, rowBytes: rowBytes, cols: cols,
                                                                 outRows: part, into: &y, ldy: rows, accumulate: false, level: level))
                        }
                        XCTAssertEqual(y.map(\.bitPattern), ref.prefix(m * rows).map(\.bitPattern), "\(type) \(level) n = \(m)")
                    }
                    var y = start
                    Kernels.quantProductQ8(type: t, x, n: n, ldx: cols, w: w, rowBytes: rowBytes, cols: cols, outRows: 0..<rows,
                                           into: &y, ldy: rows, accumulate: true, level: level)
                    XCTAssertEqual(y.map(\.bitPattern), refAccumulated.map(\.bitPattern), "\(type) \(level) accumulating")
                }
            }
            print("int8 \(type): levels \(levels.map(\.description).joined(separator: ", ")) bit-identical to the scalar "
                  + "reference for n = 1…\(n), rows split 13 + \(rows - 13), accumulating (max difference 0)")
        }
    }

    /// Against the exact product of the decoded weights (f64): each output's error is at most
    /// what rounding the activations can cause, Σ_blocks (max|x_b| / 254) Σ_b |w|, plus f32
    /// rounding (1e-6 Σ|x||w| allowed).
    func testErrorWithinActivationQuantizationBound() throws {
        var seed: UInt64 = 5
        for type in Self.types {
            let rows = 40, cols = columns(type), n = 4, t = Int(type.rawValue)
            let bytes = TestSupport.encodedRows(type, rows: rows, cols: cols, seed: &seed)
            let rowBytes = try XCTUnwrap(type.byteCount(elements: cols))
            let x = inputs(n: n, cols: cols, seed: seed &+ 1)
            let decoded = try bytes.withUnsafeBytes { try Dequant.decode(type, $0, count: rows * cols) }
            var y = [Float](repeating: 0, count: n * rows)
            try bytes.withUnsafeBytes { raw in
                let w = try XCTUnwrap(raw.baseAddress)
                XCTAssertTrue(Kernels.quantProductQ8(type: t, x, n: n, ldx: cols, w: w, rowBytes: rowBytes, cols: cols, outRows: 0..<rows,
                                                     into: &y, ldy: rows, accumulate: false))
            }
            var worstRelative = 0.0, worstShare = 0.0
            for i in 0..<n {
                for j in 0..<rows {
                    var exact = 0.0, size = 0.0, bound = 0.0
                    for b in 0..<(cols / 32) {
                        var amax = 0.0, wsum = 0.0
                        for k in (32 * b)..<(32 * b + 32) {
                            let xv = Double(x[i * cols + k]), wv = Double(decoded[j * cols + k])
                            exact += xv * wv
                            size += abs(xv * wv)
                            amax = max(amax, abs(xv))
                            wsum += abs(wv)
                        }
                        bound += amax / 254 * wsum
                    }
                    let err = abs(Double(y[i * rows + j]) - exact)
                    worstRelative = max(worstRelative, err / max(size, .leastNormalMagnitude))
                    worstShare = max(worstShare, err / (bound + 1e-6 * size))
                }
            }
            print(String(format: "int8 %@ vs exact f64 product: max error / Σ|x||w| %.2e, max error / bound %.3f (must be ≤ 1)",
                         type.description, worstRelative, worstShare))
            XCTAssertLessThanOrEqual(worstShare, 1, "\(type)")
        }
    }

    /// WeightMatrix: decode-sized products with `int8` are the kernel's (over the thread split),
    /// prefill-sized ones keep the f32 panels into sgemm.
    func testWeightMatrixUsesInt8OnlyForDecodeSizes() throws {
        var seed: UInt64 = 7
        for type in [GGMLType.q4_1, .q8_0, .q4_K, .q6_K] {
            let rows = 300, cols = columns(type), t = Int(type.rawValue)
            let bytes = TestSupport.encodedRows(type, rows: rows, cols: cols, seed: &seed)
            let rowBytes = try XCTUnwrap(type.byteCount(elements: cols))
            try bytes.withUnsafeBytes { raw in
                let w = try XCTUnwrap(raw.baseAddress)
                let m = WeightMatrix(rows: rows, cols: cols, encoded: EncodedRows(type: type, base: w, rowBytes: rowBytes, owner: NSObject()))
                for n in [1, 5, 16, 40] {
                    let x = inputs(n: n, cols: cols, seed: UInt64(n))
                    let start = (0..<(n * rows)).map { Float($0 % 3) }
                    var y8 = start, y32 = start, want = start
                    m.apply(x, n: n, into: &y8, accumulate: true, int8: true)
                    m.apply(x, n: n, into: &y32, accumulate: true, int8: false)
                    if n <= Kernels.streamingBatchLimit {
                        Kernels.quantProductQ8Reference(type: t, x, n: n, ldx: cols, w: w, rowBytes: rowBytes, cols: cols,
                                                        outRows: 0..<rows, into: &want, ldy: rows, accumulate: true)
                        XCTAssertEqual(y8.map(\.bitPattern), want.map(\.bitPattern), "\(type) n = \(n)")
                        XCTAssertNotEqual(y8, y32, "\(type) n = \(n): int8 activations were not used")
                    } else {
                        XCTAssertEqual(y8.map(\.bitPattern), y32.map(\.bitPattern), "\(type) n = \(n): prefill must stay f32")
                    }
                }
            }
        }
    }

    /// A prompt prefilled (f32, as every prompt) into a fresh cache.
    private func prefilled(_ model: any LanguageModel, _ ids: [Int32]) throws -> KVCache {
        let cache = model.makeCache()
        _ = try model.forward([SequenceInput(tokens: ids, cache: cache)], options: ForwardOptions(logits: .none),
                              workspace: ForwardWorkspace())
        return cache
    }

    /// Decode steps of a bundled model in its native encodings: int8 against f32 activations
    /// (logits error and top token), and one sequence's int8 logits identical alone and in a batch.
    private func checkDecodeSteps(_ file: String, tolerance: Float) throws {
        let model = try loadModel(path: TestSupport.modelPath(file), precision: .native)
        let tok = try XCTUnwrap(model.tokenizer)
        let vocab = model.config.vocabSize
        let prompts = ["The quick brown fox jumps over the lazy dog because", "Once upon a time, in a small village,",
                       "The capital of France is", "def fibonacci(n):"]
        let seqs = prompts.map { tok.encode($0, addSpecial: true) }
        let int8 = ForwardWorkspace(), f32 = ForwardWorkspace()
        int8.int8Decode = true
        f32.int8Decode = false
        var worst: Float = 0, sameTop = 0
        let logits8 = FloatBuffer(count: vocab * seqs.count), logits32 = FloatBuffer(count: vocab)
        for (s, ids) in seqs.enumerated() {
            let next = ids.last!, prompt = Array(ids.dropLast())
            let a = try prefilled(model, prompt), b = try prefilled(model, prompt)
            try model.decodeStep([SequenceInput(tokens: [next], cache: a)], workspace: int8, logits: logits8.pointer + s * vocab)
            try model.decodeStep([SequenceInput(tokens: [next], cache: b)], workspace: f32, logits: logits32.pointer)
            let l8 = Array(UnsafeBufferPointer(start: logits8.pointer + s * vocab, count: vocab))
            let l32 = Array(UnsafeBufferPointer(start: logits32.pointer, count: vocab))
            worst = max(worst, relativeError(l8, l32))
            if Kernels.argmax(l8, vocab) == Kernels.argmax(l32, vocab) { sameTop += 1 }
        }
        // The same steps batched: every sequence's logits bit-identical to its own step above.
        let caches = try seqs.map { try prefilled(model, Array($0.dropLast())) }
        let batched = FloatBuffer(count: vocab * seqs.count)
        try model.decodeStep(zip(seqs, caches).map { SequenceInput(tokens: [$0.last!], cache: $1) }, workspace: int8,
                             logits: batched.pointer)
        let alone = Array(UnsafeBufferPointer(start: logits8.pointer, count: vocab * seqs.count))
        let together = Array(UnsafeBufferPointer(start: batched.pointer, count: vocab * seqs.count))
        XCTAssertEqual(together.map(\.bitPattern), alone.map(\.bitPattern), "\(file): a batch changed a sequence's logits")
        print(String(format: "int8 decode step, %@: logits max relative error vs f32 activations %.2e (tolerance %.0e) over %d prompts; same top token on %d of %d; batch of %d bit-identical to each alone",
                     file, worst, tolerance, seqs.count, sameTop, seqs.count, seqs.count))
        XCTAssertLessThan(worst, tolerance, file)
    }

    /// Measured 4.5e-2 (max |Δ| over max |logit|): the final hidden state has a few dimensions far
    /// larger than the rest, so the blocks holding them round the others coarsely.
    func testSmolLM2DecodeSteps() throws {
        try checkDecodeSteps(TestSupport.smolLM2File, tolerance: 1e-1)
    }

    /// Measured 2.0e-2.
    func testGemma3DecodeSteps() throws {
        try checkDecodeSteps(TestSupport.gemma3File, tolerance: 1e-1)
    }
}
