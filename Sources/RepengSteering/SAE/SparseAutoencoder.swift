// Sparse autoencoders read from local folders in EleutherAI's layout (sparsify / sae: layers.N/cfg.json +
// sae.safetensors) and SAELens' (cfg.json + sae_weights.safetensors), with their encoders and decoders.
import CBLAS
import Foundation
import RepengEngine

/// Why a sparse autoencoder could not be read or used.
public enum SAEError: Error, CustomStringConvertible, Sendable, Equatable {
    case notFound(path: String)
    /// A folder with cfg.json but neither sae.safetensors (EleutherAI) nor sae_weights.safetensors (SAELens).
    case unknownLayout(path: String)
    /// A folder that holds no SAE, directly or one level down.
    case noSAEs(path: String)
    case badConfig(path: String, reason: String)
    /// A kind of SAE this project does not train with (transcoders, skip connections, an architecture).
    case unsupported(path: String, reason: String)
    /// The SAE does not read the residual stream after a block.
    case unsupportedHook(path: String, hook: String, reason: String)
    case badTensor(path: String, tensor: String, reason: String)
    case safetensors(path: String, SafeTensorsError)
    case duplicateLayer(layer: Int, first: String, second: String)
    case hiddenSizeMismatch(path: String, sae: Int, model: Int)
    case layerOutOfRange(path: String, layer: Int, blocks: Int)
    case noSAEForLayer(layer: Int, available: [Int])
    /// repeng's pairing exists only for EleutherAI SAEs (the layout its `from_eleuther` reads).
    case pairingNeedsEleuther(path: String)
    case badInput(reason: String)

    public var description: String {
        switch self {
        case .notFound(let p): return "SAE folder \(p) does not exist or is not a folder"
        case .unknownLayout(let p):
            return "\(p) has cfg.json but neither sae.safetensors (EleutherAI layout) nor sae_weights.safetensors (SAELens layout)"
        case .noSAEs(let p):
            return "no SAE in \(p): expected cfg.json with sae.safetensors or sae_weights.safetensors in it or in its subfolders"
        case let .badConfig(p, r): return "SAE config \(p)/cfg.json: \(r)"
        case let .unsupported(p, r): return "SAE \(p): \(r)"
        case let .unsupportedHook(p, h, r): return "SAE \(p) reads '\(quoted(h))': \(r); only SAEs on the residual stream after a block can train a control vector"
        case let .badTensor(p, t, r): return "SAE \(p): tensor '\(quoted(t))' \(r)"
        case let .safetensors(p, e): return "SAE \(p): \(e)"
        case let .duplicateLayer(l, a, b): return "two SAEs serve layer \(l): \(a) and \(b)"
        case let .hiddenSizeMismatch(p, s, m): return "SAE \(p) encodes vectors of \(s) values but the model's hidden size is \(m)"
        case let .layerOutOfRange(p, l, n): return "SAE \(p) serves layer \(l) but the model has blocks 0-\(n - 1)"
        case let .noSAEForLayer(l, a):
            return "no SAE for layer \(l); the SAE folder covers layers \(a.isEmpty ? "none" : a.map(String.init).joined(separator: ","))"
        case .pairingNeedsEleuther(let p): return "SAE \(p): repeng's layer pairing applies to EleutherAI SAEs only"
        case .badInput(let r): return "SAE input: \(r)"
        }
    }
}

/// Which trained layer an SAE serves.
public enum SAEPairing: String, Sendable, CaseIterable {
    /// The layer whose output the SAE was trained on (EleutherAI `layers.N` and SAELens
    /// `blocks.N.hook_resid_post` both serve layer N, the output of block N).
    case block
    /// repeng 0.4's `from_eleuther`: its layer N is paired with `layers.{N-1}`, the SAE of the
    /// block before (repeng assumed its layer 0 is the embeddings, but reads layer N from the
    /// output of block N). Only for reproducing vectors made that way.
    case repeng

    /// The layer an SAE on the output of `block` serves under this pairing.
    public func layer(servedBy block: Int) -> Int { self == .block ? block : block + 1 }
}

/// One sparse autoencoder on the output of one block, its weights memory-mapped.
public final class SparseAutoencoder: @unchecked Sendable {
    public enum Layout: String, Sendable { case eleuther, saelens }

