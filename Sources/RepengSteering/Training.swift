// Control-vector training as repeng 0.4's `ControlVector.train` / `read_representations`:
// last-token hidden states of each positive and negative text, then per layer the first
// principal component of the pair differences (or of pair-centred states), sign-voted so
// positives project higher.
import Foundation
import RepengEngine

/// A row-major matrix of hidden states: one row per text, one column per hidden dimension.
public struct HiddenMatrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    /// `rows × columns` values, row-major.
    public let values: [Float]

    /// Throws `TrainingError.badMatrix` unless `values.count == rows × columns` with both positive.
    public init(rows: Int, columns: Int, values: [Float]) throws {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard rows > 0, columns > 0, !overflow, values.count == count else {
            throw TrainingError.badMatrix(rows: rows, columns: columns, values: values.count)
        }
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// Row `i` (0 ≤ i < rows).
    public func row(_ i: Int) -> ArraySlice<Float> { values[(i * columns)..<((i + 1) * columns)] }
}

/// Replaces hidden-state extraction (repeng's `compute_hiddens`): given the training texts in
/// order positive 0, negative 0, positive 1, negative 1, … and the block indices to read,
/// returns for each block a matrix with one row per text.
public typealias HiddenStateHook = (_ texts: [String], _ layers: [Int]) throws -> [Int: HiddenMatrix]

/// Maps the per-block hidden-state matrices before the directions are fitted (repeng's
/// `transform_hiddens`; e.g. encoding into a sparse autoencoder's feature space). Rows must
/// keep their count and order; columns may change, and the directions then have that length.
public typealias HiddenStateTransform = (_ hiddens: [Int: HiddenMatrix]) throws -> [Int: HiddenMatrix]

/// Why training failed.
public enum TrainingError: Error, CustomStringConvertible, Sendable, Equatable {
    case emptyDataset
    /// The method needs at least `minimum` pairs.
    case tooFewPairs(method: TrainingMethod, pairs: Int, minimum: Int)
    /// Entry `index`'s text (`side` "positive" or "negative") has no tokens.
    case emptyText(index: Int, side: String)
    /// The model has no tokenizer, so texts cannot be encoded (pass `computeHiddens`).
    case noTokenizer
    case noLayers
    case badBatchSize(Int)
    /// A matrix whose shape does not match its values.
    case badMatrix(rows: Int, columns: Int, values: Int)
    /// A hook returned no matrix for this block.
    case hookMissingLayer(Int)
    /// A hook returned a matrix with the wrong number of rows for this block.
    case hookRowCount(layer: Int, expected: Int, found: Int)
    /// A matrix for this block has an odd number of rows (rows come in positive/negative pairs).
    case unpairedRows(layer: Int, rows: Int)
    /// Hidden states of this block contain NaN or infinity.
    case nonFinite(layer: Int)
    /// Entry `index`'s text has more tokens than one text may have.
    case textTooLong(index: Int, side: String, tokens: Int, limit: Int)
    /// The dataset's texts have more tokens together than the limit.
    case datasetTooLong(tokens: Int, limit: Int)
    /// This block's data defines no direction (e.g. every positive equals its negative).
    case degenerate(layer: Int, reason: String)

    public var description: String {
        switch self {
        case .emptyDataset: return "the training dataset is empty"
        case let .tooFewPairs(m, p, min):
            return "method \(m.rawValue) needs at least \(min) pairs, the dataset has \(p)"
        case let .emptyText(i, side): return "dataset entry \(i): the \(side) text encodes to no tokens"
        case .noTokenizer: return "the model has no tokenizer; provide hidden states with computeHiddens"
        case .noLayers: return "no layers to train"
        case .badBatchSize(let b): return "batch size must be at least 1, got \(b)"
        case let .badMatrix(r, c, v): return "hidden-state matrix has \(v) values, not \(r) rows × \(c) columns"
        case .hookMissingLayer(let l): return "hidden-state hook returned nothing for layer \(l)"
        case let .hookRowCount(l, e, f): return "hidden-state hook returned \(f) rows for layer \(l), expected \(e) (one per text)"
        case let .unpairedRows(l, r): return "hidden states for layer \(l) have \(r) rows; rows must come in positive/negative pairs"
        case .nonFinite(let l): return "hidden states for layer \(l) contain NaN or infinity"
        case let .textTooLong(i, side, n, limit):
            return "dataset entry \(i): the \(side) text has \(n) tokens; the limit is \(limit)"
        case let .datasetTooLong(n, limit):
            return "the dataset's texts have more than \(limit) tokens together (\(n) counted so far); send fewer or shorter pairs"
        case let .degenerate(l, reason): return "layer \(l) has no direction: \(reason)"
        }
    }
}

