// Matrix products for small batches (decode steps): y = x · Wᵀ for up to `streamingBatchLimit`
// input rows, reading every weight row once for all of them. OpenBLAS's sgemm packs the whole
// weight matrix on each call (about three passes over memory for a bandwidth-bound product)
// and sgemv reads it once per input row, so batched decode of n sequences would cost 3× or n×
// one sequence's weight traffic; this kernel costs 1×. Each output element is computed by the
// same instruction sequence whatever the batch size or thread split, so a sequence's decode
// arithmetic does not depend on what else is in the batch.
import Foundation

extension Kernels {
    /// Input rows handled by `streamingProduct` (decode batches); more rows go to sgemm.
    static let streamingBatchLimit = 16

    /// y[i, j] (+)= Σ_k x[i, k] · w[j, k] for i < n and j in `outRows`; x rows `ldx` apart,
    /// y rows `ldy` apart, w rows `cols` apart.
    @inline(__always)
    static func streamingProduct(
        _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafePointer<Float>, cols: Int, outRows: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        let body = cols & ~15
        var i0 = 0
        while i0 < n {
            let m = min(4, n - i0)
            let x0 = x + i0 * ldx
            let x1 = x + (i0 + min(1, m - 1)) * ldx
            let x2 = x + (i0 + min(2, m - 1)) * ldx
            let x3 = x + (i0 + min(3, m - 1)) * ldx
            for j in outRows {
                let wr = w + j * cols
                var a0 = SIMD16<Float>(repeating: 0), a1 = a0, a2 = a0, a3 = a0
                var k = 0
                while k < body {
                    let wv = UnsafeRawPointer(wr + k).loadUnaligned(as: SIMD16<Float>.self)
                    a0 = a0.addingProduct(wv, UnsafeRawPointer(x0 + k).loadUnaligned(as: SIMD16<Float>.self))
                    a1 = a1.addingProduct(wv, UnsafeRawPointer(x1 + k).loadUnaligned(as: SIMD16<Float>.self))
                    a2 = a2.addingProduct(wv, UnsafeRawPointer(x2 + k).loadUnaligned(as: SIMD16<Float>.self))
                    a3 = a3.addingProduct(wv, UnsafeRawPointer(x3 + k).loadUnaligned(as: SIMD16<Float>.self))
                    k += 16
                }
                var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
                while k < cols {
                    let wk = wr[k]
                    s0 += wk * x0[k]; s1 += wk * x1[k]; s2 += wk * x2[k]; s3 += wk * x3[k]
                    k += 1
                }
                let sums = (s0, s1, s2, s3)
                for r in 0..<m {
                    let s = r == 0 ? sums.0 : r == 1 ? sums.1 : r == 2 ? sums.2 : sums.3
                    let out = y + (i0 + r) * ldy + j
                    out.pointee = accumulate ? out.pointee + s : s
                }
            }
            i0 += m
        }
    }

    /// Plain reference of `streamingProduct` (double accumulation), for tests.
    static func streamingProductReference(
        _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafePointer<Float>, cols: Int, outRows: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        for i in 0..<n {
            for j in outRows {
                var s = 0.0
                for k in 0..<cols { s += Double(x[i * ldx + k]) * Double(w[j * cols + k]) }
                y[i * ldy + j] = Float(s) + (accumulate ? y[i * ldy + j] : 0)
            }
        }
    }
}
