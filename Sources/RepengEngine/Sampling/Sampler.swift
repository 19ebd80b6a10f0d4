// Token sampling with transformers' logits-processor semantics (generation/logits_process.py,
// v4.5x): repetition penalty, then temperature, top-k, top-p, min-p; greedy when not sampling.

/// How the next token is chosen.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Keep the k most likely tokens (0 = off).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = off).
    public var topP: Float
    /// Drop tokens less likely than minP × the most likely one (0 = off).
    public var minP: Float
    /// transformers' repetition penalty: logits of tokens already seen (prompt included) are
    /// divided by it when positive and multiplied by it when negative (1 = off).
    public var repetitionPenalty: Float
    /// Seed of the random generator (sampling is reproducible for a given seed).
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingParameters()

    /// Whether the values are usable; throws `EngineError.invalidArgument` naming the field.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0, temperature <= 100 else {
            throw EngineError.invalidArgument("temperature must be between 0 and 100 (0 = greedy), got \(temperature)")
        }
        guard topK >= 0 else { throw EngineError.invalidArgument("top_k must be 0 (off) or positive, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else {
            throw EngineError.invalidArgument("top_p must be in (0, 1], got \(topP)")
        }
        guard minP.isFinite, minP >= 0, minP <= 1 else {
            throw EngineError.invalidArgument("min_p must be in [0, 1], got \(minP)")
        }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0, repetitionPenalty <= 100 else {
            throw EngineError.invalidArgument("repetition_penalty must be in (0, 100], got \(repetitionPenalty)")
        }
    }
}

/// A small, fast, seedable generator (xoshiro256** seeded through SplitMix64).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// Chooses tokens from logits. Keeps the set of seen tokens for the repetition penalty and
/// preallocated scratch space, so a step allocates nothing.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    public let vocabSize: Int
    private var rng: SeededGenerator
    private var seen: [Bool]
    private var seenList: [Int32]
    private var order: [Int32]
    private var probs: [Float]

    public init(parameters: SamplingParameters, vocabSize: Int) {
        self.parameters = parameters
        self.vocabSize = vocabSize
        rng = SeededGenerator(seed: parameters.seed)
        seen = [Bool](repeating: false, count: parameters.repetitionPenalty == 1 ? 0 : vocabSize)
        seenList = []
        order = []
        probs = []
    }

    /// Records tokens (the prompt, then each chosen token) for the repetition penalty.
    public mutating func observe<S: Sequence>(_ tokens: S) where S.Element == Int32 {
        guard parameters.repetitionPenalty != 1 else { return }
        for t in tokens where t >= 0 && Int(t) < vocabSize && !seen[Int(t)] {
            seen[Int(t)] = true
            seenList.append(t)
        }
    }

    /// Picks the next token from `logits` (modified in place by the processors).
    public mutating func sample(_ logits: UnsafeMutablePointer<Float>) -> Int32 {
        let p = parameters
        if p.repetitionPenalty != 1 {
            for t in seenList {
                let v = logits[Int(t)]
                logits[Int(t)] = v < 0 ? v * p.repetitionPenalty : v / p.repetitionPenalty
            }
        }
        if p.temperature == 0 { return Int32(Kernels.argmax(logits, vocabSize)) }
        if p.temperature != 1 {
            for i in 0..<vocabSize { logits[i] = logits[i] / p.temperature }
        }
        return sampleWarped(logits)
    }

    private mutating func sampleWarped(_ logits: UnsafeMutablePointer<Float>) -> Int32 {
        let p = parameters, n = vocabSize
        // Candidates sorted by logit, descending (ties by id for determinism).
        if order.count != n { order = (0..<Int32(n)).map { $0 } ; probs = [Float](repeating: 0, count: n) }
        for i in 0..<n { order[i] = Int32(i) }
        order.sort { a, b in
            let x = logits[Int(a)], y = logits[Int(b)]
            return x > y || (x == y && a < b)
        }
        var keep = n
        // top-k: drop tokens whose logit is below the k-th largest (ties with it are kept).
        if p.topK > 0, p.topK < n {
            let threshold = logits[Int(order[p.topK - 1])]
            var k = p.topK
            while k < n, logits[Int(order[k])] >= threshold { k += 1 }
            keep = k
        }
        // Softmax over the kept candidates.
        let m = logits[Int(order[0])]
        var total: Double = 0
        for i in 0..<keep {
            let e = Float(Foundation.exp(Double(logits[Int(order[i])] - m)))
            probs[i] = e
            total += Double(e)
        }
        for i in 0..<keep { probs[i] = Float(Double(probs[i]) / total) }
        // top-p: in ascending order, drop tokens while the cumulative probability ≤ 1 − p;
        // the most likely token always stays.
        if p.topP < 1 {
            var cum: Float = 0
            var drop = 0
            for i in stride(from: keep - 1, to: 0, by: -1) {
                cum += probs[i]
                if cum <= 1 - p.topP { drop += 1 } else { break }
            }
            if drop > 0 {
                keep -= drop
                renormalize(keep)
            }
        }
        // min-p: drop tokens with probability below minP × the top probability.
        if p.minP > 0 {
            let threshold = p.minP * probs[0]
            var k = 1
            while k < keep, probs[k] >= threshold { k += 1 }
            if k < keep {
                keep = k
                renormalize(keep)
            }
        }
        // Draw.
        let u = Float(rng.nextUnit())
        var cum: Float = 0
        for i in 0..<keep {
            cum += probs[i]
            if u < cum { return order[i] }
        }
        return order[keep - 1]
    }

    private mutating func renormalize(_ keep: Int) {
        var s: Float = 0
        for i in 0..<keep { s += probs[i] }
        for i in 0..<keep { probs[i] /= s }
    }
}

import Foundation
