// Weight matrices of a loaded model and the matrix products over them (OpenBLAS sgemm; the
// weight-streaming kernel for decode-sized batches).
import CBLAS
import CKernelSupport
import RepengKernels

/// How a model's weights are held: `exact` decodes every weight to f32 at load (the path the
/// fidelity tests against transformers use); `native` keeps F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
/// Q8_0, Q4_K, Q5_K and Q6_K matrices in their GGUF encoding, in the mapped file, decoded row by row as they are used
/// (other encodings are decoded to f32 as in `exact`).
public enum WeightPrecision: String, Sendable, CaseIterable {
    case exact
    case native

    /// The encodings `native` keeps as they are.
    public static let nativeTypes: Set<GGMLType> = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]
}

/// Rows of a matrix in a GGUF encoding, inside a mapped file that `owner` keeps alive.
public struct EncodedRows: @unchecked Sendable {
    public let type: GGMLType
    let base: UnsafeRawPointer
    /// Bytes per row (cols / block size × block bytes).
    public let rowBytes: Int
    let owner: AnyObject
}

/// A weight matrix of `rows` × `cols` (out × in, row-major, as GGUF stores `ne = [cols, rows]`).
/// Storage is f32 (dequantized at load, or used in place in a memory-mapped f32 file), rows in
/// their GGUF encoding (`WeightPrecision.native`), or row blocks of other matrices stacked
/// (q | k | v kept in place as three tensors).
public final class WeightMatrix: @unchecked Sendable {
    /// How the values are held in memory.
    public enum Storage {
        /// Dense row-major f32 owned by the matrix.
        case f32(FloatBuffer)
        /// Dense row-major f32 inside a mapped file that `owner` keeps alive (never written).
        case mapped(UnsafePointer<Float>, owner: AnyObject)
        /// Rows in a GGUF encoding, decoded as they are used.
        case encoded(EncodedRows)
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

    init(rows: Int, cols: Int, encoded: EncodedRows) {
        self.rows = rows
        self.cols = cols
        self.storage = .encoded(encoded)
    }

