// Control-vector training in a sparse autoencoder's feature space (repeng 0.4's
// `ControlVector.train_with_sae`): hidden states → SAE features → PCA → decoded with W_dec. The
// PCA runs on the N × N Gram matrix of the pair differences, so N × latents is the largest matrix.
import CBLAS
import Foundation
import RepengEngine

/// One feature of a feature-space direction.
public struct SAEFeatureWeight: Sendable, Equatable {
    public var index: Int
    public var weight: Float
}

extension ControlVector {
    /// Trains a control vector through sparse autoencoders (repeng's `train_with_sae`).
    ///
    /// - Hidden states are read exactly as `train` reads them (last token, layer N = output of
    ///   block N), then each layer's SAE encodes them (`SparseAutoencoder.encode`: ReLU of the
    ///   pre-activations for EleutherAI SAEs, as repeng does; the architecture's own activation for
    ///   SAELens SAEs).
    /// - The direction is fitted in feature space by `method` (default `pca_center`, as repeng),
    ///   with the same sign vote, then decoded with the SAE's decoder (`direction · W_dec`, no
    ///   bias), so decoded directions are not unit length. With `decode: false` the directions stay
    ///   in feature space (unit length, one weight per latent) and the metadata says so.
    /// - `layers`: default every layer the SAE set covers; a layer without an SAE is an error.
    /// - Memory: per layer the N × latents matrix of pair differences (f32), one batch of encoded
    ///   rows and the N × N Gram matrix; see `SAETrainingMemory`.
    /// - `progress(done, total)`: distinct text runs, then one unit per layer encoded and fitted.
    public static func trainWithSAE(
        model: any LanguageModel, dataset: [DatasetEntry], sae: SAESet, layers: [Int]? = nil, batchSize: Int = 32,
        method: TrainingMethod = .pcaCenter, decode: Bool = true, sharePrefixes: Bool = true,
        maxTextTokens: Int? = nil, maxTotalTokens: Int? = nil, computeHiddens: HiddenStateHook? = nil,
        progress: ((_ done: Int, _ total: Int) throws -> Void)? = nil
    ) throws -> ControlVector {
        try sae.check(hiddenSize: model.config.hiddenSize, blockCount: model.config.blockCount)
        let wanted: [Int]
        if let layers {
            wanted = try normalizedLayers(layers, config: model.config)
            for l in wanted where sae.byLayer[l] == nil { throw SAEError.noSAEForLayer(layer: l, available: sae.layers) }
        } else {
            wanted = sae.layers
        }
        let minimum = method == .pcaDiff ? 2 : 1
        let x = try extractHiddens(model: model, dataset: dataset, layers: wanted, batchSize: batchSize, minimumPairs: minimum,
                                   method: method, sharePrefixes: sharePrefixes, maxTextTokens: maxTextTokens,
                                   maxTotalTokens: maxTotalTokens, computeHiddens: computeHiddens, progress: progress)
        var directions: [Int: [Float]] = [:]
        var ratios: [Double] = [], agree = 0
        for (i, layer) in x.blocks.sorted().enumerated() {
            let s = sae.byLayer[layer]!
            let fitted = try fitThroughSAE(x.hiddens[layer]!, sae: s, layer: layer, method: method)
            directions[layer] = decode ? try s.decode(fitted.direction) : fitted.direction
            if let r = fitted.explainedRatio { ratios.append(r) }
            agree += fitted.pairsHigher
            try progress?(x.done + i + 1, x.total)
        }
        let saeText = sae.layers.filter { directions[$0] != nil }.map { "\($0):\(sae.byLayer[$0]!.hook)" }.joined(separator: ",")
        let layout = Set(x.blocks.map { sae.byLayer[$0]!.layout.rawValue }).sorted().joined(separator: "+")
        var summary = "\(method.rawValue) through \(layout) SAEs (\(saeText)), \(dataset.count) pairs, layers \(rangeText(x.blocks))"
        if x.tokenCount > 0 { summary += ", \(x.tokenCount) tokens" }
        if sae.pairing == .repeng { summary += ", repeng's layer pairing" }
        if !ratios.isEmpty { summary += String(format: ", mean explained variance %.4f", ratios.reduce(0, +) / Double(ratios.count)) }
        summary += String(format: ", pairs ordered %.4f", Double(agree) / Double(max(1, x.blocks.count * dataset.count)))
        let size = directions.values.first?.count ?? model.config.hiddenSize
        return ControlVector(
            modelType: model.config.architecture, directions: directions,
            metadata: ControlVectorMetadata(
                hiddenSize: size, blockCount: model.config.blockCount, method: method.rawValue,
                modelName: model.config.name, trainingSummary: summary,
                featureSpace: decode ? nil : "\(layout) \(saeText)"))
    }

