// Training on the real SmolLM2 model: determinism across batch sizes, unit norms and sign votes
// for every method, hooks, errors, and the time for 200 pairs × 29 layers (run with -c release).
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

/// One model load per test process.
final class SharedModel: @unchecked Sendable {
    static let shared = SharedModel()
    private let lock = NSLock()
    private var model: (any LanguageModel)?
    private var vector: ControlVector?

    func load() throws -> any LanguageModel {
        let path = try SteeringTestSupport.modelPath()
        return try lock.withLock {
            if let m = model { return m }
            let m = try loadModel(path: path)
            model = m
            return m
        }
    }

    /// A happy/sad vector (pca_center) trained once on a small chat dataset.
    func happyVector() throws -> ControlVector {
        let m = try load()
        return try lock.withLock {
            if let v = vector { return v }
            let v = try ControlVector.train(model: m, dataset: smallDataset(model: m, suffixCount: 12), method: .pcaCenter)
            vector = v
            return v
        }
    }
}

func smallDataset(model: any LanguageModel, suffixCount: Int, personas: Int = 2) throws -> [DatasetEntry] {
    let pos = ["happy", "joyful", "cheerful", "delighted"], neg = ["sad", "miserable", "gloomy", "depressed"]
    return try makeChatDataset(template: "Act as if you're extremely {persona}.",
                               positivePersonas: Array(pos.prefix(personas)), negativePersonas: Array(neg.prefix(personas)),
                               suffixes: Array(defaultSuffixes.prefix(suffixCount)), format: ChatFormat.detect(tokenizer: model.tokenizer))
}

func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) {
        dot += Double(x) * Double(y); na += Double(x) * Double(x); nb += Double(y) * Double(y)
    }
    return dot / (na * nb).squareRoot()
}

final class TrainingTests: XCTestCase {
    func testChatFormatDetectedForSmolLM2() throws {
        let model = try SharedModel.shared.load()
        XCTAssertEqual(ChatFormat.detect(tokenizer: model.tokenizer), .chatML)
        let ds = try smallDataset(model: model, suffixCount: 1, personas: 1)
        XCTAssertEqual(ds[0].positive, "<|im_start|>user\nAct as if you're extremely happy.<|im_end|>\n<|im_start|>assistant\nI think")
        // Special tokens in the text map to their single ids.
        let tok = try XCTUnwrap(model.tokenizer)
        let ids = tok.encode(ds[0].positive, addSpecial: true)
        XCTAssertEqual(ids.first, tok.tokenID("<|im_start|>"))
        // repeng's notebook suffixes: every proper token prefix of each text.
        let text = "The weather today is lovely"
        let n = tok.encode(text, addSpecial: false).count
        let truncated = truncatedSuffixes([text, "x"], tokenizer: tok)
        XCTAssertEqual(truncated.count, n - 1)
        XCTAssertEqual(truncated.first, "The")
        XCTAssertEqual(truncated.last, "The weather today is")
    }

    func testPrefixSharingMatchesWholeRuns() throws {
        let model = try SharedModel.shared.load()
        let tok = try XCTUnwrap(model.tokenizer)
        // Duplicates, texts that are token prefixes of others, shared prompts, branches, a 1-token text.
        let texts = ["<|im_start|>user\nHello", "<|im_start|>user\nHello there", "<|im_start|>user\nHello there friend",
                     "<|im_start|>user\nGoodbye", "<|im_start|>user\nHello", "Plain text without a prompt",
                     "<|im_start|>user\nHello there enemy", "x", "<|im_start|>user\nHello there friend, how are you?"]
        let sequences = texts.map { tok.encode($0, addSpecial: true) }
        let blocks = [0, 5, 17, 29]
        let whole = try lastTokenHiddenStates(model: model, sequences: sequences, layers: blocks, batchSize: 1, sharePrefixes: false)
        for bs in [1, 3, 64] {
            var done: [Int] = []
            let shared = try lastTokenHiddenStates(model: model, sequences: sequences, layers: blocks, batchSize: bs,
                                                   sharePrefixes: true, progress: { done.append($0) })
            XCTAssertEqual(done.last, Set(sequences).count)
            var worst = 0.0
            for b in blocks {
                let x = try XCTUnwrap(whole[b]), y = try XCTUnwrap(shared[b])
                XCTAssertEqual(x.rows, texts.count)
                XCTAssertEqual(y.rows, texts.count)
                for r in 0..<x.rows {
                    let scale = x.row(r).map { abs(Double($0)) }.max() ?? 1
                    let diff = zip(x.row(r), y.row(r)).map { abs(Double($0) - Double($1)) }.max() ?? 0
                    worst = max(worst, diff / scale)
                }
            }
            print("prefix sharing, batch \(bs): max |shared - whole| / max |whole| per row = \(worst)")
            XCTAssertLessThan(worst, 1e-4)
        }
        // Duplicates give identical rows.
        XCTAssertEqual(whole[17]?.row(0), whole[17]?.row(4))
    }