    /// Stacks row blocks (all with `cols` columns) into one matrix.
    init(stacking parts: [WeightMatrix]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.cols == parts[0].cols }, "stacked parts must share their column count")
        rows = parts.reduce(0) { $0 + $1.rows }
        cols = parts[0].cols
        storage = parts.count == 1 ? parts[0].storage : .stacked(parts)
    }

    /// Pointer to row-major f32 values (not for stacked or encoded matrices, which have none).
    var f32: UnsafeMutablePointer<Float> {
        switch storage {
        case .f32(let b): return b.pointer
        case .mapped(let p, _): return UnsafeMutablePointer(mutating: p)
        case .encoded, .stacked: preconditionFailure("a stacked or encoded weight matrix has no single f32 pointer")
        }
    }

    /// Writes row `row` as f32 values into `out` (`cols` of them): the embedding gather.
    func copyRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .f32, .mapped:
            out.update(from: f32 + row * cols, count: cols)
        case .encoded(let e):
            repeng_quant_decode_rows(Int32(e.type.rawValue), e.base, e.rowBytes, cols, row, row + 1, out, cols)
        case .stacked(let parts):
            var first = 0
            for p in parts {
                if row < first + p.rows { return p.copyRow(row - first, into: out) }
                first += p.rows
            }
        }
    }

    /// Bytes of weights this matrix reads (in its own memory or in a mapped file's pages).
    public var residentBytes: Int {
        switch storage {
        case .f32, .mapped: return rows * cols * MemoryLayout<Float>.stride
        case .encoded(let e): return rows * e.rowBytes
        case .stacked(let parts): return parts.reduce(0) { $0 + $1.residentBytes }
        }
    }

    /// Bytes per storage kind ("f32", or the encoding such as "Q4_1").
    public var residentBytesByType: [String: Int] {
        switch storage {
        case .f32, .mapped: return ["f32": residentBytes]
        case .encoded(let e): return [e.type.description: residentBytes]
        case .stacked(let parts):
            return parts.reduce(into: [:]) { acc, p in acc.merge(p.residentBytesByType, uniquingKeysWith: +) }
        }
    }

    /// Rows decoded per sgemm call when an encoded matrix meets more than
    /// `streamingBatchLimit` input rows (prefill).
    static let decodedPanelRows = 256

    /// y[n, rows] = x[n, cols] · Wᵀ (+ y when accumulating). Up to `streamingBatchLimit` rows
    /// (decode steps, single or batched) use the weight-streaming kernel, larger ones sgemm.
    /// `int8`: encoded rows of the types the int8 kernels handle meet those up to
    /// `streamingBatchLimit` rows quantized to int8 (decode steps, `ForwardWorkspace.int8Decode`).
    @inline(__always)
    func apply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
               int8: Bool = false) {
        apply(x, n: n, ldx: cols, into: y, ldy: rows, accumulate: accumulate, int8: int8)
    }

    /// Fewest output rows per work item of the streaming kernel.
    static let streamingChunkRows = 64

    /// Strided form: x rows `ldx` apart, y rows `ldy` apart.
    func apply(_ x: UnsafePointer<Float>, n: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool,
               int8: Bool = false) {
        if case .stacked(let parts) = storage {
            var row = 0
            for p in parts {
                p.apply(x, n: n, ldx: ldx, into: y + row, ldy: ldy, accumulate: accumulate, int8: int8)
                row += p.rows
            }
            return
        }
        if case .encoded(let e) = storage {
            applyEncoded(e, x, n: n, ldx: ldx, into: y, ldy: ldy, accumulate: accumulate, int8: int8)
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

extension WeightMatrix {
    /// Products with encoded rows: decode steps decode each weight row once into a per-thread
    /// scratch and run the streaming tiles over it, or (`int8`, the types the int8 kernels
    /// handle) quantize the input rows once to int8 and take integer dot products with the
    /// blocks as they are; larger inputs decode panels of rows and hand them to sgemm.
    private func applyEncoded(_ e: EncodedRows, _ x: UnsafePointer<Float>, n: Int, ldx: Int, into y: UnsafeMutablePointer<Float>,
                              ldy: Int, accumulate: Bool, int8: Bool) {
        let rows = self.rows, cols = self.cols, type = Int32(e.type.rawValue)
        if n <= Kernels.streamingBatchLimit {
            let workers = BLAS.threads, level = Kernels.level.rawValue
            let chunk = max(Self.streamingChunkRows, (rows + 4 * workers - 1) / (4 * workers))
            let chunks = (rows + chunk - 1) / chunk
            if int8, repeng_q8_supports(type) != 0 {
                // Quantized once on this thread, into its scratch, which the workers only read
                // while this thread waits for them (its own share runs repeng_q8_product, which
                // does not touch that scratch).
                guard let xq = repeng_q8_quantize(level, x, n, ldx, cols) else {
                    preconditionFailure("out of memory for a \(n) × \(cols) int8 activation scratch")
                }
                Parallel.forEach(count: chunks, workers: workers) { _, c in
                    repeng_q8_product(level, type, xq, n, cols, e.base, e.rowBytes, c * chunk, min(rows, (c + 1) * chunk),
                                      y, ldy, accumulate ? 1 : 0)
                }
                return
            }
            Parallel.forEach(count: chunks, workers: workers) { _, c in
                let status = repeng_quant_product(level, type, x, n, ldx, e.base, e.rowBytes, cols, c * chunk,
                                                  min(rows, (c + 1) * chunk), y, ldy, accumulate ? 1 : 0)
                precondition(status == 0, "out of memory for a \(cols)-column decode scratch")
            }
            return
        }
        Parallel.parkWorkers()
        let panel = min(rows, Self.decodedPanelRows)
        let buffer = FloatBuffer(count: panel * cols)
        var first = 0
        while first < rows {
            let count = min(panel, rows - first)
            repeng_quant_decode_rows(type, e.base, e.rowBytes, cols, first, first + count, buffer.pointer, cols)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(cols), 1,
                        x, Int32(ldx), buffer.pointer, Int32(cols), accumulate ? 1 : 0, y + first, Int32(ldy))
            first += count
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
