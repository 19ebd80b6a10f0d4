// Weights kept in their GGUF encoding (WeightPrecision.native): the encoded product at every
// kernel level against the f32 decoder and the plain reference, rows identical alone and in a
// batch, and the bundled SmolLM2 (Q4_1 + Q8_0) native against exact.
import CKernelSupport
import Foundation
@testable import RepengEngine
@testable import RepengKernels
import XCTest

final class EncodedWeightTests: XCTestCase {
    /// The largest |y − reference| of `y` = start + x·wᵀ, relative to start + Σ|x||w| (the size of
    /// the terms, so cancellation does not inflate it).
    private func productError(_ y: [Float], x: [Float], n: Int, w: [Float], absW: [Float], rows: Int, cols: Int,
                              start: [Float]) -> Float {
        var ref = start, scale = start.map(abs)
        Kernels.streamingProductReference(x, n: n, ldx: cols, w: w, cols: cols, outRows: 0..<rows, into: &ref, ldy: rows,
                                          accumulate: true)
        Kernels.streamingProductReference(x.map(abs), n: n, ldx: cols, w: absW, cols: cols, outRows: 0..<rows, into: &scale,
                                          ldy: rows, accumulate: true)
        var worst: Float = 0
        for k in y.indices { worst = max(worst, abs(y[k] - ref[k]) / max(1, scale[k])) }
        return worst
    }

    func testEncodedProductMatchesDecodedReference() throws {
        let levels = KernelLevel.allCases.filter { $0.rawValue <= Kernels.supportedLevel.rawValue }
        var seed: UInt64 = 3
        for type in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16, .bf16] {
            let rows = 70, cols = type.blockSize == 256 ? 512 : 576
            let bytes = TestSupport.encodedRows(type, rows: rows, cols: cols, seed: &seed)
            let decoded = try bytes.withUnsafeBytes { try Dequant.decode(type, $0, count: rows * cols) }
            let absDecoded = decoded.map(abs)
            let rowBytes = try XCTUnwrap(type.byteCount(elements: cols))
            var worst: Float = 0
            try bytes.withUnsafeBytes { raw in
                let base = try XCTUnwrap(raw.baseAddress)
                // The C decoder equals the Swift one.
                var row = [Float](repeating: 0, count: cols)
                for r in [0, 33, rows - 1] {
                    repeng_quant_decode_rows(Int32(type.rawValue), base, rowBytes, cols, r, r + 1, &row, cols)
                    XCTAssertEqual(row, Array(decoded[(r * cols)..<((r + 1) * cols)]), "\(type) row \(r)")
                }
                for level in levels {
                    for n in [1, 2, 5, 16] {
                        let x = (0..<(n * cols)).map { Float(($0 * 7919) % 2001 - 1000) / 1000 }
                        let zero = [Float](repeating: 0, count: n * rows)
                        var y = zero
                        XCTAssertEqual(repeng_quant_product(level.rawValue, Int32(type.rawValue), x, n, cols, base, rowBytes, cols,
                                                            0, rows, &y, rows, 0), 0)
                        worst = max(worst, productError(y, x: x, n: n, w: decoded, absW: absDecoded, rows: rows, cols: cols, start: zero))
                        // Each row alone, split in two pieces: bit-identical to the batch.
                        for i in 0..<n {
                            var alone = [Float](repeating: 0, count: rows)
                            for part in [0..<23, 23..<rows] {
                                _ = x.withUnsafeBufferPointer { xp in
                                    repeng_quant_product(level.rawValue, Int32(type.rawValue), xp.baseAddress! + i * cols, 1, cols,
                                                         base, rowBytes, cols, part.lowerBound, part.upperBound, &alone, rows, 0)
                                }
                            }
                            XCTAssertEqual(alone, Array(y[(i * rows)..<((i + 1) * rows)]), "\(type) \(level) row \(i) of \(n)")
                        }
                    }
                }
                // Through WeightMatrix: decode steps and the sgemm panels of prefill.
                let m = WeightMatrix(rows: rows, cols: cols, encoded: EncodedRows(type: type, base: base, rowBytes: rowBytes,
                                                                                   owner: NSObject()))
                XCTAssertEqual(m.residentBytes, bytes.count)
                for n in [3, 40] {
                    let x = (0..<(n * cols)).map { Float(($0 * 104_729) % 2001 - 1000) / 1000 }
                    let y0 = (0..<(n * rows)).map { Float($0 % 7) }
                    var y = y0
                    m.apply(x, n: n, into: &y, accumulate: true)
                    worst = max(worst, productError(y, x: x, n: n, w: decoded, absW: absDecoded, rows: rows, cols: cols, start: y0))
                }
            }
            print("encoded \(type) product (levels \(levels.map(\.description).joined(separator: ", "))) vs decoded reference: "
                  + "max error relative to Σ|x||w| \(worst) (tolerance 2e-6)")
            XCTAssertLessThan(worst, 2e-6, "\(type)")
        }
    }

    /// SmolLM2's Q4_1 and Q8_0 matrices kept encoded give the same model as decoding them at
    /// load: hidden states and logits within f32 rounding, identical greedy text (f32 decode steps).
    func testSmolLM2NativeMatchesExact() throws {
        let path = try TestSupport.modelPath(TestSupport.smolLM2File)
        let exact = try loadModel(path: path)
        let native = try XCTUnwrap(try loadModel(path: path, precision: .native) as? DecoderModel)
        XCTAssertEqual(native.tokenEmbedding.residentBytesByType.keys.sorted(), ["Q8_0"])
        XCTAssertEqual(native.blocks[0].gateUp.residentBytesByType.keys.sorted(), ["Q4_1"])
        let ratio = Double((exact as? DecoderModel)?.residentBytes ?? 0) / Double(native.residentBytes)
        print("SmolLM2 resident weights: exact \((exact as? DecoderModel)?.residentBytes ?? 0) bytes, native \(native.residentBytes) (\(String(format: "%.1f", ratio))× smaller)")
        XCTAssertGreaterThan(ratio, 5)
        let tok = try XCTUnwrap(exact.tokenizer)
        let ids = tok.encode("The quick brown fox jumps over the lazy dog because", addSpecial: true)
        let opts = ForwardOptions(hiddenStates: Array(0...exact.config.blockCount), hiddenPositions: .all, logits: .all)
        let a = try exact.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
        let b = try native.forward([SequenceInput(tokens: ids)], options: opts, workspace: ForwardWorkspace())[0]
        var worst: Float = 0
        for (k, v) in a.hidden { worst = max(worst, relativeError(b.hidden[k] ?? [], v)) }
        let logits = relativeError(b.logits, a.logits)
        print("SmolLM2 native vs exact, \(ids.count) tokens: hidden states max relative error \(worst), logits \(logits)")
        XCTAssertLessThan(worst, 1e-4)
        XCTAssertLessThan(logits, 1e-4)
        // Decode steps with f32 activations: the encoded weights alone change nothing (the int8
        // activations of the default decode steps are Int8ActivationTests' subject).
        var ta = "", tb = ""
        let f32Decode = ForwardWorkspace()
        f32Decode.int8Decode = false
        try exact.generate(GenerationRequest(prompt: ids, maxTokens: 24, sampling: .greedy), onEvent: { ta += $0.text; return true })
        try native.generate(GenerationRequest(prompt: ids, maxTokens: 24, sampling: .greedy), workspace: f32Decode,
                            onEvent: { tb += $0.text; return true })
        XCTAssertEqual(ta, tb)
    }
}
