// Element-wise kernels of the forward pass (RMSNorm, LayerNorm, RoPE, SwiGLU, GeGLU, GELU, soft-capping, softmax,
// steering), each
// with a plain reference path beside the SIMD path; the tests check one against the other.
import CKernelSupport
import Foundation

/// Element-wise kernels over rows of f32 values. `fast` paths use SIMD; `reference` paths are
/// the readable definitions they are tested against.
public enum Kernels {
    // MARK: RMSNorm (Zhang & Sennrich 2019; transformers' LlamaRMSNorm order: (x * rsqrt(mean(x²) + eps)) * w)

    /// y[r] = (x[r] * 1/sqrt(mean(x[r]²) + eps)) * weight, for `rows` rows of `dim` values.
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        for r in 0..<rows {
            let xr = x + r * dim
            let yr = y + r * dim
            let ss = sumOfSquares(xr, dim)
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
            var i = 0
            while i + 16 <= dim {
                let v = UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self)
                let w = UnsafeRawPointer(weight + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(yr + i).storeBytes(of: (v * scale) * w, as: SIMD16<Float>.self)
                i += 16
            }
            while i < dim { yr[i] = (xr[i] * scale) * weight[i]; i += 1 }
        }
    }

    /// Reference RMSNorm: one row at a time, scalar loops.
    public static func rmsNormReference(
        _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        for r in 0..<rows {
            var ss: Float = 0
            for i in 0..<dim { ss += x[r * dim + i] * x[r * dim + i] }
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
            for i in 0..<dim { y[r * dim + i] = (x[r * dim + i] * scale) * weight[i] }
        }
    }

    // MARK: LayerNorm (Ba et al. 2016; torch.nn.LayerNorm: (x - mean) / sqrt(var + eps) * w + b, biased variance)

    /// y[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias, for `rows` rows of `dim` values.
    /// x and y may be the same buffer.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float
    ) {
        for r in 0..<rows {
            let xr = x + r * dim
            let yr = y + r * dim
            var acc = SIMD16<Float>(repeating: 0)
            var i = 0
            while i + 16 <= dim { acc += UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self); i += 16 }
            var sum = acc.sum()
            while i < dim { sum += xr[i]; i += 1 }
            let mean = sum / Float(dim)
            let m = SIMD16<Float>(repeating: mean)
            acc = SIMD16<Float>(repeating: 0)
            i = 0
            while i + 16 <= dim {
                let d = UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self) - m
                acc += d * d
                i += 16
            }
            var ss = acc.sum()
            while i < dim { ss += (xr[i] - mean) * (xr[i] - mean); i += 1 }
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
            i = 0
            while i + 16 <= dim {
                let v = UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self)
                let w = UnsafeRawPointer(weight + i).loadUnaligned(as: SIMD16<Float>.self)
                let b = UnsafeRawPointer(bias + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(yr + i).storeBytes(of: (v - m) * scale * w + b, as: SIMD16<Float>.self)
                i += 16
            }
            while i < dim { yr[i] = (xr[i] - mean) * scale * weight[i] + bias[i]; i += 1 }
        }
    }

    /// Reference LayerNorm: two passes in double precision per row.
    public static func layerNormReference(
        _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, eps: Float
    ) {
        for r in 0..<rows {
            var mean = 0.0, v = 0.0
            for i in 0..<dim { mean += Double(x[r * dim + i]) }
            mean /= Double(dim)
            for i in 0..<dim { v += (Double(x[r * dim + i]) - mean) * (Double(x[r * dim + i]) - mean) }
            let scale = 1 / (v / Double(dim) + Double(eps)).squareRoot()
            for i in 0..<dim { y[r * dim + i] = Float((Double(x[r * dim + i]) - mean) * scale) * weight[i] + bias[i] }
        }
    }

    @inline(__always)
    static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(repeating: 0), acc1 = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 32 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self)
            acc0 += a * a
            acc1 += b * b
            i += 32
        }
        while i + 16 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            acc0 += a * a
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < n { s += x[i] * x[i]; i += 1 }
        return s
    }

    /// L2 norm of one row.
    @inline(__always)
    public static func norm(_ x: UnsafePointer<Float>, _ n: Int) -> Float { sumOfSquares(x, n).squareRoot() }

    // MARK: RoPE (Su et al. 2021)

    /// Rotates `heads` heads of `headDim` values in place. `cos`/`sin` hold headDim/2 angles for
    /// this position. `interleaved` pairs (2i, 2i+1) as llama.cpp's "normal" mode (GGUF llama
    /// files store Q/K permuted for it); otherwise pairs (i, i + headDim/2) as GPT-NeoX/Qwen2.
    @inline(__always)
    public static func rope(
        _ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, interleaved: Bool
    ) {
        let half = headDim / 2
        for h in 0..<heads {
            let v = x + h * headDim
            if interleaved {
                for i in 0..<half {
                    let x0 = v[2 * i], x1 = v[2 * i + 1]
                    v[2 * i] = x0 * cos[i] - x1 * sin[i]
                    v[2 * i + 1] = x1 * cos[i] + x0 * sin[i]
                }
            } else {
                var i = 0
                while i + 16 <= half {
                    let a = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD16<Float>.self)
                    let b = UnsafeRawPointer(v + half + i).loadUnaligned(as: SIMD16<Float>.self)
                    let c = UnsafeRawPointer(cos + i).loadUnaligned(as: SIMD16<Float>.self)
                    let s = UnsafeRawPointer(sin + i).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(v + i).storeBytes(of: a * c - b * s, as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(v + half + i).storeBytes(of: b * c + a * s, as: SIMD16<Float>.self)
                    i += 16
                }
                while i < half {
                    let a = v[i], b = v[half + i]
                    v[i] = a * cos[i] - b * sin[i]
                    v[half + i] = b * cos[i] + a * sin[i]
                    i += 1
                }
            }
        }
    }

    // MARK: SwiGLU (Shazeer 2020): out = silu(gate) * up

    /// For each row of `gateUp` laid out as [gate(ffn) | up(ffn)], writes silu(gate)*up into `out` [rows, ffn].
    public static func swiglu(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, ffn: Int) {
        gated(SiLU.self, gateUp, out, rows: rows, ffn: ffn)
    }

    /// out[r] = act(gate[r]) * up[r] over rows laid out as [gate(ffn) | up(ffn)]. Generic over the
    /// activation type (specialized at compile time) rather than taking closures, which the
    /// optimizer does not always inline into the SIMD loop (prefill ran 10% slower that way).
    @inline(__always)
    static func gated<A: ElementActivation>(
        _ act: A.Type, _ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, ffn: Int
    ) {
        for r in 0..<rows {
            let g = gateUp + r * 2 * ffn
            let u = g + ffn
            let o = out + r * ffn
            var i = 0
            while i + 16 <= ffn {
                let x = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
                let up = UnsafeRawPointer(u + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(o + i).storeBytes(of: A.lanes(x) * up, as: SIMD16<Float>.self)
                i += 16
            }
            while i < ffn {
                o[i] = A.scalar(g[i]) * u[i]
                i += 1
            }
        }
    }

    /// exp on 16 lanes: Cody–Waite range reduction and a degree-6 minimax polynomial
    /// (Cephes expf coefficients); within 2 ulp of the true value over the f32 range.
    /// Written with lane-wise arithmetic, compares and bit casts only, which compile to vector
    /// instructions (rounding uses the 1.5·2²³ trick rather than a float→int conversion).
    @inline(__always)
    public static func exp(_ v: SIMD16<Float>) -> SIMD16<Float> {
        var x = v
        x.replace(with: -87.3, where: x .< -87.3)
        x.replace(with: 88.7, where: x .> 88.7)
        let t = x * 1.442_695_04 + 12_582_912.0      // 1.5·2²³ + round(x·log2 e) in the low bits
        let n = t - 12_582_912.0
        var r = x - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let bits = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
    }

    /// Reference SwiGLU.
    public static func swigluReference(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, ffn: Int) {
        for r in 0..<rows {
            for i in 0..<ffn {
                let x = gateUp[r * 2 * ffn + i]
                let silu = x * (1 / (1 + Foundation.exp(-x)))
                out[r * ffn + i] = silu * gateUp[r * 2 * ffn + ffn + i]
            }
        }
    }

    // MARK: GeGLU (Shazeer 2020) with tanh-approximated GELU: out = gelu_tanh(gate) * up

    /// √(2/π), GELU's tanh approximation constant.
    static let geluBeta: Float = 0.797_884_56
    static let geluKappa: Float = 0.044_715

    /// For each row of `gateUp` laid out as [gate(ffn) | up(ffn)], writes gelu_tanh(gate)*up into
    /// `out` [rows, ffn]. Uses 0.5·(1 + tanh(y)) = sigmoid(2y), y = √(2/π)(x + 0.044715x³).
    public static func geglu(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, ffn: Int) {
        gated(GELUTanh.self, gateUp, out, rows: rows, ffn: ffn)
    }

    /// Reference GeGLU, as written in transformers' GELUTanh: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
    public static func gegluReference(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, ffn: Int) {
        for r in 0..<rows {
            for i in 0..<ffn {
                let x = gateUp[r * 2 * ffn + i]
                let gelu = 0.5 * x * (1 + Foundation.tanh(geluBeta * (x + geluKappa * x * x * x)))
                out[r * ffn + i] = gelu * gateUp[r * 2 * ffn + ffn + i]
            }
        }
    }

    /// GELU (tanh approximation, GPT-2's `gelu_new`) of `n` values in place.
    public static func geluTanh(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: GELUTanh.lanes(v), as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { x[i] = GELUTanh.scalar(x[i]); i += 1 }
    }

    /// Reference GELU (tanh), as transformers' NewGELUActivation writes it.
    public static func geluTanhReference(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let v = x[i]
            x[i] = 0.5 * v * (1 + Foundation.tanh(geluBeta * (v + geluKappa * v * v * v)))
        }
    }

    // MARK: Soft-capping (Gemma-2): x = cap · tanh(x / cap)

    /// Soft-caps `n` values in place; tanh(y) = 1 - 2 / (exp(2y) + 1) on 16 lanes.
    public static func softcap(_ x: UnsafeMutablePointer<Float>, _ n: Int, cap: Float) {
        let c = SIMD16<Float>(repeating: cap), twoOverCap = SIMD16<Float>(repeating: 2 / cap)
        let one = SIMD16<Float>(repeating: 1), two = SIMD16<Float>(repeating: 2)
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let t = one - two / (exp(v * twoOverCap) + one)
            UnsafeMutableRawPointer(x + i).storeBytes(of: c * t, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { x[i] = cap * Foundation.tanh(x[i] / cap); i += 1 }
    }

    /// Reference soft-capping, as transformers writes it.
    public static func softcapReference(_ x: UnsafeMutablePointer<Float>, _ n: Int, cap: Float) {
        for i in 0..<n { x[i] = Foundation.tanh(x[i] / cap) * cap }
    }

    // MARK: Softmax

    /// In-place softmax of `n` values; entries past `valid` are set to 0 (causal mask).
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, n: Int, valid: Int) {
        var mv = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= valid {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            mv.replace(with: v, where: v .> mv)
            i += 16
        }
        var m = mv.max()
        while i < valid { if x[i] > m { m = x[i] }; i += 1 }
        var acc = SIMD16<Float>(repeating: 0)
        i = 0
        while i + 16 <= valid {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - m)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: SIMD16<Float>.self)
            acc += e
            i += 16
        }
        var s = acc.sum()
        while i < valid {
            let e = Foundation.exp(x[i] - m)
            x[i] = e
            s += e
            i += 1
        }
        let inv = 1 / s
        i = 0
        while i + 16 <= valid {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * inv, as: SIMD16<Float>.self)
            i += 16
        }
        while i < valid { x[i] *= inv; i += 1 }
        if valid < n { (x + valid).update(repeating: 0, count: n - valid) }
    }

    /// Reference softmax (scalar, libm exp).
    public static func softmaxReference(_ x: UnsafeMutablePointer<Float>, n: Int, valid: Int) {
        var m = -Float.infinity
        for i in 0..<valid { m = max(m, x[i]) }
        var s: Float = 0
        for i in 0..<valid { x[i] = Foundation.exp(x[i] - m); s += x[i] }
        for i in 0..<valid { x[i] /= s }
        for i in valid..<n { x[i] = 0 }
    }

    // MARK: Attention for one query

    /// out = softmax(scale · K q) · V over `count` keys/values (rows `ld` apart), for one head.
    /// `headDim` must be a multiple of 16; `scores` holds at least `count` values.
    @inline(__always)
    public static func attendOne(
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int, count: Int,
        headDim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    ) {
        var m = -Float.infinity
        for j in 0..<count {
            let kj = keys + j * ld
            var acc = SIMD16<Float>(repeating: 0)
            var d = 0
            while d < headDim {
                acc += UnsafeRawPointer(q + d).loadUnaligned(as: SIMD16<Float>.self)
                    * UnsafeRawPointer(kj + d).loadUnaligned(as: SIMD16<Float>.self)
                d += 16
            }
            let s = acc.sum() * scale
            scores[j] = s
            if s > m { m = s }
        }
        var total: Float = 0
        for j in 0..<count {
            let e = Foundation.exp(scores[j] - m)
            scores[j] = e
            total += e
        }
        let inv = 1 / total
        var d = 0
        while d < headDim {
            var acc = SIMD16<Float>(repeating: 0)
            for j in 0..<count {
                acc += UnsafeRawPointer(values + j * ld + d).loadUnaligned(as: SIMD16<Float>.self) * scores[j]
            }
            UnsafeMutableRawPointer(out + d).storeBytes(of: acc * inv, as: SIMD16<Float>.self)
            d += 16
        }
    }

    // MARK: Causal attention, blocks of query rows (prefill)

    /// Query rows per call of `attendCausalRows`.
    public static let causalRowBlock = 6

    /// Row stride for keys packed by `packKeysTransposed`: `count` rounded up to 16, plus 16
    /// when that is a multiple of 64 (a power-of-two stride would map the `headDim` rows read
    /// together onto a few cache sets).
    public static func packedKeyStride(_ count: Int) -> Int {
        let padded = (count + 15) / 16 * 16
        return padded % 64 == 0 ? padded + 16 : padded
    }

    /// Writes `count` keys of `headDim` values (rows `ld` apart) transposed into
    /// `out[d * stride + j]`, zero-filling the columns from `count` up to the next multiple of 16.
    public static func packKeysTransposed(
        _ keys: UnsafePointer<Float>, ld: Int, count: Int, headDim: Int,
        into out: UnsafeMutablePointer<Float>, stride: Int
    ) {
        let padded = (count + 15) / 16 * 16
        for d in 0..<headDim {
            let o = out + d * stride
            for j in 0..<count { o[j] = keys[j * ld + d] }
            if padded > count { (o + count).update(repeating: 0, count: padded - count) }
        }
    }

    /// Causal attention for `rows` (1 ... `causalRowBlock`) consecutive query rows of one head:
    /// row r sees keys `0 ..< visible + r`. out[r] = softmax(scale · q[r] · Kᵀ) · V.
    /// `keysT` holds the keys as `packKeysTransposed` writes them (`ldk` apart, at least
    /// `visible + rows - 1` rounded up to 16 columns); values are rows `ldv` apart. `headDim`
    /// must be a multiple of 16; `scores` holds `causalRowBlock * ldk` values. Each row's
    /// result depends only on that row (blocks of fewer rows give the same values).
    @inline(__always)
    public static func attendCausalRows(
        q: UnsafePointer<Float>, ldq: Int, rows: Int, visible: Int,
        keysT: UnsafePointer<Float>, ldk: Int, values: UnsafePointer<Float>, ldv: Int,
        headDim: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, ldo: Int, level: KernelLevel = Kernels.level
    ) {
        // Rows past `rows` repeat the last row; their results are not stored.
        let last = rows - 1
        let keys = visible + last
        // Scores, 16 keys at a time: one packed key row against six broadcast query values.
        repeng_causal_scores(level.rawValue, q, ldq, rows, keysT, ldk, keys, headDim, scale, scores)
        // Softmax per row over its visible keys; masked keys up to `keys` become exact zeros.
        for r in 0..<causalRowBlock {
            softmax(scores + r * ldk, n: keys, valid: visible + min(r, last))
        }
        // Weighted sums of values, 16 dimensions at a time.
        repeng_causal_values(level.rawValue, values, ldv, keys, scores, ldk, headDim, rows, out, ldo)
    }

    /// Reference causal attention for one query row: out = softmax(scale · K q) · V over the
    /// first `count` keys/values (rows `ld` apart), scalar loops and libm exp.
    public static func attendReference(
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int,
        count: Int, headDim: Int, scale: Float, out: UnsafeMutablePointer<Float>
    ) {
        var scores = [Float](repeating: 0, count: count)
        for j in 0..<count {
            var s: Float = 0
            for d in 0..<headDim { s += q[d] * keys[j * ld + d] }
            scores[j] = s * scale
        }
        scores.withUnsafeMutableBufferPointer { softmaxReference($0.baseAddress!, n: count, valid: count) }
        for d in 0..<headDim {
            var acc: Float = 0
            for j in 0..<count { acc += scores[j] * values[j * ld + d] }
            out[d] = acc
        }
    }

    // MARK: Vector ops

    /// y += x (n values).
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// y *= s (n values).
    @inline(__always)
    public static func scale(_ y: UnsafeMutablePointer<Float>, _ s: Float, _ n: Int) {
        for i in 0..<n { y[i] *= s }
    }

    /// Index of the largest value (first on ties, as torch.argmax).
    public static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i]; best = i }
        return best
    }
}

/// An element-wise activation on 16 lanes and on one value (the tails).
protocol ElementActivation {
    static func lanes(_ x: SIMD16<Float>) -> SIMD16<Float>
    static func scalar(_ x: Float) -> Float
}

/// x · sigmoid(x).
enum SiLU: ElementActivation {
    @inline(__always) static func lanes(_ x: SIMD16<Float>) -> SIMD16<Float> { x / (1 + Kernels.exp(-x)) }
    @inline(__always) static func scalar(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }
}

/// GELU's tanh approximation as x · sigmoid(2y), y = √(2/π)(x + 0.044715x³) (0.5·(1 + tanh y) = sigmoid(2y)).
enum GELUTanh: ElementActivation {
    @inline(__always) static func lanes(_ x: SIMD16<Float>) -> SIMD16<Float> {
        x / (1 + Kernels.exp(-(2 * Kernels.geluBeta * (x + Kernels.geluKappa * x * x * x))))
    }
    @inline(__always) static func scalar(_ x: Float) -> Float {
        x / (1 + Foundation.exp(-2 * Kernels.geluBeta * (x + Kernels.geluKappa * x * x * x)))
    }
}
