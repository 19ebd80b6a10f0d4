// Matrix products for decode steps: y = x · Wᵀ for 1 to `streamingBatchLimit` input rows,
// reading every weight row once for all of them. OpenBLAS's sgemm packs the whole weight matrix
// on each call (about three passes over memory for a bandwidth-bound product) and sgemv reads
// it once per input row, so batched decode of n sequences would cost 3× or n× one sequence's
// weight traffic; this kernel costs 1×. Register tiles of up to 4 input rows × 3 weight rows
// keep the FMA units busy, and software prefetch keeps memory streaming meanwhile. Each output
// element is computed by the same instruction sequence whatever the batch size, tile or thread
// split, so a sequence's arithmetic does not depend on what else is in the batch: one sequence
// decoded alone and in a batch gives bit-identical logits.
import CKernelSupport
import Foundation

extension Kernels {
    /// Input rows handled by `streamingProduct` (decode batches); more rows go to sgemm.
    public static let streamingBatchLimit = 16

    /// Weight rows per register tile: each loaded weight vector serves up to 4 input rows and
    /// each loaded input vector `tileWeightRows` weight rows (12 accumulators + 4 operands in
    /// the 16 vector registers of AVX2).
    static let tileWeightRows = 3

    /// How far ahead (in weight rows) the kernel prefetches: the hardware prefetcher alone
    /// leaves the arithmetic waiting for memory, about halving the rate of 8-row batches.
    static let prefetchRows = 8

    /// y[i, j] (+)= Σ_k x[i, k] · w[j, k] for i < n and j in `outRows`; x rows `ldx` apart,
    /// y rows `ldy` apart, w rows `cols` apart.
    public static func streamingProduct(
        _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafePointer<Float>, cols: Int, outRows: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) {
        // A few weight rows at a time (they stay in L1 while every group of input rows passes).
        var j = outRows.lowerBound
        while j < outRows.upperBound {
            let r = min(tileWeightRows, outRows.upperBound - j)
            var i0 = 0
            while i0 < n {
                let m = min(4, n - i0)
                let xs = x + i0 * ldx, ys = y + i0 * ldy + j, ws = w + j * cols
                let pf = i0 == 0  // later groups find these weight rows in L1
                switch (m, r) {
                case (4, 3): tile(xs, 4, ldx, ws, 3, cols, ys, ldy, accumulate, pf)
                case (4, 2): tile(xs, 4, ldx, ws, 2, cols, ys, ldy, accumulate, pf)
                case (4, _): tile(xs, 4, ldx, ws, 1, cols, ys, ldy, accumulate, pf)
                case (3, 3): tile(xs, 3, ldx, ws, 3, cols, ys, ldy, accumulate, pf)
                case (3, 2): tile(xs, 3, ldx, ws, 2, cols, ys, ldy, accumulate, pf)
                case (3, _): tile(xs, 3, ldx, ws, 1, cols, ys, ldy, accumulate, pf)
                case (2, 3): tile(xs, 2, ldx, ws, 3, cols, ys, ldy, accumulate, pf)
                case (2, 2): tile(xs, 2, ldx, ws, 2, cols, ys, ldy, accumulate, pf)
                case (2, _): tile(xs, 2, ldx, ws, 1, cols, ys, ldy, accumulate, pf)
                case (_, 3): tile(xs, 1, ldx, ws, 3, cols, ys, ldy, accumulate, pf)
                case (_, 2): tile(xs, 1, ldx, ws, 2, cols, ys, ldy, accumulate, pf)
                default: tile(xs, 1, ldx, ws, 1, cols, ys, ldy, accumulate, pf)
                }
                i0 += m
            }
            j += r
        }
    }

