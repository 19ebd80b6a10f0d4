// Sampling: transformers' processor semantics on hand-made logits, and seeded reproducibility.
import Foundation
import XCTest
@testable import RepengEngine

final class SamplerTests: XCTestCase {
    func sample(_ logits: [Float], _ p: SamplingParameters, seen: [Int32] = []) -> Int32 {
        var s = Sampler(parameters: p, vocabSize: logits.count)
        s.observe(seen)
        var l = logits
        return l.withUnsafeMutableBufferPointer { s.sample($0.baseAddress!) }
    }

    func testGreedyTakesFirstMaximum() {
        XCTAssertEqual(sample([1, 3, 3, 2], .greedy), 1)
    }

    func testRepetitionPenaltyDividesPositiveAndMultipliesNegative() {
        var s = Sampler(parameters: SamplingParameters(repetitionPenalty: 2), vocabSize: 4)
        s.observe([0, 1, 1])
        var l: [Float] = [4, -1, 3, -5]
        _ = l.withUnsafeMutableBufferPointer { s.sample($0.baseAddress!) }
        XCTAssertEqual(l, [2, -2, 3, -5])
        // The penalty moves greedy choice off a seen token.
        XCTAssertEqual(sample([4, -1, 3, -5], SamplingParameters(repetitionPenalty: 2), seen: [0]), 2)
    }

    /// Temperatures too small to divide by (1e-45 overflows every logit to ±inf) are greedy.
    func testTinyTemperaturesAreGreedy() {
        let logits: [Float] = [0.5, 30, 29.9, -4, 12]
        for t: Float in [1e-45, Float.leastNormalMagnitude, 1e-20, 1e-6] {
            for seed in 0..<10 {
                XCTAssertEqual(sample(logits, SamplingParameters(temperature: t, seed: UInt64(seed))), 1, "temperature \(t)")
                XCTAssertEqual(sample(logits, SamplingParameters(temperature: t, topK: 1, seed: UInt64(seed))), 1)
                XCTAssertEqual(sample(logits, SamplingParameters(temperature: t, topP: 0.5, seed: UInt64(seed))), 1)
            }
        }
        // Just above the cut-off, scaled logits stay finite and the top token still wins.
        XCTAssertEqual(sample(logits, SamplingParameters(temperature: SamplingParameters.greedyBelow * 2, seed: 3)), 1)
    }

    func testTopKOneIsGreedy() {
        for seed in 0..<20 {
            XCTAssertEqual(sample([0.1, 2, 1.9, -3], SamplingParameters(temperature: 1, topK: 1, seed: UInt64(seed))), 1)
        }
    }

    func testTopPKeepsSmallestNucleus() {
        // probabilities ≈ [0.6439, 0.2369, 0.0871, 0.0321]; top_p 0.8 keeps the first two.
        let logits: [Float] = [3, 2, 1, 0]
        var counts = [0, 0, 0, 0]
        for seed in 0..<2000 {
            counts[Int(sample(logits, SamplingParameters(temperature: 1, topP: 0.8, seed: UInt64(seed))))] += 1
        }
        XCTAssertEqual(counts[2] + counts[3], 0)
        XCTAssertGreaterThan(counts[1], 300)
    }

    func testMinPDropsUnlikelyTokens() {
        let logits: [Float] = [3, 2, 1, 0]  // p1/p0 = e^-1 ≈ 0.37, p2/p0 ≈ 0.135
        var seenTokens = Set<Int32>()
        for seed in 0..<500 { seenTokens.insert(sample(logits, SamplingParameters(temperature: 1, minP: 0.2, seed: UInt64(seed)))) }
        XCTAssertEqual(seenTokens, [0, 1])
    }

    func testSeedReproducibleAndTemperatureSpreads() {
        let logits: [Float] = (0..<100).map { Float($0 % 7) * 0.5 }
        let p = SamplingParameters(temperature: 1.5, seed: 42)
        let a = (0..<50).map { _ in sample(logits, p) }
        let b = (0..<50).map { _ in sample(logits, p) }
        XCTAssertEqual(a, b)
        var s1 = Sampler(parameters: p, vocabSize: 100), s2 = Sampler(parameters: p, vocabSize: 100)
        var seq1: [Int32] = [], seq2: [Int32] = []
        for _ in 0..<50 {
            var l1 = logits, l2 = logits
            seq1.append(l1.withUnsafeMutableBufferPointer { s1.sample($0.baseAddress!) })
            seq2.append(l2.withUnsafeMutableBufferPointer { s2.sample($0.baseAddress!) })
        }
        XCTAssertEqual(seq1, seq2)
        XCTAssertGreaterThan(Set(seq1).count, 5)
    }

