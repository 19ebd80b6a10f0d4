// Token sampling with transformers' logits-processor semantics (generation/logits_process.py,
// v4.5x): repetition penalty, then temperature, top-k, top-p, min-p; greedy when not sampling.

/// How the next token is chosen.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    /// Temperatures below `greedyBelow` are greedy too (dividing by them overflows).
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

    /// Temperatures below this choose the most likely token, as 0 does: the scaled logits
    /// would overflow f32 (vLLM uses the same cut-off, 1e-5).
    public static let greedyBelow: Float = 1e-5

    /// Whether these parameters pick the argmax.
    public var isGreedy: Bool { temperature < Self.greedyBelow }

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
    private var keys: [UInt64] = []

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
        if p.isGreedy { return Int32(Kernels.argmax(logits, vocabSize)) }
        if p.temperature != 1 {
            for i in 0..<vocabSize { logits[i] = logits[i] / p.temperature }
        }
        return sampleWarped(logits)
    }

    /// Tokens whose (temperature-scaled) logit is more than this below the maximum are left
    /// out: each has under e^-30 ≈ 1e-13 of the top token's probability, together (≤ 5e-9 for
    /// 49k tokens) below the resolution of the f32 cumulative sum the draw walks.
    static let candidateGap: Float = 30

    /// Most likely candidates sorted first when top-p needs descending order; the rest are
    /// sorted only if these do not reach p.
    static let sortedPrefix = 256

    /// The tokens that may be drawn and their probabilities, after top-k, top-p and min-p on
    /// `logits` (already penalized and divided by the temperature). Fills `order[0..<n]` and
    /// `probs[0..<n]` and returns n (at least 1). Candidates are found by selection, not a
    /// sort of the whole vocabulary: only top-p needs them in order, and then usually only the
    /// first few hundred.
    mutating func keptDistribution(_ logits: UnsafePointer<Float>) -> Int {
        let p = parameters
        if order.count != vocabSize {
            order = [Int32](repeating: 0, count: vocabSize)
            probs = [Float](repeating: 0, count: vocabSize)
            keys = [UInt64](repeating: 0, count: vocabSize)
        }
        let best = Kernels.argmax(logits, vocabSize)
        let top = logits[best]
        return keys.withUnsafeMutableBufferPointer { kb in
            order.withUnsafeMutableBufferPointer { ob in
                probs.withUnsafeMutableBufferPointer { pb in
                    let key = kb.baseAddress!, ord = ob.baseAddress!, prob = pb.baseAddress!
                    // Sort keys: the logit's bits made order-preserving and inverted, then the
                    // id, so ascending keys are descending logits with ties by id.
                    guard top.isFinite else {  // overflowed or all -inf: the argmax
                        ord[0] = Int32(best)
                        prob[0] = 1
                        return 1
                    }
                    let floor = top - Self.candidateGap
                    var n = 0
                    for i in 0..<vocabSize where logits[i] >= floor {
                        let bits = logits[i].bitPattern
                        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
                        key[n] = UInt64(~ordered) << 32 | UInt64(i)
                        n += 1
                    }
                    if n == 0 {  // no finite logit
                        ord[0] = Int32(best)
                        prob[0] = 1
                        return 1
                    }
                    // top-k: the k largest logits, plus ties with the k-th.
                    if p.topK > 0, p.topK < n {
                        Self.select(key, count: n, first: p.topK)
                        let kth = key[p.topK - 1] >> 32
                        var k = p.topK
                        for i in p.topK..<n where key[i] >> 32 == kth {
                            (key[i], key[k]) = (key[k], key[i])
                            k += 1
                        }
                        n = k
                    }
                    // top-p: the shortest run of most likely tokens whose probability reaches p
                    // (the most likely token always stays).
                    if p.topP < 1 {
                        var total = 0.0
                        for i in 0..<n { total += Double(Foundation.exp(Self.logit(key[i]) - top)) }
                        // Sort a growing run of the most likely tokens until it reaches p: each
                        // round selects the next run from the rest (all less likely) and sorts it.
                        let target = Double(p.topP) * total
                        var sorted = 0, cum = 0.0, cut = 0, run = Self.sortedPrefix
                        while true {
                            let end = min(n, sorted + run)
                            Self.select(key + sorted, count: n - sorted, first: end - sorted)
                            var piece = UnsafeMutableBufferPointer(start: key + sorted, count: end - sorted)
                            piece.sort()
                            sorted = end
                            while cut < sorted, cum < target {
                                cum += Double(Foundation.exp(Self.logit(key[cut]) - top))
                                cut += 1
                            }
                            if cum >= target || sorted == n { break }
                            run *= 8
                        }
                        n = max(1, cut)
                    }
                    // Softmax over the kept tokens.
                    var total = 0.0, most: Float = 0
                    for i in 0..<n {
                        let e = Foundation.exp(Self.logit(key[i]) - top)
                        prob[i] = e
                        total += Double(e)
                    }
                    for i in 0..<n {
                        prob[i] = Float(Double(prob[i]) / total)
                        most = max(most, prob[i])
                    }
                    // min-p: drop tokens with probability below minP × the top probability.
                    var kept = n
                    if p.minP > 0 {
                        let threshold = p.minP * most
                        kept = 0
                        var sum = 0.0
                        for i in 0..<n where prob[i] >= threshold {
                            key[kept] = key[i]
                            prob[kept] = prob[i]
                            sum += Double(prob[i])
                            kept += 1
                        }
                        if kept < n { for i in 0..<kept { prob[i] = Float(Double(prob[i]) / sum) } }
                    }
                    for i in 0..<kept { ord[i] = Int32(truncatingIfNeeded: key[i]) }
                    return kept
                }
            }
        }
    }

    /// Token `i` of the last `keptDistribution` and its probability (for tests).
    func keptToken(_ i: Int) -> Int32 { order[i] }
    func keptProbability(_ i: Int) -> Float { probs[i] }

    private mutating func sampleWarped(_ logits: UnsafeMutablePointer<Float>) -> Int32 {
        let n = keptDistribution(logits)
        let u = Float(rng.nextUnit())
        var cum: Float = 0
        for i in 0..<n {
            cum += probs[i]
            if u < cum { return order[i] }
        }
        return order[n - 1]
    }

    /// The logit stored in a sort key.
    @inline(__always) private static func logit(_ key: UInt64) -> Float {
        let ordered = ~UInt32(truncatingIfNeeded: key >> 32)
        return Float(bitPattern: ordered & 0x8000_0000 != 0 ? ordered & 0x7FFF_FFFF : ~ordered)
    }

    /// Moves the `first` smallest of `key[0..<count]` to the front (in no particular order):
    /// quickselect with middle-of-three pivots, O(count) expected.
    private static func select(_ key: UnsafeMutablePointer<UInt64>, count: Int, first: Int) {
        guard first > 0, first < count else { return }
        var lo = 0, hi = count - 1
        let target = first - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let a = key[lo], b = key[mid], c = key[hi]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = lo, j = hi
            while i <= j {
                while key[i] < pivot { i += 1 }
                while key[j] > pivot { j -= 1 }
                if i <= j {
                    (key[i], key[j]) = (key[j], key[i])
                    i += 1
                    j -= 1
                }
            }
            if target <= j { hi = j } else if target >= i { lo = i } else { return }
        }
    }
}

import Foundation
import RepengKernels
