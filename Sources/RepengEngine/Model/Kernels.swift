// Element-wise kernels of the forward pass (RMSNorm, RoPE, SwiGLU, softmax, steering), each
// with a plain reference path beside the SIMD path; the tests check one against the other.
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
        let one = SIMD16<Float>(repeating: 1)
        for r in 0..<rows {
            let g = gateUp + r * 2 * ffn
            let u = g + ffn
            let o = out + r * ffn
            var i = 0
            while i + 16 <= ffn {
                let x = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
                let up = UnsafeRawPointer(u + i).loadUnaligned(as: SIMD16<Float>.self)
                let silu = x / (one + exp(-x))
                UnsafeMutableRawPointer(o + i).storeBytes(of: silu * up, as: SIMD16<Float>.self)
                i += 16
            }
            while i < ffn {
                let x = g[i]
                o[i] = (x / (1 + Foundation.exp(-x))) * u[i]
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

    // MARK: Softmax

    /// In-place softmax of `n` values; entries past `valid` are set to 0 (causal mask).
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, n: Int, valid: Int) {
        var m = -Float.infinity
        for i in 0..<valid where x[i] > m { m = x[i] }
        var acc = SIMD16<Float>(repeating: 0)
        var i = 0
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
        for i in 0..<valid { x[i] *= inv }
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