    /// How pre-activations become features.
    public enum Activation: Sendable, Equatable, CustomStringConvertible {
        /// max(0, pre): SAELens standard, and EleutherAI SAEs as repeng encodes them (`pre_acts`,
        /// without the top-k their own forward pass applies).
        case relu
        /// pre where pre > threshold (per latent), else 0 (SAELens jumprelu).
        case jumpReLU
        /// The k largest pre-activations of a row through ReLU, the rest 0 (SAELens topk).
        case topK(Int)
        /// Gate pre + b_gate > 0 selects; magnitude max(0, exp(r_mag)·pre + b_mag) (SAELens gated).
        case gated

        public var description: String {
            switch self {
            case .relu: return "relu"
            case .jumpReLU: return "jumprelu"
            case .topK(let k): return "topk(\(k))"
            case .gated: return "gated"
            }
        }
    }

    /// Per-row rescaling of the input before the encoder (SAELens `normalize_activations`).
    public enum InputNormalization: String, Sendable {
        case none
        /// x · √d / ‖x‖.
        case constantNormRescale = "constant_norm_rescale"
        /// (x − mean(x)) / (std(x) + 1e-5), std with Bessel's correction (torch's default).
        case layerNorm = "layer_norm"
    }

    /// The folder of this SAE (cfg.json and its safetensors file).
    public let folder: String
    public let layout: Layout
    /// The hook as its files name it (`layers.9`, `blocks.9.hook_resid_post`).
    public let hook: String
    /// The block whose output it reads (this project's layer numbering).
    public let block: Int
    /// Input width (the model's hidden size) and number of latents (features).
    public let inputSize: Int
    public let latents: Int
    public let activation: Activation
    /// Whether `b_dec` is subtracted from the input before the encoder.
    public let subtractsDecoderBias: Bool
    public let inputNormalization: InputNormalization
    /// Element type of the encoder weights in the file.
    public let dtype: SafeTensorsDType

    let file: SafeTensorsFile
    /// EleutherAI: [latents, d]; SAELens: [d, latents].
    let encoder: SafeTensorsTensorInfo
    /// [latents, d] in both layouts.
    let decoder: SafeTensorsTensorInfo
    let encoderBias: [Float]        // [latents] (b_gate for gated)
    let decoderBias: [Float]        // [d]
    let threshold: [Float]?         // [latents], jumprelu
    let magnitudeScale: [Float]?    // [latents], exp(r_mag), gated
    let magnitudeBias: [Float]?     // [latents], b_mag, gated

    /// Most latents and widest input accepted.
    public static let maxLatents = 1 << 24
    public static let maxInputSize = 1 << 16
    static let maxConfigBytes = 1 << 20

    init(folder: String, layout: Layout, hook: String, block: Int, inputSize: Int, latents: Int,
         activation: Activation, subtractsDecoderBias: Bool, inputNormalization: InputNormalization,
         file: SafeTensorsFile, encoder: SafeTensorsTensorInfo, decoder: SafeTensorsTensorInfo,
         encoderBias: [Float], decoderBias: [Float], threshold: [Float]?, magnitudeScale: [Float]?, magnitudeBias: [Float]?) {
        self.folder = folder
        self.layout = layout
        self.hook = hook
        self.block = block
        self.inputSize = inputSize
        self.latents = latents
        self.activation = activation
        self.subtractsDecoderBias = subtractsDecoderBias
        self.inputNormalization = inputNormalization
        self.file = file
        self.encoder = encoder
        self.decoder = decoder
        self.dtype = encoder.dtype
        self.encoderBias = encoderBias
        self.decoderBias = decoderBias
        self.threshold = threshold
        self.magnitudeScale = magnitudeScale
        self.magnitudeBias = magnitudeBias
    }

    /// One line: layout, hook, block, sizes, activation.
    public var summary: String {
        "\(layout.rawValue) \(hook) (block \(block), \(inputSize) → \(latents) latents, \(activation), \(dtype.rawValue))"
    }

    // MARK: Encoding

    /// Latents per encoder chunk: about 4 Mi f32 values of weights at a time.
    var chunkLatents: Int { max(64, min(latents, (4 << 20) / max(inputSize, 1))) }

    /// The features of `rows` inputs (rows × inputSize, row-major) into `out` (rows × latents).
    /// BLAS products over chunks of latents; F16/BF16 weights are converted a chunk at a time.
    public func encode(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) throws {
        try encode(x, rows: rows, into: out, chunk: chunkLatents)
    }