    /// The kept tokens and probabilities by the processors' definitions, on a full sort of
    /// the candidates (the plain reference of `Sampler.keptDistribution`), in double precision.
    func referenceDistribution(_ logits: [Float], _ p: SamplingParameters) -> [Int32: Double] {
        let top = logits.max()!
        let order = logits.indices.filter { logits[$0] >= top - Sampler.candidateGap }
            .sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        var keep = order.count
        if p.topK > 0, p.topK < keep {
            let threshold = logits[order[p.topK - 1]]
            keep = p.topK
            while keep < order.count, logits[order[keep]] >= threshold { keep += 1 }
        }
        let m = logits[order[0]]
        var probs = order.prefix(keep).map { exp(Double(logits[$0] - m)) }
        var total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if p.topP < 1 {
            var cum = 0.0
            while keep > 1, cum + probs[keep - 1] <= 1 - Double(p.topP) {
                cum += probs[keep - 1]
                keep -= 1
            }
            total = probs.prefix(keep).reduce(0, +)
            probs = probs.prefix(keep).map { $0 / total }
        }
        var out: [Int32: Double] = [:]
        for i in 0..<keep where probs[i] >= Double(p.minP) * probs[0] { out[Int32(order[i])] = probs[i] }
        let sum = out.values.reduce(0, +)
        return out.mapValues { $0 / sum }
    }

    /// Selection instead of a full sort keeps the same tokens with the same probabilities, for
    /// every processor combination, on a vocabulary the size of SmolLM2's.
    func testKeptDistributionMatchesFullSortReference() {
        var rng = SeededGenerator(seed: 5)
        let vocab = 49152
        let settings = [SamplingParameters(temperature: 1), SamplingParameters(temperature: 1, topK: 40),
                        SamplingParameters(temperature: 1, topP: 0.9), SamplingParameters(temperature: 1, topP: 0.999),
                        SamplingParameters(temperature: 1, minP: 0.05), SamplingParameters(temperature: 1, topK: 1),
                        SamplingParameters(temperature: 1, topK: 50, topP: 0.95, minP: 0.02)]
        var worst = 0.0, compared = 0
        for round in 0..<12 {
            // Spread like a model's logits: most far below the top, a few close to it; some ties.
            let spread = Float(1 + round % 4 * 4)
            let logits = (0..<vocab).map { i in (i % 97 == 0) ? Float(spread) : Float(rng.nextUnit() * rng.nextUnit() * rng.nextUnit()) * spread * 4 - spread * 2 }
            for p in settings {
                var s = Sampler(parameters: p, vocabSize: vocab)
                let n = logits.withUnsafeBufferPointer { s.keptDistribution($0.baseAddress!) }
                let ref = referenceDistribution(logits, p)
                XCTAssertEqual(n, ref.count, "spread \(spread), \(p)")
                for i in 0..<n {
                    guard let r = ref[s.keptToken(i)] else { XCTFail("token \(s.keptToken(i)) not in the reference"); break }
                    worst = max(worst, abs(Double(s.keptProbability(i)) - r))
                }
                compared += 1
            }
        }
        print("sampler kept distribution vs full-sort reference: \(compared) cases, max probability difference \(worst) (tolerance 1e-6)")
        XCTAssertLessThan(worst, 1e-6)
    }

    func testValidation() {
        XCTAssertThrowsError(try SamplingParameters(temperature: -1).validate())
        XCTAssertThrowsError(try SamplingParameters(temperature: .nan).validate())
        XCTAssertThrowsError(try SamplingParameters(topP: 0).validate())
        XCTAssertThrowsError(try SamplingParameters(minP: 2).validate())
        XCTAssertThrowsError(try SamplingParameters(repetitionPenalty: 0).validate())
        XCTAssertNoThrow(try SamplingParameters(temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1).validate())
    }
}
