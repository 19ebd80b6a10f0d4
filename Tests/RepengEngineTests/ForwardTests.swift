// Forward-pass plumbing on a tiny random llama configuration: the packed BLAS path against a
// plain scalar reference, batching, KV cache, read and steer hooks.
import Foundation
import XCTest
@testable import RepengEngine
@testable import RepengKernels

/// A tiny model with random weights and a scalar reference forward pass written from the math.
struct TinyModel {
    let config: ModelConfig
    let weights: [String: [Float]]
    let model: any LanguageModel

    init(blocks: Int = 3, dim: Int = 64, ffn: Int = 96, heads: Int = 4, kvHeads: Int = 2, vocab: Int = 50,
         bias: Bool = false, interleaved: Bool = true, seed: UInt64 = 1) throws {
        config = try ModelConfig(architecture: interleaved ? "llama" : "qwen2", blockCount: blocks, hiddenSize: dim,
                                 feedForwardSize: ffn, headCount: heads, kvHeadCount: kvHeads, vocabSize: vocab,
                                 ropeInterleaved: interleaved)
        var rng = SeededGenerator(seed: seed)
        func rand(_ n: Int, _ scale: Float) -> [Float] {
            (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
        }
        var w: [String: [Float]] = [:]
        let c = config
        w["token_embd.weight"] = rand(vocab * dim, 1)
        w["output_norm.weight"] = rand(dim, 0.5).map { 1 + $0 }
        for b in 0..<blocks {
            let p = "blk.\(b)."
            w[p + "attn_norm.weight"] = rand(dim, 0.5).map { 1 + $0 }
            w[p + "ffn_norm.weight"] = rand(dim, 0.5).map { 1 + $0 }
            w[p + "attn_q.weight"] = rand(c.qDim * dim, 0.3)
            w[p + "attn_k.weight"] = rand(c.kvDim * dim, 0.3)
            w[p + "attn_v.weight"] = rand(c.kvDim * dim, 0.3)
            w[p + "attn_output.weight"] = rand(dim * c.qDim, 0.2)
            w[p + "ffn_gate.weight"] = rand(ffn * dim, 0.2)
            w[p + "ffn_up.weight"] = rand(ffn * dim, 0.2)
            w[p + "ffn_down.weight"] = rand(dim * ffn, 0.2)
            if bias {
                w[p + "attn_q.bias"] = rand(c.qDim, 0.1)
                w[p + "attn_k.bias"] = rand(c.kvDim, 0.1)
                w[p + "attn_v.bias"] = rand(c.kvDim, 0.1)
            }
        }
        weights = w
        model = try DecoderModel(config: config, weights: w)
    }

    /// Scalar reference: hidden states (transformers numbering) at every position, and logits.
    func reference(_ tokens: [Int32], steering: [Int: [Float]] = [:], normalize: Bool = false) -> (hidden: [[[Float]]], logits: [[Float]]) {
        let c = config, dim = c.hiddenSize, hd = c.headDim, T = tokens.count
        func matvec(_ m: [Float], _ x: [Float], rows: Int) -> [Float] {
            (0..<rows).map { r in var s: Float = 0; for i in 0..<x.count { s += m[r * x.count + i] * x[i] }; return s }
        }
        func rms(_ x: [Float], _ w: [Float]) -> [Float] {
            var ss: Float = 0; for v in x { ss += v * v }
            let s = 1 / (ss / Float(x.count) + c.rmsNormEps).squareRoot()
            return (0..<x.count).map { x[$0] * s * w[$0] }
        }
        func rope(_ v: inout [Float], pos: Int) {
            let half = hd / 2
            for i in 0..<half {
                let f = 1 / Float(Foundation.pow(Double(c.ropeBase), Double(Float(2 * i) / Float(hd))))
                let a = Float(pos) * f
                let (i0, i1) = c.ropeInterleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let x0 = v[i0], x1 = v[i1]
                v[i0] = x0 * Foundation.cos(a) - x1 * Foundation.sin(a)
                v[i1] = x1 * Foundation.cos(a) + x0 * Foundation.sin(a)
            }
        }
        var x = tokens.map { t in Array(weights["token_embd.weight"]![(Int(t) * dim)..<(Int(t) * dim + dim)]) }
        var hidden: [[[Float]]] = [x]
        for b in 0..<c.blockCount {
            let p = "blk.\(b)."
            var qs: [[[Float]]] = [], ks: [[[Float]]] = [], vs: [[[Float]]] = []
            for t in 0..<T {
                let xn = rms(x[t], weights[p + "attn_norm.weight"]!)
                var q = matvec(weights[p + "attn_q.weight"]!, xn, rows: c.qDim)
                var k = matvec(weights[p + "attn_k.weight"]!, xn, rows: c.kvDim)
                var v = matvec(weights[p + "attn_v.weight"]!, xn, rows: c.kvDim)
                if let qb = weights[p + "attn_q.bias"] {
                    for i in 0..<c.qDim { q[i] += qb[i] }
                    for i in 0..<c.kvDim { k[i] += weights[p + "attn_k.bias"]![i]; v[i] += weights[p + "attn_v.bias"]![i] }
                }
                var qh = (0..<c.headCount).map { Array(q[($0 * hd)..<($0 * hd + hd)]) }
                var kh = (0..<c.kvHeadCount).map { Array(k[($0 * hd)..<($0 * hd + hd)]) }
                for h in 0..<qh.count { rope(&qh[h], pos: t) }
                for h in 0..<kh.count { rope(&kh[h], pos: t) }
                qs.append(qh); ks.append(kh)
                vs.append((0..<c.kvHeadCount).map { Array(v[($0 * hd)..<($0 * hd + hd)]) })
            }
            var next: [[Float]] = []
            for t in 0..<T {
                var att = [Float](repeating: 0, count: c.qDim)
                for h in 0..<c.headCount {
                    let g = h / (c.headCount / c.kvHeadCount)
                    var s = (0...t).map { j -> Float in
                        var d: Float = 0; for i in 0..<hd { d += qs[t][h][i] * ks[j][g][i] }; return d / Float(hd).squareRoot()
                    }
                    let m = s.max()!
                    s = s.map { Foundation.exp($0 - m) }
                    let z = s.reduce(0, +)
                    for j in 0...t { for i in 0..<hd { att[h * hd + i] += s[j] / z * vs[j][g][i] } }
                }
                let o = matvec(weights[p + "attn_output.weight"]!, att, rows: dim)
                var h = (0..<dim).map { x[t][$0] + o[$0] }
                let hn = rms(h, weights[p + "ffn_norm.weight"]!)
                let g = matvec(weights[p + "ffn_gate.weight"]!, hn, rows: c.feedForwardSize)
                let u = matvec(weights[p + "ffn_up.weight"]!, hn, rows: c.feedForwardSize)
                let a = (0..<g.count).map { g[$0] / (1 + Foundation.exp(-g[$0])) * u[$0] }
                let d = matvec(weights[p + "ffn_down.weight"]!, a, rows: dim)
                for i in 0..<dim { h[i] += d[i] }
                if let sv = steering[b] {
                    var pre: Float = 0; for v in h { pre += v * v }
                    for i in 0..<dim { h[i] += sv[i] }
                    if normalize {
                        var post: Float = 0; for v in h { post += v * v }
                        for i in 0..<dim { h[i] = h[i] / post.squareRoot() * pre.squareRoot() }
                    }
                }
                next.append(h)
            }
            x = next
            hidden.append(x)
        }
        let final = x.map { rms($0, weights["output_norm.weight"]!) }
        hidden[c.blockCount] = final
        let logits = final.map { matvec(weights["token_embd.weight"]!, $0, rows: c.vocabSize) }
        return (hidden, logits)
    }
}

func maxRelDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    var num: Float = 0, den: Float = 0
    for i in 0..<a.count { num = max(num, abs(a[i] - b[i])); den = max(den, abs(b[i])) }
    return num / max(den, 1e-12)
}

