// Multi-threaded forward pass: the tiled causal attention kernel against the scalar and BLAS
// paths, results independent of the thread count and of the rest of the batch.
import Foundation
import XCTest
@testable import RepengEngine
@testable import RepengKernels

final class ParallelForwardTests: XCTestCase {
    /// Tolerance (max |a − b| / max |b|) between different kernels for the same math.
    private let kernelTolerance: Float = 1e-5

    func testParallelForEachVisitsEveryItemOnce() {
        for workers in [1, 2, 3, 8] {
            for count in [0, 1, 2, 7, 100] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
                hits.initialize(repeating: 0, count: max(count, 1))
                let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(workers, 1))
                seen.initialize(repeating: 0, count: max(workers, 1))
                Parallel.forEach(count: count, workers: workers) { w, i in
                    hits[i] += 1
                    seen[w] += 1
                }
                XCTAssertEqual(Array(UnsafeBufferPointer(start: hits, count: count)), [Int](repeating: 1, count: count))
                XCTAssertEqual((0..<workers).reduce(0) { $0 + seen[$1] }, count)
                hits.deallocate()
                seen.deallocate()
            }
        }
        for (rows, perRow, workers) in [(0, 64, 2), (1, 64, 2), (5000, 64, 2), (5000, 64, 1), (777, 40_000, 3), (3, 1, 4)] {
            let covered = UnsafeMutablePointer<Int>.allocate(capacity: max(rows, 1))
            covered.initialize(repeating: 0, count: max(rows, 1))
            Parallel.forRows(rows, valuesPerRow: perRow, workers: workers) { r in
                for i in r { covered[i] += 1 }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: covered, count: rows)), [Int](repeating: 1, count: rows))
            covered.deallocate()
        }
    }

    func testCausalRowKernelMatchesReference() {
        var rng = SeededGenerator(seed: 11)
        func random(_ n: Int, _ scale: Float) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            for i in 0..<n { p[i] = Float(rng.nextUnit() * 2 - 1) * scale }
            return p
        }
        let levels = KernelLevel.allCases.filter { $0.rawValue <= Kernels.supportedLevel.rawValue }
        for level in levels {
            for headDim in [16, 64] {
                let ld = 3 * headDim + 5, ctx = 83
                let keys = random(ctx * ld, 1), values = random(ctx * ld, 1), q = random(ctx * ld, 2)
                let ldk = Kernels.packedKeyStride(ctx)
                let packed = UnsafeMutablePointer<Float>.allocate(capacity: headDim * ldk)
                packed.initialize(repeating: .nan, count: headDim * ldk)
                Kernels.packKeysTransposed(keys, ld: ld, count: ctx, headDim: headDim, into: packed, stride: ldk)
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: Kernels.causalRowBlock * ldk)
                let got = UnsafeMutablePointer<Float>.allocate(capacity: Kernels.causalRowBlock * headDim)
                let want = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
                let single = UnsafeMutablePointer<Float>.allocate(capacity: headDim)
                let scale = 1 / Float(headDim).squareRoot()
                var worst: Float = 0
                // Row blocks of every size, at the start, in the middle and at the end of the context.
                for (first, rows) in [(0, 1), (0, 6), (3, 4), (40, 5), (77, 6), (80, 3), (82, 1), (10, 2)] {
                    Kernels.attendCausalRows(q: q + first * ld, ldq: ld, rows: rows, visible: first + 1,
                                             keysT: packed, ldk: ldk, values: values, ldv: ld, headDim: headDim,
                                             scale: scale, scores: scores, out: got, ldo: headDim, level: level)
                    for r in 0..<rows {
                        let row = Array(UnsafeBufferPointer(start: got + r * headDim, count: headDim))
                        Kernels.attendReference(q: q + (first + r) * ld, keys: keys, values: values, ld: ld,
                                                count: first + r + 1, headDim: headDim, scale: scale, out: want)
                        worst = max(worst, maxRelDiff(row, Array(UnsafeBufferPointer(start: want, count: headDim))))
                        // The same row alone gives bit-identical values.
                        Kernels.attendCausalRows(q: q + (first + r) * ld, ldq: ld, rows: 1, visible: first + r + 1,
                                                 keysT: packed, ldk: ldk, values: values, ldv: ld, headDim: headDim,
                                                 scale: scale, scores: scores, out: single, ldo: headDim, level: level)
                        XCTAssertEqual(Array(UnsafeBufferPointer(start: single, count: headDim)), row,
                                       "\(level): row \(first + r) alone vs in a block of \(rows)")
                    }
                }
                print("tiled causal kernel (\(level), headDim \(headDim)) vs scalar reference: max relative error \(worst)")
                XCTAssertLessThan(worst, kernelTolerance)
                for p in [keys, values, q, packed, scores, got, want, single] { p.deallocate() }
            }
        }
        // The vectorized softmax against the scalar one at lengths around the vector width.
        for (n, valid) in [(1, 1), (15, 15), (16, 16), (17, 17), (40, 33), (64, 64), (100, 1)] {
            var a = (0..<n).map { _ in Float(rng.nextUnit() * 40 - 20) }, b = a
            Kernels.softmax(&a, n: n, valid: valid)
            Kernels.softmaxReference(&b, n: n, valid: valid)
            XCTAssertLessThan(maxRelDiff(a, b), 1e-6)
        }
    }

    /// Long sequences through the tiled kernel, the BLAS path and the scalar reference.
    func testTiledAttentionMatchesBLASAndReference() throws {
        for (bias, interleaved) in [(false, true), (true, false)] {
            let tiny = try TinyModel(bias: bias, interleaved: interleaved)
            var rng = SeededGenerator(seed: 5)
            let tokens = (0..<150).map { _ in Int32(rng.nextUnit() * 49) }
            let L = tiny.config.blockCount
            let opts = ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .all)
            let tiled = ForwardWorkspace(), blas = ForwardWorkspace()
            tiled.smallAttentionLimit = 16
            blas.smallAttentionLimit = 16
            blas.tiledAttention = false
            let a = try tiny.model.forward([SequenceInput(tokens: tokens)], options: opts, workspace: tiled)[0]
            let b = try tiny.model.forward([SequenceInput(tokens: tokens)], options: opts, workspace: blas)[0]
            let ref = tiny.reference(tokens)
            var vsBLAS: Float = 0, vsRef: Float = 0
            for i in 0...L {
                vsBLAS = max(vsBLAS, maxRelDiff(a.hidden[i]!, b.hidden[i]!))
                vsRef = max(vsRef, maxRelDiff(a.hidden[i]!, ref.hidden[i].flatMap { $0 }))
            }
            vsBLAS = max(vsBLAS, maxRelDiff(a.logits, b.logits))
            vsRef = max(vsRef, maxRelDiff(a.logits, ref.logits.flatMap { $0 }))
            print("tiled attention (150 tokens, bias \(bias)): vs BLAS path \(vsBLAS), vs scalar reference \(vsRef)")
            XCTAssertLessThan(vsBLAS, kernelTolerance)
            XCTAssertLessThan(vsRef, kernelTolerance)
        }
    }

    /// A packed batch large enough that every stage splits across threads gives bit-identical
    /// results for 1, 2, 3 and 5 threads.
    func testResultsDoNotDependOnThreadCount() throws {
        let tiny = try TinyModel()
        var rng = SeededGenerator(seed: 9)
        let lengths = [300, 200, 7, 1, 260, 40, 130, 500, 150]
        let seqs = lengths.map { n in (0..<n).map { _ in Int32(rng.nextUnit() * 49) } }
        let L = tiny.config.blockCount
        let opts = ForwardOptions(hiddenStates: Array(0...L), hiddenPositions: .all, logits: .last)
        var baseline: [SequenceOutput] = []
        for threads in [1, 2, 3, 5] {
            let ws = ForwardWorkspace()
            ws.threadLimit = threads
            let out = try tiny.model.forward(seqs.map { SequenceInput(tokens: $0) }, options: opts, workspace: ws)
            if baseline.isEmpty { baseline = out; continue }
            var worst: Float = 0
            for (x, y) in zip(out, baseline) {
                for i in 0...L { worst = max(worst, maxRelDiff(x.hidden[i]!, y.hidden[i]!)) }
                worst = max(worst, maxRelDiff(x.logits, y.logits))
            }
            print("\(threads) threads vs 1 thread: max relative difference \(worst)")
            XCTAssertEqual(worst, 0, "results changed with \(threads) threads")
        }
    }

    /// A sequence's results are the same alone and packed with others, with or without
    /// parallel attention, for prefill (tiled kernel) and batched decode steps.
    func testSequenceIndependentOfBatch() throws {
        let tiny = try TinyModel()
        var rng = SeededGenerator(seed: 21)
        let long = (0..<260).map { _ in Int32(rng.nextUnit() * 49) }
        let others: [[Int32]] = [Array(long[0..<90]), [3, 1, 4, 1, 5], (0..<300).map { _ in Int32(rng.nextUnit() * 49) }]
        let opts = ForwardOptions(hiddenStates: [2], hiddenPositions: .all, logits: .last)
        let ws = ForwardWorkspace()
        ws.threadLimit = 2
        ws.parallelAttentionWork = 0
        let alone = try tiny.model.forward([SequenceInput(tokens: long)], options: opts, workspace: ws)[0]
        let packed = try tiny.model.forward(([long] + others).map { SequenceInput(tokens: $0) }, options: opts, workspace: ws)[0]
        let prefillDiff = max(maxRelDiff(packed.hidden[2]!, alone.hidden[2]!), maxRelDiff(packed.logits, alone.logits))
        print("prefill alone vs packed with others: max relative difference \(prefillDiff)")
        XCTAssertLessThan(prefillDiff, kernelTolerance)

        // Decode steps: contexts on both sides of the short-context limit, one at a time and
        // together (with no work threshold, a batch's short-context attention runs on two threads).
        let V = tiny.config.vocabSize
        let prompts: [[Int32]] = (0..<12).map { i in (0..<(40 + 30 * i)).map { _ in Int32(rng.nextUnit() * 49) } }
        func decode(_ group: [Int]) throws -> [Int: [Float]] {
            let caches = group.map { _ in tiny.model.makeCache() }
            for (c, i) in zip(caches, group) {
                _ = try tiny.model.forward([SequenceInput(tokens: prompts[i], cache: c)], options: ForwardOptions(logits: .none), workspace: ws)
            }
            let logits = FloatBuffer(count: group.count * V)
            try tiny.model.decodeStep(zip(group, caches).map { SequenceInput(tokens: [Int32($0.0 + 7)], cache: $0.1) },
                                      workspace: ws, logits: logits.pointer)
            var out: [Int: [Float]] = [:]
            for (k, i) in group.enumerated() { out[i] = Array(UnsafeBufferPointer(start: logits.pointer + k * V, count: V)) }
            return out
        }
        let together = try decode(Array(prompts.indices))
        let pairs = try decode([0, 11])
        var worst: Float = 0
        for i in prompts.indices {
            let single = try decode([i])[i]!
            worst = max(worst, maxRelDiff(together[i]!, single))
        }
        worst = max(worst, maxRelDiff(pairs[0]!, together[0]!), maxRelDiff(pairs[11]!, together[11]!))
        // Every weight product of a decode step, one row or many, runs the streaming kernel,
        // whose per-row arithmetic does not depend on the batch: exactly equal.
        print("decode step alone vs in a batch of 2 or 12: max relative difference \(worst)")
        XCTAssertEqual(worst, 0)
    }

    /// Prefill continued from a cache (query rows start after cached positions) through the
    /// tiled kernel matches one prefill of the whole text.
    func testTiledAttentionContinuesFromCache() throws {
        let tiny = try TinyModel()
        var rng = SeededGenerator(seed: 33)
        let tokens = (0..<310).map { _ in Int32(rng.nextUnit() * 49) }
        let ws = ForwardWorkspace()
        ws.threadLimit = 2
        let full = try tiny.model.forward([SequenceInput(tokens: tokens)], options: ForwardOptions(logits: .all), workspace: ws)[0]
        let cache = tiny.model.makeCache(capacity: 16)
        var rows: [Float] = []
        for (a, b) in [(0, 140), (140, 141), (141, 310)] {
            rows += try tiny.model.forward([SequenceInput(tokens: Array(tokens[a..<b]), cache: cache)],
                                           options: ForwardOptions(logits: .all), workspace: ws)[0].logits
        }
        let d = maxRelDiff(rows, full.logits)
        print("tiled prefill in chunks over a KV cache vs one prefill: max relative difference \(d)")
        XCTAssertLessThan(d, kernelTolerance)
    }
}
