// Matrix products for small batches (batched decode steps): y = x · Wᵀ for 2 to
// `streamingBatchLimit` input rows, reading every weight row once for all of them. OpenBLAS's sgemm packs the whole
// weight matrix on each call (about three passes over memory for a bandwidth-bound product)
// and sgemv reads it once per input row, so batched decode of n sequences would cost 3× or n×
// one sequence's weight traffic; this kernel costs 1×. Each output element is computed by the
// same instruction sequence whatever the batch size or thread split, so within batched steps a
// sequence's arithmetic does not depend on what else is in the batch. (A step with a single
// sequence uses sgemv, which rounds differently by ~1e-7 relative.)
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
        // Weight rows in blocks small enough to stay in L2 while every input group passes.
        let block = max(16, (128 << 10) / max(1, cols * MemoryLayout<Float>.stride))
        var j0 = outRows.lowerBound
        while j0 < outRows.upperBound {
            let part = j0..<min(outRows.upperBound, j0 + block)
            var i0 = 0
            while i0 < n {
                let m = min(4, n - i0)
                let xs = x + i0 * ldx, ys = y + i0 * ldy
                switch m {
                case 4: rowGroup(xs, rows: 4, ldx: ldx, w: w, cols: cols, outRows: part, into: ys, ldy: ldy, accumulate: accumulate)
                case 3: rowGroup(xs, rows: 3, ldx: ldx, w: w, cols: cols, outRows: part, into: ys, ldy: ldy, accumulate: accumulate)
                case 2: rowGroup(xs, rows: 2, ldx: ldx, w: w, cols: cols, outRows: part, into: ys, ldy: ldy, accumulate: accumulate)
                default: rowGroup(xs, rows: 1, ldx: ldx, w: w, cols: cols, outRows: part, into: ys, ldy: ldy, accumulate: accumulate)
                }
                i0 += m
            }
            j0 = part.upperBound
        }
    }

    /// One group of 1…4 input rows against the weight rows `outRows`. Every row has its own
    /// accumulator updated by the same operations in the same order whatever the group size,
    /// so a row's result does not depend on the group it is in. Specialized per `rows` (a
    /// constant at each call site) so unused rows cost nothing.
    @inline(__always)
    private static func rowGroup(
        _ x: UnsafePointer<Float>, rows m: Int, ldx: Int, w: UnsafePointer<Float>, cols: Int, outRows: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        let body = cols & ~15
        let x0 = x, x1 = x + min(1, m - 1) * ldx, x2 = x + min(2, m - 1) * ldx, x3 = x + min(3, m - 1) * ldx
        for j in outRows {
            let wr = w + j * cols
            var a0 = SIMD16<Float>(repeating: 0), a1 = a0, a2 = a0, a3 = a0
            var k = 0
            while k < body {
                let wv = UnsafeRawPointer(wr + k).loadUnaligned(as: SIMD16<Float>.self)
                a0 = a0.addingProduct(wv, UnsafeRawPointer(x0 + k).loadUnaligned(as: SIMD16<Float>.self))
                if m > 1 { a1 = a1.addingProduct(wv, UnsafeRawPointer(x1 + k).loadUnaligned(as: SIMD16<Float>.self)) }
                if m > 2 { a2 = a2.addingProduct(wv, UnsafeRawPointer(x2 + k).loadUnaligned(as: SIMD16<Float>.self)) }
                if m > 3 { a3 = a3.addingProduct(wv, UnsafeRawPointer(x3 + k).loadUnaligned(as: SIMD16<Float>.self)) }
                k += 16
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while k < cols {
                let wk = wr[k]
                s0 += wk * x0[k]
                if m > 1 { s1 += wk * x1[k] }
                if m > 2 { s2 += wk * x2[k] }
                if m > 3 { s3 += wk * x3[k] }
                k += 1
            }
            let o = y + j
            o.pointee = accumulate ? o.pointee + s0 : s0
            if m > 1 { o[ldy] = accumulate ? o[ldy] + s1 : s1 }
            if m > 2 { o[2 * ldy] = accumulate ? o[2 * ldy] + s2 : s2 }
            if m > 3 { o[3 * ldy] = accumulate ? o[3 * ldy] + s3 : s3 }
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