/// The fitted direction of one layer and how well it separates the pairs.
public struct FittedDirection: Sendable, Equatable {
    /// Unit vector, sign-voted so positives tend to project higher than negatives.
    public var direction: [Float]
    /// Share of the variance of the fitted data along `direction` (PCA methods; nil for mean_diff).
    public var explainedRatio: Double?
    /// Pairs whose positive projects higher / lower than its negative (after the sign vote).
    public var pairsHigher: Int
    public var pairsLower: Int
    /// Whether the sign vote negated the component.
    public var flipped: Bool
}

extension ControlVector {
    /// Trains a control vector on `model` (repeng's `ControlVector.train`).
    ///
    /// - Each text is encoded as plain text with the tokenizer's default special tokens
    ///   (`encode(text, addSpecial: true)`, as a Hugging Face tokenizer call does), and the
    ///   hidden state of its last token is read at every training layer. Layer i (block
    ///   index) is transformers hidden state i + 1, so the last block is read after the final
    ///   norm, exactly as repeng does.
    /// - `layers`: block indices, negative ids counting from the end. Default: every block but
    ///   block 0 (-1 … -(L-1)), repeng's default.
    /// - `batchSize`: most texts (or shared token runs) per forward pass. Texts are packed
    ///   without padding, so the result does not depend on it (beyond float rounding).
    /// - `sharePrefixes`: identical texts run once, a text that is a token prefix of another is
    ///   read from the longer one's run, and common prefixes (the persona prompt) run once into a
    ///   KV cache (see `lastTokenHiddenStates(model:sequences:layers:batchSize:sharePrefixes:progress:)`).
    /// - `method`: see `fitDirections`.
    /// - `maxTextTokens`, `maxTotalTokens`: bounds checked as each text is encoded, before any
    ///   hidden-state memory is allocated (a text is further bounded by the context length).
    /// - `computeHiddens` replaces the extraction; `transformHiddens` maps the matrices first.
    /// - `progress(done, total)`: one unit per distinct text run, then one per layer fitted. An
    ///   error it throws (e.g. `CancellationError` when the caller went away) stops the training
    ///   and is rethrown.
    ///
    /// The result's directions are keyed by block index and have unit length.
    public static func train(
        model: any LanguageModel, dataset: [DatasetEntry], layers: [Int]? = nil, batchSize: Int = 32,
        method: TrainingMethod = .pcaDiff, sharePrefixes: Bool = true, maxTextTokens: Int? = nil,
        maxTotalTokens: Int? = nil, computeHiddens: HiddenStateHook? = nil,
        transformHiddens: HiddenStateTransform? = nil, progress: ((_ done: Int, _ total: Int) throws -> Void)? = nil
    ) throws -> ControlVector {
        let minimum = method == .pcaDiff ? 2 : 1
        let x = try extractHiddens(model: model, dataset: dataset, layers: layers, batchSize: batchSize, minimumPairs: minimum,
                                   method: method, sharePrefixes: sharePrefixes, maxTextTokens: maxTextTokens,
                                   maxTotalTokens: maxTotalTokens, computeHiddens: computeHiddens, progress: progress)
        var hiddens = x.hiddens
        let blocks = x.blocks, tokenCount = x.tokenCount, fitDone = x.done, fitTotal = x.total, L = model.config.blockCount
        if let transformHiddens {
            hiddens = try transformHiddens(hiddens)
            try checkHiddens(hiddens, blocks: blocks, rows: dataset.count * 2)
        }

        let fitted = try fitDirections(hiddens: hiddens.filter { blocks.contains($0.key) }, method: method) {
            try progress?(fitDone + $0, fitTotal)
        }
        let hidden = fitted.values.first?.direction.count ?? model.config.hiddenSize
        var summary = "\(method.rawValue), \(dataset.count) pairs, layers \(rangeText(blocks))"
        if tokenCount > 0 { summary += ", \(tokenCount) tokens" }
        let ratios = blocks.compactMap { fitted[$0]?.explainedRatio }
        if !ratios.isEmpty {
            summary += String(format: ", mean explained variance %.4f", ratios.reduce(0, +) / Double(ratios.count))
        }
        let agree = blocks.reduce(0) { $0 + (fitted[$1]?.pairsHigher ?? 0) }
        summary += String(format: ", pairs ordered %.4f", Double(agree) / Double(max(1, blocks.count * dataset.count)))
        return ControlVector(
            modelType: model.config.architecture,
            directions: fitted.mapValues(\.direction),
            metadata: ControlVectorMetadata(hiddenSize: hidden, blockCount: L, method: method.rawValue,
                                            modelName: model.config.name, trainingSummary: summary))
    }