    /// The SAE half of `trainWithSAE` on hidden states already read (rows pos 0, neg 0, pos 1, …
    /// per layer, keyed by the layers `sae` serves): encode, fit, decode unless `decode` is false.
    /// Returns the direction of each layer.
    public static func fitWithSAE(
        hiddens: [Int: HiddenMatrix], sae: SAESet, method: TrainingMethod = .pcaCenter, decode: Bool = true
    ) throws -> [Int: [Float]] {
        var out: [Int: [Float]] = [:]
        for layer in hiddens.keys.sorted() {
            guard let s = sae.byLayer[layer] else { throw SAEError.noSAEForLayer(layer: layer, available: sae.layers) }
            let fitted = try fitThroughSAE(hiddens[layer]!, sae: s, layer: layer, method: method)
            out[layer] = decode ? try s.decode(fitted.direction) : fitted.direction
        }
        return out
    }

    /// The `count` features of largest |weight| of a feature-space direction, largest first
    /// (ties by index).
    public static func topFeatures(_ direction: [Float], count: Int) -> [SAEFeatureWeight] {
        let order = direction.indices.sorted {
            let a = abs(direction[$0]), b = abs(direction[$1])
            return a != b ? a > b : $0 < $1
        }
        return order.prefix(max(0, count)).map { SAEFeatureWeight(index: $0, weight: direction[$0]) }
    }

    /// Encodes one layer's hidden states (rows pos 0, neg 0, pos 1, …) and fits its direction in
    /// feature space. Only the N × latents pair differences are kept (D, f32): pca_center's
    /// pair-centred rows are ±δ/2, whose column mean is zero, so its principal axis is the top
    /// eigenvector of DᵀD; pca_diff's is that of DᵀCD with C the centring matrix; both come from the
    /// N × N Gram matrix D·Dᵀ (double). The sign vote compares δ·v with 0, which is "positive
    /// projects higher than its negative".
    static func fitThroughSAE(_ h: HiddenMatrix, sae: SparseAutoencoder, layer: Int, method: TrainingMethod) throws -> FittedDirection {
        guard h.rows >= 2, h.rows % 2 == 0 else { throw TrainingError.unpairedRows(layer: layer, rows: h.rows) }
        guard h.columns == sae.inputSize else { throw SAEError.hiddenSizeMismatch(path: sae.folder, sae: sae.inputSize, model: h.columns) }
        let D = try pairDifferences(h, sae: sae)
        return try fitDifferences(D, pairs: h.rows / 2, latents: sae.latents, layer: layer, method: method)
    }

