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
    /// AVX-512F (the int8 kernels: AVX-512BW where the CPU has it).
    case avx512 = 2
    /// AVX-512 with VNNI: the f32 kernels as `avx512`, the int8 kernels with vpdpbusd.
    case avx512vnni = 3

    public var description: String {
        switch self {
        case .baseline: return "baseline"
        case .avx2: return "avx2+fma"
        case .avx512: return "avx512f"
        case .avx512vnni: return "avx512vnni"
        }
    }
}

extension Kernels {
    /// Input rows handled by `streamingProduct` (decode batches); more rows go to sgemm.
    public static let streamingBatchLimit = 16

    /// The widest level this CPU runs.
    public static let supportedLevel = KernelLevel(rawValue: repeng_kernels_supported()) ?? .baseline

    /// The level in use: `supportedLevel`, or a lower one from the environment variable
    /// REPENG_KERNELS (baseline, avx2, avx512, avx512vnni).
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

extension Kernels {
    /// Whether decode steps multiply encoded weights by int8-quantized activations (the
    /// default; `ForwardWorkspace.int8Decode` starts from it). The environment variable
    /// REPENG_Q8_ACTIVATIONS=0 keeps them f32 (weights decoded to f32 row by row, as prefill).
    public static let int8Activations = ProcessInfo.processInfo.environment["REPENG_Q8_ACTIVATIONS"] != "0"

    /// Whether `quantProductQ8` handles encodings of GGML type `type` (Q4_0, Q4_1, Q5_0, Q5_1,
    /// Q8_0, Q4_K, Q5_K, Q6_K).
    public static func supportsInt8(type: Int) -> Bool { repeng_q8_supports(Int32(type)) != 0 }

    /// y[i, j] (+)= Σ_k x[i, k] · w[j, k] for j in `outRows`, w rows in GGML type `type`
    /// (`rowBytes` apart), with the x rows quantized to int8 per 32 values: integer dot products
    /// per block, scaled in f32. Bit-identical at every level; each element depends only on its
    /// rows. Types `supportsInt8` rejects run the f32 product. False if memory ran out.
    @discardableResult
    public static func quantProductQ8(
        type: Int, _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafeRawPointer, rowBytes: Int, cols: Int,
        outRows: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, level: KernelLevel = Kernels.level
    ) -> Bool {
        repeng_quant_product_q8(level.rawValue, Int32(type), x, n, ldx, w, rowBytes, cols, outRows.lowerBound,
                                outRows.upperBound, y, ldy, accumulate ? 1 : 0) == 0
    }

    /// The scalar reference of `quantProductQ8`, for tests. False for an unsupported type.
    @discardableResult
    public static func quantProductQ8Reference(
        type: Int, _ x: UnsafePointer<Float>, n: Int, ldx: Int, w: UnsafeRawPointer, rowBytes: Int, cols: Int,
        outRows: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool
    ) -> Bool {
        repeng_quant_product_q8_reference(Int32(type), x, n, ldx, w, rowBytes, cols, outRows.lowerBound, outRows.upperBound,
                                          y, ldy, accumulate ? 1 : 0) == 0
    }
}