    /// What `extractHiddens` read: per block one row per text, and the progress units used.
    struct Extracted {
        var hiddens: [Int: HiddenMatrix]
        var blocks: [Int]
        var tokenCount: Int
        /// Progress units done (distinct text runs) and the total including one per layer.
        var done: Int
        var total: Int
    }

    /// The dataset checks and last-token hidden-state extraction shared by `train` and
    /// `trainWithSAE`; `layers` nil means every block but block 0.
    static func extractHiddens(
        model: any LanguageModel, dataset: [DatasetEntry], layers: [Int]?, batchSize: Int, minimumPairs: Int,
        method: TrainingMethod, sharePrefixes: Bool, maxTextTokens: Int?, maxTotalTokens: Int?,
        computeHiddens: HiddenStateHook?, progress: ((_ done: Int, _ total: Int) throws -> Void)?
    ) throws -> Extracted {
        guard !dataset.isEmpty else { throw TrainingError.emptyDataset }
        guard batchSize >= 1 else { throw TrainingError.badBatchSize(batchSize) }
        guard dataset.count >= minimumPairs else {
            throw TrainingError.tooFewPairs(method: method, pairs: dataset.count, minimum: minimumPairs)
        }
        let L = model.config.blockCount
        let blocks = try normalizedLayers(layers ?? Array(stride(from: -1, to: -L, by: -1)), config: model.config)

        var texts: [String] = []
        texts.reserveCapacity(dataset.count * 2)
        for e in dataset { texts.append(e.positive); texts.append(e.negative) }

        var tokenCount = 0
        let hiddens: [Int: HiddenMatrix]
        var fitDone = 0, fitTotal = blocks.count
        if let computeHiddens {
            try progress?(0, fitTotal)
            hiddens = try computeHiddens(texts, blocks)
        } else {
            guard let tokenizer = model.tokenizer else { throw TrainingError.noTokenizer }
            var sequences: [[Int32]] = []
            sequences.reserveCapacity(texts.count)
            let textLimit = min(maxTextTokens ?? Int.max, model.config.contextLength)
            let totalLimit = maxTotalTokens ?? Int.max
            for (i, t) in texts.enumerated() {
                let side = i % 2 == 0 ? "positive" : "negative"
                let ids = tokenizer.encode(t, addSpecial: true)
                guard !ids.isEmpty else { throw TrainingError.emptyText(index: i / 2, side: side) }
                guard ids.count <= textLimit else {
                    throw TrainingError.textTooLong(index: i / 2, side: side, tokens: ids.count, limit: textLimit)
                }
                tokenCount += ids.count
                guard tokenCount <= totalLimit else { throw TrainingError.datasetTooLong(tokens: tokenCount, limit: totalLimit) }
                sequences.append(ids)
            }
            let unique = Set(sequences).count
            fitDone = unique
            fitTotal = unique + blocks.count
            let total = fitTotal
            hiddens = try lastTokenHiddenStates(model: model, sequences: sequences, layers: blocks, batchSize: batchSize,
                                                sharePrefixes: sharePrefixes) { try progress?($0, total) }
        }
        try checkHiddens(hiddens, blocks: blocks, rows: texts.count)
        return Extracted(hiddens: hiddens, blocks: blocks, tokenCount: tokenCount, done: fitDone, total: fitTotal)
    }

    static func checkHiddens(_ hiddens: [Int: HiddenMatrix], blocks: [Int], rows: Int) throws {
        for b in blocks {
            guard let m = hiddens[b] else { throw TrainingError.hookMissingLayer(b) }
            guard m.rows == rows else { throw TrainingError.hookRowCount(layer: b, expected: rows, found: m.rows) }
        }
    }