    func encode(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, chunk cs: Int) throws {
        guard rows > 0 else { return }
        let d = inputSize, F = latents
        var input = [Float](UnsafeBufferPointer(start: x, count: rows * d))
        prepareInput(&input, rows: rows)
        let inPlace = file.f32InPlace(encoder)
        var scratch = inPlace == nil ? [Float](repeating: 0, count: cs * d) : []
        var c0 = 0
        while c0 < F {
            let n = min(cs, F - c0)
            try input.withUnsafeBufferPointer { ip in
                try scratch.withUnsafeMutableBufferPointer { sp in
                    let C = out + c0
                    switch layout {
                    case .eleuther:  // W [F, d]: rows c0 ..< c0+n are contiguous
                        let w: UnsafePointer<Float>
                        if let inPlace { w = inPlace + c0 * d } else {
                            try decodeEncoder(elements: (c0 * d)..<((c0 + n) * d), into: sp.baseAddress!)
                            w = UnsafePointer(sp.baseAddress!)
                        }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(d), 1,
                                    ip.baseAddress, Int32(d), w, Int32(d), 0, C, Int32(F))
                    case .saelens:  // W [d, F]: columns c0 ..< c0+n, one segment per input dimension
                        if let inPlace {
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(d), 1,
                                        ip.baseAddress, Int32(d), inPlace + c0, Int32(F), 0, C, Int32(F))
                        } else {
                            for r in 0..<d {
                                try decodeEncoder(elements: (r * F + c0)..<(r * F + c0 + n), into: sp.baseAddress! + r * n)
                            }
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(d), 1,
                                        ip.baseAddress, Int32(d), sp.baseAddress, Int32(n), 0, C, Int32(F))
                        }
                    }
                }
            }
            c0 += n
        }
        for r in 0..<rows { activate(out + r * F) }
    }

    /// Features of the rows of `h` (rows × latents).
    public func encode(_ h: HiddenMatrix) throws -> HiddenMatrix {
        guard h.columns == inputSize else { throw SAEError.hiddenSizeMismatch(path: folder, sae: inputSize, model: h.columns) }
        var out = [Float](repeating: 0, count: h.rows * latents)
        try h.values.withUnsafeBufferPointer { hp in
            try out.withUnsafeMutableBufferPointer { try encode(hp.baseAddress!, rows: h.rows, into: $0.baseAddress!) }
        }
        return try HiddenMatrix(rows: h.rows, columns: latents, values: out)
    }

    private func decodeEncoder(elements: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        try decodeTensor(encoder, elements: elements, into: dst)
    }

    private func decodeTensor(_ t: SafeTensorsTensorInfo, elements: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        do { try file.decode(t, elements: elements, into: dst) } catch { throw SAEError.safetensors(path: folder, error) }
    }

    /// Normalization, then the decoder bias subtracted, in place.
    func prepareInput(_ x: inout [Float], rows: Int) {
        let d = inputSize
        x.withUnsafeMutableBufferPointer { xp in
            for r in 0..<rows {
                let row = xp.baseAddress! + r * d
                switch inputNormalization {
                case .none: break
                case .constantNormRescale:
                    var ss = 0.0
                    for c in 0..<d { ss += Double(row[c]) * Double(row[c]) }
                    let norm = ss.squareRoot()
                    if norm > 0 {
                        let k = Float(Double(d).squareRoot() / norm)
                        for c in 0..<d { row[c] *= k }
                    }
                case .layerNorm:
                    var mean = 0.0
                    for c in 0..<d { mean += Double(row[c]) }
                    mean /= Double(d)
                    var v = 0.0
                    for c in 0..<d { v += (Double(row[c]) - mean) * (Double(row[c]) - mean) }
                    let std = (v / Double(max(d - 1, 1))).squareRoot()
                    for c in 0..<d { row[c] = Float((Double(row[c]) - mean) / (std + 1e-5)) }
                }
                if subtractsDecoderBias { for c in 0..<d { row[c] -= decoderBias[c] } }
            }
        }
    }

    /// Bias and activation over one row of pre-activations (latents values), in place.
    func activate(_ row: UnsafeMutablePointer<Float>) {
        let F = latents
        switch activation {
        case .relu:
            for j in 0..<F { row[j] = max(0, row[j] + encoderBias[j]) }
        case .jumpReLU:
            let t = threshold!
            for j in 0..<F {
                let p = row[j] + encoderBias[j]
                row[j] = p > t[j] ? max(0, p) : 0
            }
        case .gated:
            let s = magnitudeScale!, b = magnitudeBias!
            for j in 0..<F {
                let pre = row[j]
                row[j] = pre + encoderBias[j] > 0 ? max(0, pre * s[j] + b[j]) : 0
            }
        case .topK(let k):
            for j in 0..<F { row[j] += encoderBias[j] }
            if k >= F {
                for j in 0..<F { row[j] = max(0, row[j]) }
                return
            }
            // The k-th largest value by selection on a copy; ties at it keep the lowest indices.
            var copy = [Float](UnsafeBufferPointer(start: row, count: F))
            let kth = Self.kthLargest(&copy, k)
            var above = 0
            for j in 0..<F where row[j] > kth { above += 1 }
            var equalLeft = k - above
            for j in 0..<F {
                let v = row[j]
                if v > kth { row[j] = max(0, v) } else if v == kth && equalLeft > 0 {
                    row[j] = max(0, v)
                    equalLeft -= 1
                } else {
                    row[j] = 0
                }
            }
        }
    }

    /// The k-th largest value of `a` (1 ≤ k ≤ a.count), reordering `a` (quickselect).
    static func kthLargest(_ a: inout [Float], _ k: Int) -> Float {
        var lo = 0, hi = a.count - 1
        let target = k - 1  // index in descending order
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while lo < hi {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let pivot = a[lo + Int((state >> 33) % UInt64(hi - lo + 1))]
            var i = lo, j = hi
            while i <= j {
                while a[i] > pivot { i += 1 }
                while a[j] < pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if target <= j { hi = j } else if target >= i { lo = i } else { return a[target] }
        }
        return a[target]
    }

    /// Plain reference of `encode` for one row, every product in double (tests).
    public func encodeReference(_ x: [Float]) throws -> [Float] {
        guard x.count == inputSize else { throw SAEError.hiddenSizeMismatch(path: folder, sae: inputSize, model: x.count) }
        let d = inputSize, F = latents
        var input = x
        prepareInput(&input, rows: 1)
        var w = [Float](repeating: 0, count: d * F)
        try w.withUnsafeMutableBufferPointer { try decodeEncoder(elements: 0..<(d * F), into: $0.baseAddress!) }
        var pre = [Float](repeating: 0, count: F)
        for j in 0..<F {
            var s = 0.0
            for c in 0..<d {
                let wv = layout == .eleuther ? w[j * d + c] : w[c * F + j]
                s += Double(input[c]) * Double(wv)
            }
            pre[j] = Float(s)
        }
        pre.withUnsafeMutableBufferPointer { activate($0.baseAddress!) }
        return pre
    }

    // MARK: Decoding

    /// `features` (latents values) times the decoder, without its bias: a vector of inputSize values.
    public func decode(_ features: [Float]) throws -> [Float] { try decode(features, chunk: chunkLatents) }

    func decode(_ features: [Float], chunk cs: Int) throws -> [Float] {
        guard features.count == latents else {
            throw SAEError.badInput(reason: "\(features.count) feature values for an SAE of \(latents) latents")
        }
        let d = inputSize, F = latents
        var acc = [Double](repeating: 0, count: d)
        var part = [Float](repeating: 0, count: d)
        let inPlace = file.f32InPlace(decoder)
        var scratch = inPlace == nil ? [Float](repeating: 0, count: cs * d) : []
        var c0 = 0
        while c0 < F {
            let n = min(cs, F - c0)
            try scratch.withUnsafeMutableBufferPointer { sp in
                let w: UnsafePointer<Float>
                if let inPlace { w = inPlace + c0 * d } else {
                    try decodeTensor(decoder, elements: (c0 * d)..<((c0 + n) * d), into: sp.baseAddress!)
                    w = UnsafePointer(sp.baseAddress!)
                }
                features.withUnsafeBufferPointer { fp in
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(d), 1, w, Int32(d), fp.baseAddress! + c0, 1,
                                0, &part, 1)
                }
            }
            for c in 0..<d { acc[c] += Double(part[c]) }
            c0 += n
        }
        return acc.map { Float($0) }
    }
}
