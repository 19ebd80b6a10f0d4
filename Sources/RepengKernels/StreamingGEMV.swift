// Matrix products for decode steps: y = x · Wᵀ for 1 to `streamingBatchLimit` input rows,
// reading every weight row once for all of them. OpenBLAS's sgemm packs the whole weight matrix
// on each call (about three passes over memory for a bandwidth-bound product) and sgemv reads
// it once per input row, so batched decode of n sequences would cost 3× or n× one sequence's
// weight traffic; this kernel costs 1×. Register tiles of up to 4 input rows × 3 weight rows
// keep the FMA units busy, and software prefetch keeps memory streaming meanwhile. Each output
// element is computed by the same instruction sequence whatever the batch size, tile or thread
// split, so a sequence's arithmetic does not depend on what else is in the batch: one sequence
// decoded alone and in a batch gives bit-identical logits. The tiles are C (CKernelSupport's
// dispatch.c), compiled for a portable baseline, AVX2+FMA and AVX-512F and chosen at run time.
import CKernelSupport
import Foundation

/// Instruction-set levels of the dispatched kernels.
public enum KernelLevel: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// Portable vector code (SSE2 on x86-64), multiply and add not fused.
    case baseline = 0
    /// AVX2 with FMA.
    case avx2 = 1
    /// AVX-512F.
    case avx512 = 2

    public var description: String {
        switch self {
        case .baseline: return "baseline"
        case .avx2: return "avx2+fma"
        case .avx512: return "avx512f"
        }
    }
}

extension Kernels {
    /// Input rows handled by `streamingProduct` (decode batches); more rows go to sgemm.
    public static let streamingBatchLimit = 16

    /// The widest level this CPU runs.
    public static let supportedLevel = KernelLevel(rawValue: repeng_kernels_supported()) ?? .baseline

    /// The level in use: `supportedLevel`, or a lower one from the environment variable
    /// REPENG_KERNELS (baseline, avx2, avx512).
    public static let level = KernelLevel(rawValue: repeng_kernels_level()) ?? .baseline

    /// y[i, j] (+)= Σ_k x[i, k] · w[j, k] for i < n and j in `outRows`; x rows `ldx` apart,
    /// y rows `ldy` apart, w rows `cols` apart. `level` picks the kernel (tests compare each);
    /// one above `supportedLevel` runs the supported one.
    @inline(__always)
    public static func streamingProduct(
        _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafePointer<Float>, cols: Int, outRows: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, level: KernelLevel = Kernels.level
    ) {
        repeng_streaming_product(level.rawValue, x, n, ldx, w, cols, outRows.lowerBound, outRows.upperBound, y, ldy,
                                 accumulate ? 1 : 0)
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