    /// Fits one direction per layer from hidden states whose rows are ordered positive 0,
    /// negative 0, positive 1, … (h, 2N × d), as repeng's `read_representations`:
    /// - `.pcaDiff`: X = h_pos − h_neg (N × d); `.pcaCenter`: X = h minus each pair's mean (2N × d);
    ///   direction = first principal component of X after centering X's columns, computed exactly
    ///   in double precision (deterministic, unlike repeng's randomized SVD for large inputs).
    /// - `.meanDiff`: direction = mean(h_pos − h_neg) scaled to unit length.
    /// - Sign vote (all methods): project h onto the direction; if more pairs have the positive
    ///   below its negative than above, negate. On a tie the PCA sign stays canonical (largest
    ///   entry positive) and the mean difference keeps its own sign.
    public static func fitDirections(
        hiddens: [Int: HiddenMatrix], method: TrainingMethod, progress: ((_ done: Int) throws -> Void)? = nil
    ) throws -> [Int: FittedDirection] {
        var out: [Int: FittedDirection] = [:]
        for (i, layer) in hiddens.keys.sorted().enumerated() {
            guard let h = hiddens[layer] else { continue }
            out[layer] = try fitLayer(h, layer: layer, method: method)
            try progress?(i + 1)
        }
        return out
    }

    static func fitLayer(_ h: HiddenMatrix, layer: Int, method: TrainingMethod) throws -> FittedDirection {
        guard h.rows >= 2, h.rows % 2 == 0 else { throw TrainingError.unpairedRows(layer: layer, rows: h.rows) }
        guard h.values.allSatisfy({ $0.isFinite }) else { throw TrainingError.nonFinite(layer: layer) }
        let pairs = h.rows / 2, d = h.columns
        var dir: [Double]
        var ratio: Double?
        switch method {
        case .pcaDiff, .pcaCenter:
            let rows = method == .pcaDiff ? pairs : h.rows
            var x = [Double](repeating: 0, count: rows * d)
            h.values.withUnsafeBufferPointer { hp in
                x.withUnsafeMutableBufferPointer { xp in
                    for p in 0..<pairs {
                        let pos = hp.baseAddress! + (2 * p) * d, neg = pos + d
                        if method == .pcaDiff {
                            let dst = xp.baseAddress! + p * d
                            for c in 0..<d { dst[c] = Double(pos[c]) - Double(neg[c]) }
                        } else {
                            let dp = xp.baseAddress! + (2 * p) * d, dn = dp + d
                            for c in 0..<d {
                                let mean = (Double(pos[c]) + Double(neg[c])) / 2
                                dp[c] = Double(pos[c]) - mean
                                dn[c] = Double(neg[c]) - mean
                            }
                        }
                    }
                }
            }
            do {
                let pc = try PCA.firstComponent(x, rows: rows, cols: d)
                dir = pc.direction
                ratio = pc.explainedRatio
            } catch PCAError.noVariance {
                throw TrainingError.degenerate(layer: layer, reason: "the pair differences have no variance (too few distinct pairs, or positives equal negatives)")
            }
        case .meanDiff:
            dir = [Double](repeating: 0, count: d)
            for p in 0..<pairs {
                let base = 2 * p * d
                for c in 0..<d { dir[c] += Double(h.values[base + c]) - Double(h.values[base + d + c]) }
            }
            guard PCA.normalize(&dir) > 0 else {
                throw TrainingError.degenerate(layer: layer, reason: "the mean difference between positives and negatives is zero")
            }
        }
        var direction = dir.map { Float($0) }
        // Sign vote on the raw hidden states, projected onto the stored (Float) direction.
        var higher = 0, lower = 0
        direction.withUnsafeBufferPointer { vp in
            h.values.withUnsafeBufferPointer { hp in
                for p in 0..<pairs {
                    let pos = hp.baseAddress! + 2 * p * d, neg = pos + d
                    var a = 0.0, b = 0.0
                    for c in 0..<d {
                        a += Double(pos[c]) * Double(vp[c])
                        b += Double(neg[c]) * Double(vp[c])
                    }
                    if a > b { higher += 1 } else if a < b { lower += 1 }
                }
            }
        }
        let flip = lower > higher
        if flip {
            for i in direction.indices { direction[i] = -direction[i] }
            swap(&higher, &lower)
        }
        return FittedDirection(direction: direction, explainedRatio: ratio, pairsHigher: higher, pairsLower: lower, flipped: flip)
    }

    static func normalizedLayers(_ layers: [Int], config: ModelConfig) throws -> [Int] {
        var seen = Set<Int>(), out: [Int] = []
        for layer in layers {
            let b = try config.blockIndex(layer)
            if seen.insert(b).inserted { out.append(b) }
        }
        guard !out.isEmpty else { throw TrainingError.noLayers }
        return out
    }
}

/// "1–29" for a contiguous run, else a comma list.
func rangeText(_ blocks: [Int]) -> String {
    let s = blocks.sorted()
    guard let lo = s.first, let hi = s.last else { return "none" }
    if hi - lo + 1 == s.count { return lo == hi ? "\(lo)" : "\(lo)-\(hi)" }
    return s.map(String.init).joined(separator: ",")
}