    func testDeterministicAcrossBatchSizes() throws {
        let model = try SharedModel.shared.load()
        let ds = try smallDataset(model: model, suffixCount: 6)  // 12 pairs
        let layers = [-1, -2, -8, -15, 3]
        var results: [Int: ControlVector] = [:]
        for bs in [1, 7, 64] {
            let t0 = Date()
            results[bs] = try ControlVector.train(model: model, dataset: ds, layers: layers, batchSize: bs)
            print("batch \(bs): \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        }
        let ref = try XCTUnwrap(results[64])
        XCTAssertEqual(ref.layers, [3, 15, 22, 28, 29])
        for bs in [1, 7] {
            let v = try XCTUnwrap(results[bs])
            XCTAssertEqual(v.layers, ref.layers)
            var worst = 1.0
            for l in ref.layers { worst = min(worst, cosine(v.directions[l]!, ref.directions[l]!)) }
            print("batch \(bs) vs 64: min cosine over layers = \(worst)")
            XCTAssertGreaterThanOrEqual(worst, 0.99999)
        }
        // Order of pairs does not matter either.
        let shuffled = try ControlVector.train(model: model, dataset: ds.reversed(), layers: layers, batchSize: 5)
        var worst = 1.0
        for l in ref.layers { worst = min(worst, cosine(shuffled.directions[l]!, ref.directions[l]!)) }
        print("reversed pairs vs original: min cosine = \(worst)")
        XCTAssertGreaterThanOrEqual(worst, 0.99999)
        // Whole runs (no prefix sharing) agree too.
        let plain = try ControlVector.train(model: model, dataset: ds, layers: layers, batchSize: 64, sharePrefixes: false)
        worst = 1.0
        for l in ref.layers { worst = min(worst, cosine(plain.directions[l]!, ref.directions[l]!)) }
        print("whole runs vs prefix sharing: min cosine = \(worst)")
        XCTAssertGreaterThanOrEqual(worst, 0.99999)
        // Same input, same batch size: bit-identical.
        XCTAssertEqual(try ControlVector.train(model: model, dataset: ds, layers: layers, batchSize: 7), results[7])
    }

    func testMethodsUnitNormAndSignVote() throws {
        let model = try SharedModel.shared.load()
        let ds = try smallDataset(model: model, suffixCount: 8)  // 16 pairs
        let layers = [-2, -6, -12, -20]
        // Hidden states once, through the hook, so the vote can be checked against them.
        let texts = ds.flatMap { [$0.positive, $0.negative] }
        let tok = try XCTUnwrap(model.tokenizer)
        let blocks = layers.map { model.config.blockCount + $0 }
        let hiddens = try lastTokenHiddenStates(model: model, sequences: texts.map { tok.encode($0, addSpecial: true) },
                                                layers: blocks)
        for method in TrainingMethod.allCases {
            var hookCalls = 0
            let v = try ControlVector.train(model: model, dataset: ds, layers: layers, method: method,
                                            computeHiddens: { t, l in
                                                hookCalls += 1
                                                XCTAssertEqual(t, texts)
                                                XCTAssertEqual(l, blocks)
                                                return hiddens
                                            })
            XCTAssertEqual(hookCalls, 1)
            XCTAssertEqual(v.metadata.method, method.rawValue)
            XCTAssertEqual(v.metadata.hiddenSize, model.config.hiddenSize)
            XCTAssertEqual(v.modelType, "llama")
            for b in blocks {
                let dir = try XCTUnwrap(v.directions[b])
                let norm = dir.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                XCTAssertEqual(norm, 1, accuracy: 1e-5)
                let h = try XCTUnwrap(hiddens[b])
                var higher = 0, lower = 0
                for p in 0..<ds.count {
                    let a = zip(h.row(2 * p), dir).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    let c = zip(h.row(2 * p + 1), dir).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    if a > c { higher += 1 } else if a < c { lower += 1 }
                }
                print("\(method.rawValue) block \(b): norm \(norm), positive higher in \(higher)/\(ds.count) pairs, lower in \(lower)")
                XCTAssertGreaterThanOrEqual(higher, lower)
            }
            print("\(method.rawValue): \(v.metadata.trainingSummary ?? "")")
        }
        // Without the hook the result is the same as with the engine's states passed in.
        let direct = try ControlVector.train(model: model, dataset: ds, layers: layers, method: .pcaCenter)
        let hooked = try ControlVector.train(model: model, dataset: ds, layers: layers, method: .pcaCenter,
                                             computeHiddens: { _, _ in hiddens })
        for b in blocks { XCTAssertGreaterThan(cosine(direct.directions[b]!, hooked.directions[b]!), 0.99999) }
        // An identity transform changes nothing; a transform may change the width.
        let transformed = try ControlVector.train(model: model, dataset: ds, layers: layers, method: .pcaCenter,
                                                  computeHiddens: { _, _ in hiddens }, transformHiddens: { $0 })
        XCTAssertEqual(transformed, hooked)
        let narrow = try ControlVector.train(model: model, dataset: ds, layers: [-2], computeHiddens: { _, _ in hiddens },
                                             transformHiddens: { hs in
                                                 try hs.mapValues { m in
                                                     try HiddenMatrix(rows: m.rows, columns: 8,
                                                                      values: (0..<m.rows).flatMap { Array(m.row($0).prefix(8)) })
                                                 }
                                             })
        XCTAssertEqual(narrow.directions[blocks[0]]?.count, 8)
    }

    func testTrainingErrors() throws {
        let model = try SharedModel.shared.load()
        let ds = try smallDataset(model: model, suffixCount: 2)
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: [])) {
            XCTAssertEqual($0 as? TrainingError, .emptyDataset)
        }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: Array(ds.prefix(1)), method: .pcaDiff)) {
            XCTAssertEqual($0 as? TrainingError, .tooFewPairs(method: .pcaDiff, pairs: 1, minimum: 2))
        }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, layers: [30])) {
            XCTAssertEqual($0 as? EngineError, .layerOutOfRange(layer: 30, blockCount: 30))
        }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, layers: [-31]))
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, layers: []))
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, batchSize: 0))
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds + [DatasetEntry(positive: "", negative: "x")], layers: [-1])) {
            XCTAssertEqual($0 as? TrainingError, .emptyText(index: ds.count, side: "positive"))
        }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, layers: [-1], computeHiddens: { _, _ in [:] })) {
            XCTAssertEqual($0 as? TrainingError, .hookMissingLayer(29))
        }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: ds, layers: [-1], computeHiddens: { _, _ in
            [29: try HiddenMatrix(rows: 2, columns: 4, values: [Float](repeating: 1, count: 8))]
        })) {
            XCTAssertEqual($0 as? TrainingError, .hookRowCount(layer: 29, expected: 2 * ds.count, found: 2))
        }
        // Identical positives and negatives define no direction.
        let same = ds.map { DatasetEntry(positive: $0.positive, negative: $0.positive) }
        XCTAssertThrowsError(try ControlVector.train(model: model, dataset: same, layers: [-1])) { error in
            guard case .degenerate? = error as? TrainingError else { return XCTFail("\(error)") }
        }
    }

    func testDefaultLayersAndProgress() throws {
        let model = try SharedModel.shared.load()
        let ds = try smallDataset(model: model, suffixCount: 2)
        var calls: [(Int, Int)] = []
        let v = try ControlVector.train(model: model, dataset: ds, batchSize: 3, progress: { calls.append(($0, $1)) })
        XCTAssertEqual(v.layers, Array(1..<model.config.blockCount))
        XCTAssertEqual(v.metadata.blockCount, model.config.blockCount)
        let total = try XCTUnwrap(calls.last?.1)
        XCTAssertEqual(calls.last?.0, total)
        XCTAssertEqual(total, 2 * ds.count + model.config.blockCount - 1)
        XCTAssertTrue(zip(calls, calls.dropFirst()).allSatisfy { $0.0 <= $1.0 }, "progress went backwards")
    }

    /// 200 pairs × 29 layers (every block but block 0), timed.
    func testTrainingSpeed200Pairs() throws {
        let model = try SharedModel.shared.load()
        let ds = try smallDataset(model: model, suffixCount: 50, personas: 4)
        XCTAssertEqual(ds.count, 200)
        let tok = try XCTUnwrap(model.tokenizer)
        let tokens = ds.reduce(0) { $0 + (tok.encode($1.positive, addSpecial: true).count) + (tok.encode($1.negative, addSpecial: true).count) }
        let t0 = Date()
        let v = try ControlVector.train(model: model, dataset: ds)
        let seconds = Date().timeIntervalSince(t0)
        XCTAssertEqual(v.layers.count, 29)
        print(String(format: "training 200 pairs x 29 layers (%d tokens): %.2f s (%.0f tokens/s)", tokens, seconds, Double(tokens) / seconds))
        print("summary: \(v.metadata.trainingSummary ?? "")")
    }
}