    /// The direction from D (pairs × latents, f32), the positive-minus-negative feature rows.
    static func fitDifferences(_ D: [Float], pairs N: Int, latents F: Int, layer: Int, method: TrainingMethod) throws -> FittedDirection {
        guard D.allSatisfy({ $0.isFinite }) else { throw TrainingError.nonFinite(layer: layer) }

        var v = [Double](repeating: 0, count: F)
        var ratio: Double?
        switch method {
        case .meanDiff:
            for p in 0..<N { for j in 0..<F { v[j] += Double(D[p * F + j]) } }
            guard PCA.normalize(&v) > 0 else {
                throw TrainingError.degenerate(layer: layer, reason: "the mean difference of the SAE features is zero")
            }
        case .pcaDiff, .pcaCenter:
            var G = gram(D, rows: N, cols: F)
            if method == .pcaDiff {
                // C G C: subtract row and column means, add the grand mean.
                var means = [Double](repeating: 0, count: N)
                for i in 0..<N { for j in 0..<N { means[i] += G[i * N + j] } }
                for i in 0..<N { means[i] /= Double(N) }
                let grand = means.reduce(0, +) / Double(N)
                for i in 0..<N { for j in 0..<N { G[i * N + j] += grand - means[i] - means[j] } }
            }
            var trace = 0.0
            for i in 0..<N { trace += G[i * N + i] }
            guard trace > 0 else {
                throw TrainingError.degenerate(layer: layer, reason: "the SAE features of positives and negatives do not differ (every active feature is the same)")
            }
            let (lambda, u) = try PCA.topEigen(&G, n: N)
            // v = Dᵀ u.
            D.withUnsafeBufferPointer { dp in
                for p in 0..<N {
                    let row = dp.baseAddress! + p * F, w = u[p]
                    if w == 0 { continue }
                    for j in 0..<F { v[j] += w * Double(row[j]) }
                }
            }
            guard PCA.normalize(&v) > 0 else {
                throw TrainingError.degenerate(layer: layer, reason: "the SAE features have no principal direction")
            }
            PCA.canonicalSign(&v)
            ratio = min(max(lambda / trace, 0), 1)
        }
        var direction = v.map { Float($0) }
        var higher = 0, lower = 0
        direction.withUnsafeBufferPointer { vp in
            D.withUnsafeBufferPointer { dp in
                for p in 0..<N {
                    let row = dp.baseAddress! + p * F
                    var s = 0.0
                    for j in 0..<F { s += Double(row[j]) * Double(vp[j]) }
                    if s > 0 { higher += 1 } else if s < 0 { lower += 1 }
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

    /// D (N × latents, f32): features of each positive minus those of its negative, encoded in
    /// batches of pairs so that at most `SAETrainingMemory.batchBytes` of encoded rows exist at once.
    static func pairDifferences(_ h: HiddenMatrix, sae: SparseAutoencoder, pairsPerBatch batch: Int? = nil) throws -> [Float] {
        let N = h.rows / 2, F = sae.latents, d = h.columns
        let pairsPerBatch = batch ?? SAETrainingMemory.pairsPerBatch(latents: F, pairs: N)
        var D = [Float](repeating: 0, count: N * F)
        var encoded = [Float](repeating: 0, count: 2 * pairsPerBatch * F)
        try h.values.withUnsafeBufferPointer { hp in
            try encoded.withUnsafeMutableBufferPointer { ep in
                try D.withUnsafeMutableBufferPointer { dp in
                    var p0 = 0
                    while p0 < N {
                        let n = min(pairsPerBatch, N - p0)
                        try sae.encode(hp.baseAddress! + 2 * p0 * d, rows: 2 * n, into: ep.baseAddress!)
                        for p in 0..<n {
                            let pos = ep.baseAddress! + 2 * p * F, neg = pos + F, dst = dp.baseAddress! + (p0 + p) * F
                            for j in 0..<F { dst[j] = pos[j] - neg[j] }
                        }
                        p0 += n
                    }
                }
            }
        }
        return D
    }

    /// D·Dᵀ in double, accumulated over column chunks of D.
    static func gram(_ D: [Float], rows N: Int, cols F: Int) -> [Double] {
        var G = [Double](repeating: 0, count: N * N)
        let cs = max(1, min(F, SAETrainingMemory.gramChunkValues / max(N, 1)))
        var chunk = [Double](repeating: 0, count: N * cs)
        var c0 = 0
        while c0 < F {
            let n = min(cs, F - c0)
            D.withUnsafeBufferPointer { dp in
                chunk.withUnsafeMutableBufferPointer { cp in
                    for r in 0..<N {
                        let src = dp.baseAddress! + r * F + c0, dst = cp.baseAddress! + r * n
                        for j in 0..<n { dst[j] = Double(src[j]) }
                    }
                }
            }
            chunk.withUnsafeBufferPointer { cp in
                G.withUnsafeMutableBufferPointer { gp in
                    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(N), Int32(n), 1, cp.baseAddress, Int32(n),
                                1, gp.baseAddress, Int32(N))
                }
            }
            c0 += n
        }
        // Mirror the upper triangle.
        for i in 0..<N { for j in 0..<i { G[i * N + j] = G[j * N + i] } }
        return G
    }
}

/// The memory SAE training needs beyond the model and the hidden states.
public enum SAETrainingMemory {
    /// Encoded rows held at once: about 64 MiB of f32.
    public static let batchBytes = 64 << 20
    /// Values of the double column chunk used for the Gram matrix (8 MiB).
    static let gramChunkValues = 1 << 20

    static func pairsPerBatch(latents: Int, pairs: Int) -> Int {
        max(1, min(pairs, batchBytes / max(1, 2 * latents * 4)))
    }

    /// Bytes allocated per layer for `pairs` pairs, `latents` latents and inputs of `inputSize`
    /// (freed before the next layer): D (pairs × latents f32), the encoded batch (at most
    /// 2 × pairs × latents f32 or `batchBytes`), the Gram matrix (pairs² doubles) and its column
    /// chunk, the direction (latents doubles), and an encoder chunk (about 16 MiB) when the
    /// weights are F16/BF16 or SAELens-shaped. The SAE files themselves are memory-mapped.
    public static func bytes(pairs N: Int, latents F: Int, inputSize d: Int) -> Int {
        let batch = 2 * pairsPerBatch(latents: F, pairs: N) * F * 4
        let chunk = max(64, min(F, (4 << 20) / max(d, 1))) * d * 4
        return N * F * 4 + batch + N * N * 8 + min(gramChunkValues, N * F) * 8 + F * 8 + chunk
    }
}
