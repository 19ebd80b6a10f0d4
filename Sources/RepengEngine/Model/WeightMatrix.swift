// Weight matrices of a loaded model and the matrix products over them (OpenBLAS sgemm; the
// weight-streaming kernel for decode-sized batches).
import CBLAS
import RepengKernels

/// A weight matrix of `rows` × `cols` (out × in, row-major, as GGUF stores `ne = [cols, rows]`).
/// Storage is f32 (dequantized at load, or used in place in a memory-mapped f32 file), or row
/// blocks of other matrices stacked (q | k | v kept in place as three tensors); the enum leaves
/// room for quantized storage with dedicated kernels.
public final class WeightMatrix: @unchecked Sendable {
    /// How the values are held in memory.
    public enum Storage {
        /// Dense row-major f32 owned by the matrix.
        case f32(FloatBuffer)
        /// Dense row-major f32 inside a mapped file that `owner` keeps alive (never written).
        case mapped(UnsafePointer<Float>, owner: AnyObject)
        /// Row blocks, top to bottom, with the same column count.
        case stacked([WeightMatrix])
    }

    public let rows: Int
    public let cols: Int
    public let storage: Storage

    init(rows: Int, cols: Int, f32 buffer: FloatBuffer) {
        self.rows = rows
        self.cols = cols
        self.storage = .f32(buffer)
    }

    init(rows: Int, cols: Int, mapped pointer: UnsafePointer<Float>, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.storage = .mapped(pointer, owner: owner)
    }

    /// Stacks row blocks (all with `cols` columns) into one matrix.
    init(stacking parts: [WeightMatrix]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.cols == parts[0].cols }, "stacked parts must share their column count")
        rows = parts.reduce(0) { $0 + $1.rows }
        cols = parts[0].cols
        storage = parts.count == 1 ? parts[0].storage : .stacked(parts)
    }

    /// Pointer to row-major f32 values (not for stacked matrices, which have none).
    var f32: UnsafeMutablePointer<Float> {
        switch storage {
        case .f32(let b): return b.pointer
        case .mapped(let p, _): return UnsafeMutablePointer(mutating: p)
        case .stacked: preconditionFailure("a stacked weight matrix has no single f32 pointer")
        }
    }

    /// Bytes of weights this matrix reads (in its own memory or in a mapped file's pages).
    public var residentBytes: Int { rows * cols * MemoryLayout<Float>.stride }

    /// y[n, rows] = x[n, cols] · Wᵀ (+ y when accumulating). Up to `streamingBatchLimit` rows
    /// (decode steps, single or batched) use the weight-streaming kernel, larger ones sgemm.
    @inline(__always)
    func apply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        apply(x, n: n, ldx: cols, into: y, ldy: rows, accumulate: accumulate)
    }

    /// Fewest output rows per work item of the streaming kernel.
    static let streamingChunkRows = 64

    /// Strided form: x rows `ldx` apart, y rows `ldy` apart.
    func apply(_ x: UnsafePointer<Float>, n: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        if case .stacked(let parts) = storage {
            var row = 0
            for p in parts {
                p.apply(x, n: n, ldx: ldx, into: y + row, ldy: ldy, accumulate: accumulate)
                row += p.rows
            }
            return
        }
        if n <= Kernels.streamingBatchLimit {
            // A few large items per thread, claimed as threads come free.
            let workers = BLAS.threads
            let w = UnsafePointer(f32), rows = self.rows, cols = self.cols
            let chunk = max(Self.streamingChunkRows, (rows + 4 * workers - 1) / (4 * workers))
            let chunks = (rows + chunk - 1) / chunk
            Parallel.forEach(count: chunks, workers: workers) { _, c in
                Kernels.streamingProduct(x, n: n, ldx: ldx, w: w, cols: cols, outRows: (c * chunk)..<min(rows, (c + 1) * chunk),
                                         into: y, ldy: ldy, accumulate: accumulate)
            }
        } else {
            Parallel.parkWorkers()
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(rows), Int32(cols), 1,
                        x, Int32(ldx), f32, Int32(cols), accumulate ? 1 : 0, y, Int32(ldy))
        }
    }
}

/// Process-wide BLAS settings.
public enum BLAS {
    /// Sets the number of OpenBLAS threads (1 … cores).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    /// The number of OpenBLAS threads in use.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

extension BLAS {
    /// y[rows, out] = x[rows, inner] · W[out, inner]ᵀ through the engine's decode-step kernel,
    /// on the calling thread (for benchmarks).
    public static func streamingNT(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                   rows: Int, out: Int, inner: Int) {
        Kernels.streamingProduct(x, n: rows, ldx: inner, w: w, cols: inner, outRows: 0..<out, into: y, ldy: out, accumulate: false)
    }

    /// y[out] = W[out, inner] · x[inner] with OpenBLAS sgemv (for benchmarks).
    public static func sgemv(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, out: Int, inner: Int) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(out), Int32(inner), 1, w, Int32(inner), x, 1, 0, y, 1)
    }

    /// y[rows, out] = x[rows, inner] · W[out, inner]ᵀ (for benchmarks and tests).
    public static func sgemmNT(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               rows: Int, out: Int, inner: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(out), Int32(inner), 1,
                    x, Int32(inner), w, Int32(inner), 0, y, Int32(out))
    }
}