    /// One register tile: `m` (1…4) input rows × `r` (1…3) weight rows. Every output element
    /// has its own 8-lane accumulator that runs over k in the same order, then the same lane
    /// sum and scalar tail, whatever the tile shape; so an element's value does not depend on
    /// the tile, the batch or the thread split. Specialized per (m, r) (constants at each
    /// call site) so unused rows cost nothing.
    @inline(__always)
    private static func tile(
        _ x: UnsafePointer<Float>, _ m: Int, _ ldx: Int, _ w: UnsafePointer<Float>, _ r: Int, _ cols: Int,
        _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ accumulate: Bool, _ prefetch: Bool
    ) {
        typealias V = SIMD8<Float>
        let body = cols & ~7
        // The first input group asks for weight rows `prefetchRows` ahead, one cache line per
        // row per 64 bytes consumed, so loading overlaps the arithmetic.
        let ahead = prefetchRows * cols * MemoryLayout<Float>.stride
        let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + min(1, m - 1) * ldx)
        let x2 = UnsafeRawPointer(x + min(2, m - 1) * ldx), x3 = UnsafeRawPointer(x + min(3, m - 1) * ldx)
        let w0 = UnsafeRawPointer(w), w1 = UnsafeRawPointer(w + min(1, r - 1) * cols)
        let w2 = UnsafeRawPointer(w + min(2, r - 1) * cols)
        let z = V(repeating: 0)
        var a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z
        var a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z
        @inline(__always) func step(_ off: Int) {
            let v0 = w0.loadUnaligned(fromByteOffset: off, as: V.self)
            let v1 = r > 1 ? w1.loadUnaligned(fromByteOffset: off, as: V.self) : z
            let v2 = r > 2 ? w2.loadUnaligned(fromByteOffset: off, as: V.self) : z
            let u0 = x0.loadUnaligned(fromByteOffset: off, as: V.self)
            a00 = a00.addingProduct(u0, v0)
            if r > 1 { a01 = a01.addingProduct(u0, v1) }
            if r > 2 { a02 = a02.addingProduct(u0, v2) }
            if m > 1 {
                let u1 = x1.loadUnaligned(fromByteOffset: off, as: V.self)
                a10 = a10.addingProduct(u1, v0)
                if r > 1 { a11 = a11.addingProduct(u1, v1) }
                if r > 2 { a12 = a12.addingProduct(u1, v2) }
            }
            if m > 2 {
                let u2 = x2.loadUnaligned(fromByteOffset: off, as: V.self)
                a20 = a20.addingProduct(u2, v0)
                if r > 1 { a21 = a21.addingProduct(u2, v1) }
                if r > 2 { a22 = a22.addingProduct(u2, v2) }
            }
            if m > 3 {
                let u3 = x3.loadUnaligned(fromByteOffset: off, as: V.self)
                a30 = a30.addingProduct(u3, v0)
                if r > 1 { a31 = a31.addingProduct(u3, v1) }
                if r > 2 { a32 = a32.addingProduct(u3, v2) }
            }
        }
        var off = 0
        let end = body * MemoryLayout<Float>.stride
        while off + 64 <= end {
            if prefetch {
                repeng_prefetch(w0 + off + ahead)
                if r > 1 { repeng_prefetch(w1 + off + ahead) }
                if r > 2 { repeng_prefetch(w2 + off + ahead) }
            }
            step(off)
            step(off + 32)
            off += 64
        }
        if off < end { step(off) }
        @inline(__always) func finish(_ a: V, _ xi: UnsafeRawPointer, _ wj: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
            var s = a.sum()
            let xf = xi.assumingMemoryBound(to: Float.self), wf = wj.assumingMemoryBound(to: Float.self)
            for k in body..<cols { s += wf[k] * xf[k] }
            out.pointee = accumulate ? out.pointee + s : s
        }
        finish(a00, x0, w0, y)
        if r > 1 { finish(a01, x0, w1, y + 1) }
        if r > 2 { finish(a02, x0, w2, y + 2) }
        if m > 1 {
            finish(a10, x1, w0, y + ldy)
            if r > 1 { finish(a11, x1, w1, y + ldy + 1) }
            if r > 2 { finish(a12, x1, w2, y + ldy + 2) }
        }
        if m > 2 {
            finish(a20, x2, w0, y + 2 * ldy)
            if r > 1 { finish(a21, x2, w1, y + 2 * ldy + 1) }
            if r > 2 { finish(a22, x2, w2, y + 2 * ldy + 2) }
        }
        if m > 3 {
            finish(a30, x3, w0, y + 3 * ldy)
            if r > 1 { finish(a31, x3, w1, y + 3 * ldy + 1) }
            if r > 2 { finish(a32, x3, w2, y + 3 * ldy + 2) }
        }
    }

    /// Plain reference of `streamingProduct` (double accumulation), for tests.
    public static func streamingProductReference(
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
