// The weight-streaming kernel for decode-sized batches against its plain reference at every
// instruction-set level this CPU runs, and the property the daemon's batched decode relies on:
// a row's result is bit-identical whatever else is in the batch and however the output rows
// are split across threads.
import Foundation
@testable import RepengEngine
@testable import RepengKernels
import XCTest

final class StreamingProductTests: XCTestCase {
    func random(_ count: Int, seed: inout UInt64) -> [Float] {
        (0..<count).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 1000
        }
    }

    func testMatchesReferenceAndIsIndependentOfTheBatch() {
        let levels = KernelLevel.allCases.filter { $0.rawValue <= Kernels.supportedLevel.rawValue }
        print("kernel levels on this CPU: \(levels.map(\.description).joined(separator: ", ")); in use: \(Kernels.level)")
        for level in levels { check(level) }
    }

    private func check(_ level: KernelLevel) {
        var seed: UInt64 = 7
        var worst: Float = 0
        for (rows, cols) in [(96, 576), (70, 1536), (33, 37), (5, 16), (7, 40)] {
            let w = random(rows * cols, seed: &seed)
            for n in [1, 2, 3, 4, 5, 7, 8, 13, 16] {
                let x = random(n * cols, seed: &seed)
                var y = [Float](repeating: 0, count: n * rows)
                var ref = [Float](repeating: 0, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    w.withUnsafeBufferPointer { wp in
                        Kernels.streamingProduct(xp.baseAddress!, n: n, ldx: cols, w: wp.baseAddress!, cols: cols, outRows: 0..<rows,
                                                 into: &y, ldy: rows, accumulate: false, level: level)
                        Kernels.streamingProductReference(xp.baseAddress!, n: n, ldx: cols, w: wp.baseAddress!, cols: cols,
                                                          outRows: 0..<rows, into: &ref, ldy: rows, accumulate: false)
                        // Each row alone, and the output split in uneven pieces: bit-identical.
                        for i in 0..<n {
                            var alone = [Float](repeating: 0, count: rows)
                            let cut = rows / 3
                            for part in [0..<cut, cut..<rows] {
                                Kernels.streamingProduct(xp.baseAddress! + i * cols, n: 1, ldx: cols, w: wp.baseAddress!, cols: cols,
                                                         outRows: part, into: &alone, ldy: rows, accumulate: false, level: level)
                            }
                            XCTAssertEqual(alone, Array(y[(i * rows)..<((i + 1) * rows)]), "\(level): row \(i) of \(n), \(rows)×\(cols)")
                        }
                    }
                }
                for k in y.indices {
                    worst = max(worst, abs(y[k] - ref[k]) / max(1, abs(ref[k])))
                }
            }
        }
        // f32 sums of up to 1,536 products of values in [-1, 1], 192 per lane.
        print("streaming product (\(level)) vs double reference: max relative error \(worst) (tolerance 3e-5)")
        XCTAssertLessThan(worst, 3e-5, "\(level)")
    }

    func testAccumulateAndWeightMatrixPaths() throws {
        var seed: UInt64 = 11
        let rows = 200, cols = 576
        let w = random(rows * cols, seed: &seed)
        let buffer = FloatBuffer(count: rows * cols)
        for i in 0..<w.count { buffer.pointer[i] = w[i] }
        let matrix = WeightMatrix(rows: rows, cols: cols, f32: buffer)
        for n in [1, 6, 16, 17, 40] {  // streaming up to 16 rows, sgemm above
            let x = random(n * cols, seed: &seed)
            let y0 = random(n * rows, seed: &seed)
            var y = y0, ref = y0
            x.withUnsafeBufferPointer { xp in
                matrix.apply(xp.baseAddress!, n: n, into: &y, accumulate: true)
                w.withUnsafeBufferPointer { wp in
                    Kernels.streamingProductReference(xp.baseAddress!, n: n, ldx: cols, w: wp.baseAddress!, cols: cols,
                                                      outRows: 0..<rows, into: &ref, ldy: rows, accumulate: true)
                }
            }
            let err = zip(y, ref).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            XCTAssertLessThan(err, 3e-5, "n = \(n)")
        }
    }
}