final class ForwardTests: XCTestCase {
    func testMatchesScalarReference() throws {
        for (bias, interleaved) in [(false, true), (true, false)] {
            let tiny = try TinyModel(bias: bias, interleaved: interleaved)
            let tokens: [Int32] = [3, 17, 42, 0, 9, 9, 31]
            let ref = tiny.reference(tokens)
            let L = tiny.config.blockCount
            let out = try tiny.model.forward(
                [SequenceInput(tokens: tokens)],
                options: ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .all),
                workspace: ForwardWorkspace())[0]
            var worst: Float = 0
            for i in 0...L { worst = max(worst, maxRelDiff(out.hidden[i]!, ref.hidden[i].flatMap { $0 })) }
            worst = max(worst, maxRelDiff(out.logits, ref.logits.flatMap { $0 }))
            print("tiny model (bias \(bias), interleaved RoPE \(interleaved)) vs scalar reference: max relative error \(worst)")
            XCTAssertLessThan(worst, 1e-5)
        }
    }

    func testSmallAttentionKernelMatchesBLASPath() throws {
        let tiny = try TinyModel()
        let seqs: [[Int32]] = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [4, 1], [5]]
        let opts = ForwardOptions(hiddenStates: [1, 3], hiddenPositions: .all, logits: .all)
        let simd = ForwardWorkspace(), blas = ForwardWorkspace()
        blas.smallAttentionLimit = 0
        let a = try tiny.model.forward(seqs.map { SequenceInput(tokens: $0) }, options: opts, workspace: simd)
        let b = try tiny.model.forward(seqs.map { SequenceInput(tokens: $0) }, options: opts, workspace: blas)
        var worst: Float = 0
        for (x, y) in zip(a, b) { worst = max(worst, maxRelDiff(x.logits, y.logits), maxRelDiff(x.hidden[1]!, y.hidden[1]!)) }
        print("SIMD attention vs BLAS attention: max relative difference \(worst)")
        XCTAssertLessThan(worst, 1e-5)
        // The BLAS path also matches the scalar reference.
        let ref = tiny.reference(seqs[0])
        XCTAssertLessThan(maxRelDiff(b[0].logits, ref.logits.flatMap { $0 }), 1e-5)
    }

    func testPackedBatchEqualsOneAtATime() throws {
        let tiny = try TinyModel()
        let seqs: [[Int32]] = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10], [11, 12]]
        let L = tiny.config.blockCount
        let opts = ForwardOptions(hiddenStates: [1, 2, L], hiddenPositions: .all, logits: .last)
        let ws = ForwardWorkspace()
        let batched = try tiny.model.forward(seqs.map { SequenceInput(tokens: $0) }, options: opts, workspace: ws)
        var worst: Float = 0
        for (i, s) in seqs.enumerated() {
            let single = try tiny.model.forward([SequenceInput(tokens: s)], options: opts, workspace: ws)[0]
            for k in [1, 2, L] { worst = max(worst, maxRelDiff(batched[i].hidden[k]!, single.hidden[k]!)) }
            worst = max(worst, maxRelDiff(batched[i].logits, single.logits))
        }
        print("packed batch vs one at a time: max relative difference \(worst)")
        XCTAssertLessThan(worst, 1e-5)
    }

    func testCacheIncrementalEqualsFullPrefill() throws {
        let tiny = try TinyModel()
        let tokens: [Int32] = [7, 8, 9, 10, 11, 12, 13]
        let ws = ForwardWorkspace()
        let full = try tiny.model.forward([SequenceInput(tokens: tokens)], options: ForwardOptions(logits: .all), workspace: ws)[0]
        let cache = tiny.model.makeCache(capacity: 2)
        var rows: [Float] = []
        rows += try tiny.model.forward([SequenceInput(tokens: Array(tokens[0..<3]), cache: cache)], options: ForwardOptions(logits: .all), workspace: ws)[0].logits
        for t in tokens[3...] {
            rows += try tiny.model.forward([SequenceInput(tokens: [t], cache: cache)], options: ForwardOptions(logits: .all), workspace: ws)[0].logits
        }
        XCTAssertEqual(cache.length, tokens.count)
        let d = maxRelDiff(rows, full.logits)
        print("KV-cache incremental vs full prefill: max relative difference \(d)")
        XCTAssertLessThan(d, 1e-5)
    }

    func testDecodeStepBatchMatchesSingle() throws {
        let tiny = try TinyModel()
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
        let ws = ForwardWorkspace()
        let caches = prompts.map { _ in tiny.model.makeCache() }
        let V = tiny.config.vocabSize
        let logits = FloatBuffer(count: prompts.count * V)
        try tiny.model.decodeStep(zip(prompts, caches).map { SequenceInput(tokens: $0, cache: $1) }, workspace: ws, logits: logits.pointer)
        try tiny.model.decodeStep(prompts.indices.map { SequenceInput(tokens: [Int32($0 + 20)], cache: caches[$0]) }, workspace: ws, logits: logits.pointer)
        for (i, p) in prompts.enumerated() {
            let single = try tiny.model.forward([SequenceInput(tokens: p + [Int32(i + 20)])], workspace: ws)[0].logits
            XCTAssertLessThan(maxRelDiff(Array(UnsafeBufferPointer(start: logits.pointer + i * V, count: V)), single), 1e-5)
        }
    }

    func testStopsAfterDeepestLayerWithSameValues() throws {
        let tiny = try TinyModel()
        let ws = ForwardWorkspace()
        let tokens: [Int32] = [1, 5, 9]
        let shallow = try tiny.model.forward([SequenceInput(tokens: tokens)], options: ForwardOptions(hiddenStates: [1], logits: .none), workspace: ws)[0]
        let full = try tiny.model.forward([SequenceInput(tokens: tokens)], options: ForwardOptions(hiddenStates: [1, 3], logits: .last), workspace: ws)[0]
        XCTAssertEqual(shallow.hidden[1]!, full.hidden[1]!)
        XCTAssertTrue(shallow.logits.isEmpty)
        XCTAssertEqual(shallow.hidden[1]!.count, tiny.config.hiddenSize)
    }

    func testSteeringMatchesReferenceAndZeroIsIdentity() throws {
        let tiny = try TinyModel()
        let dim = tiny.config.hiddenSize, L = tiny.config.blockCount
        let tokens: [Int32] = [2, 4, 6, 8]
        let v = (0..<dim).map { Float($0 % 5) * 0.3 - 0.6 }
        let ws = ForwardWorkspace()
        let opts = ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .all)
        let base = try tiny.model.forward([SequenceInput(tokens: tokens)], options: opts, workspace: ws)[0]
        for normalize in [false, true] {
            let st = try tiny.model.prepareSteering(Steering(vectors: [1: v], normalize: normalize))
            let out = try tiny.model.forward([SequenceInput(tokens: tokens, steering: st)], options: opts, workspace: ws)[0]
            let ref = tiny.reference(tokens, steering: [1: v], normalize: normalize)
            XCTAssertEqual(out.hidden[1]!, base.hidden[1]!, "block 0's output is not steered")
            XCTAssertNotEqual(out.hidden[2]!, base.hidden[2]!)
            XCTAssertLessThan(maxRelDiff(out.logits, ref.logits.flatMap { $0 }), 1e-5)
            if normalize {
                for t in 0..<tokens.count {
                    let a = Array(out.hidden[2]![(t * dim)..<(t * dim + dim)]), b = Array(base.hidden[2]![(t * dim)..<(t * dim + dim)])
                    XCTAssertEqual(sqrt(a.map { $0 * $0 }.reduce(0, +)), sqrt(b.map { $0 * $0 }.reduce(0, +)), accuracy: 1e-4)
                }
            }
        }
        // Zero vectors, with or without normalize, leave every output bit-identical.
        for normalize in [false, true] {
            let zero = try tiny.model.prepareSteering(Steering(vectors: [0: [Float](repeating: 0, count: dim), 2: v.map { $0 * 0 }], normalize: normalize))
            let out = try tiny.model.forward([SequenceInput(tokens: tokens, steering: zero)], options: opts, workspace: ws)[0]
            XCTAssertEqual(out.logits, base.logits)
            XCTAssertEqual(out.hidden, base.hidden)
        }
        // Different steering per sequence in one batch.
        let st = try tiny.model.prepareSteering(Steering(vectors: [1: v]))
        let mixed = try tiny.model.forward([SequenceInput(tokens: tokens, steering: st), SequenceInput(tokens: tokens)], options: opts, workspace: ws)
        XCTAssertLessThan(maxRelDiff(mixed[1].logits, base.logits), 1e-5)
        XCTAssertGreaterThan(maxRelDiff(mixed[0].logits, base.logits), 1e-3)
    }

    func testBadInputsThrow() throws {
        let tiny = try TinyModel()
        let ws = ForwardWorkspace()
        let dim = tiny.config.hiddenSize
        XCTAssertThrowsError(try tiny.model.forward([SequenceInput(tokens: [])], workspace: ws))
        XCTAssertThrowsError(try tiny.model.forward([SequenceInput(tokens: [50])], workspace: ws))
        XCTAssertThrowsError(try tiny.model.forward([SequenceInput(tokens: [-1])], workspace: ws))
        XCTAssertThrowsError(try tiny.model.forward([SequenceInput(tokens: [1])], options: ForwardOptions(hiddenStates: [4]), workspace: ws))
        XCTAssertThrowsError(try tiny.model.prepareSteering(Steering(vectors: [3: [Float](repeating: 1, count: dim)])))
        XCTAssertThrowsError(try tiny.model.prepareSteering(Steering(vectors: [1: [1, 2]])))
        XCTAssertThrowsError(try tiny.model.prepareSteering(Steering(vectors: [1: [Float](repeating: .nan, count: dim)])))
        XCTAssertThrowsError(try tiny.model.forward([SequenceInput(tokens: [Int32](repeating: 1, count: 513))], workspace: ws)) { e in
            XCTAssertEqual(e as? EngineError, .contextOverflow(needed: 513, limit: 512))
        }
        XCTAssertEqual(try tiny.model.blockIndex(-1), 2)
        XCTAssertThrowsError(try tiny.model.blockIndex(-4))
    }

    func testKernelsMatchReference() {
        var rng = SeededGenerator(seed: 3)
        let rows = 5, dim = 77
        let x = (0..<(rows * dim)).map { _ in Float(rng.nextUnit() * 4 - 2) }
        let w = (0..<dim).map { _ in Float(rng.nextUnit() + 0.5) }
        var a = [Float](repeating: 0, count: rows * dim), b = a
        Kernels.rmsNorm(x, w, &a, rows: rows, dim: dim, eps: 1e-5)
        Kernels.rmsNormReference(x, w, &b, rows: rows, dim: dim, eps: 1e-5)
        XCTAssertLessThan(maxRelDiff(a, b), 1e-6)
        let ffn = 40
        let gu = (0..<(rows * 2 * ffn)).map { _ in Float(rng.nextUnit() * 8 - 4) }
        var c = [Float](repeating: 0, count: rows * ffn), d = c
        Kernels.swiglu(gu, &c, rows: rows, ffn: ffn)
        Kernels.swigluReference(gu, &d, rows: rows, ffn: ffn)
        XCTAssertLessThan(maxRelDiff(c, d), 1e-6)
        // GeGLU over a wide range (gelu_tanh saturates to 0 and to x), also past |x| = 10.
        let gx = (0..<(rows * 2 * ffn)).map { _ in Float(rng.nextUnit() * 24 - 12) }
        var g1 = [Float](repeating: 0, count: rows * ffn), g2 = g1
        Kernels.geglu(gx, &g1, rows: rows, ffn: ffn)
        Kernels.gegluReference(gx, &g2, rows: rows, ffn: ffn)
        // Relative to the largest value: where gelu_tanh is nearly 0 the reference's 1 + tanh(y)
        // cancels (as in transformers' f32 GELUTanh), the kernel's sigmoid(2y) does not.
        let gegluDiff = maxRelDiff(g1, g2)
        print("geglu max relative difference: \(gegluDiff)")
        XCTAssertLessThan(gegluDiff, 1e-6)
        var h1 = gx, h2 = gx
        Kernels.geluTanh(&h1, h1.count)
        Kernels.geluTanhReference(&h2, h2.count)
        XCTAssertLessThan(maxRelDiff(h1, h2), 1e-6)
        // LayerNorm, with an offset so the mean matters, in place as the forward pass runs it.
        let bias = (0..<dim).map { _ in Float(rng.nextUnit() - 0.5) }
        let shifted = x.map { $0 + 3 }
        var ln1 = shifted, ln2 = shifted
        Kernels.layerNormReference(shifted, w, bias, &ln2, rows: rows, dim: dim, eps: 1e-5)
        ln1.withUnsafeMutableBufferPointer { p in
            Kernels.layerNorm(p.baseAddress!, w, bias, p.baseAddress!, rows: rows, dim: dim, eps: 1e-5)
        }
        let lnDiff = maxRelDiff(ln1, ln2)
        print("layerNorm max relative difference: \(lnDiff)")
        XCTAssertLessThan(lnDiff, 1e-6)
        // Soft-capping across the cap (tanh saturates both ways).
        var sc1 = (0..<300).map { _ in Float(rng.nextUnit() * 400 - 200) }, sc2 = sc1
        Kernels.softcap(&sc1, sc1.count, cap: 30)
        Kernels.softcapReference(&sc2, sc2.count, cap: 30)
        let capDiff = maxRelDiff(sc1, sc2)
        print("softcap max relative difference: \(capDiff)")
        XCTAssertLessThan(capDiff, 1e-6)
        var e = (0..<300).map { _ in Float(rng.nextUnit() * 60 - 30) }, f = e
        Kernels.softmax(&e, n: 300, valid: 250)
        Kernels.softmaxReference(&f, n: 300, valid: 250)
        XCTAssertLessThan(maxRelDiff(e, f), 1e-6)
        // Vector exp against libm over a wide range (relative error).
        var worst: Float = 0
        var v = Float(-87)
        while v < 88 {
            let lanes = SIMD16<Float>((0..<16).map { v + Float($0) * 0.0137 })
            let got = Kernels.exp(lanes)
            for l in 0..<16 { worst = max(worst, abs(got[l] - Foundation.exp(lanes[l])) / Foundation.exp(lanes[l])) }
            v += 0.219
        }
        print("SIMD exp max relative error vs libm: \(worst)")
        XCTAssertLessThan(worst, 3e-7)
    }
}
