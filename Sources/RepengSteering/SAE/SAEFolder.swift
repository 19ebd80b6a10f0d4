// Finding and reading SAE folders: one SAE (EleutherAI layers.N or SAELens hook folder) or a parent
// holding several, their cfg.json keys checked, and the one mapping from hook names to layers.
import Foundation
import RepengEngine

/// The SAEs of a folder, keyed by the layer each serves.
public struct SAESet: Sendable {
    /// The folder as given.
    public let folder: String
    public let pairing: SAEPairing
    /// Keyed by the layer (block index) whose hidden states each SAE encodes when training.
    public let byLayer: [Int: SparseAutoencoder]

    /// The layers covered, ascending.
    public var layers: [Int] { byLayer.keys.sorted() }

    public init(folder: String, pairing: SAEPairing, byLayer: [Int: SparseAutoencoder]) {
        self.folder = folder
        self.pairing = pairing
        self.byLayer = byLayer
    }

    /// Most subfolders looked at in a parent folder.
    public static let maxEntries = 4096

    /// Reads `folder`: an SAE itself (cfg.json beside sae.safetensors or sae_weights.safetensors)
    /// or a folder whose subfolders are SAEs (subfolders without cfg.json are skipped).
    public static func load(folder: String, pairing: SAEPairing = .block) throws -> SAESet {
        guard isDirectory(folder) else { throw SAEError.notFound(path: folder) }
        var saes: [SparseAutoencoder] = []
        if fileExists(folder + "/cfg.json") {
            saes.append(try readOne(folder))
        } else {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted() } catch {
                throw SAEError.notFound(path: folder)
            }
            guard names.count <= maxEntries else {
                throw SAEError.badInput(reason: "\(folder) has \(names.count) entries, more than the \(maxEntries) looked at")
            }
            for name in names where !name.hasPrefix(".") {
                let sub = folder + "/" + name
                guard isDirectory(sub), fileExists(sub + "/cfg.json") else { continue }
                saes.append(try readOne(sub))
            }
        }
        guard !saes.isEmpty else { throw SAEError.noSAEs(path: folder) }
        var byLayer: [Int: SparseAutoencoder] = [:]
        for s in saes {
            if pairing == .repeng && s.layout != .eleuther { throw SAEError.pairingNeedsEleuther(path: s.folder) }
            let layer = pairing.layer(servedBy: s.block)
            if let other = byLayer[layer] { throw SAEError.duplicateLayer(layer: layer, first: other.folder, second: s.folder) }
            byLayer[layer] = s
        }
        return SAESet(folder: folder, pairing: pairing, byLayer: byLayer)
    }

    /// Checks every SAE against a model: input width and layer range.
    public func check(hiddenSize: Int, blockCount: Int) throws {
        for layer in layers {
            let s = byLayer[layer]!
            guard s.inputSize == hiddenSize else {
                throw SAEError.hiddenSizeMismatch(path: s.folder, sae: s.inputSize, model: hiddenSize)
            }
            guard layer >= 0, layer < blockCount else { throw SAEError.layerOutOfRange(path: s.folder, layer: layer, blocks: blockCount) }
        }
    }

    /// The block a hook reads, as this project numbers layers (layer N = the output of block N).
    /// - EleutherAI: `layers.N` (or `model.layers.N`), the output of decoder layer N.
    /// - SAELens (TransformerLens names): `blocks.N.hook_resid_post` is the output of block N;
    ///   `blocks.N.hook_resid_pre`, the input of block N, is the same tensor as the output of block
    ///   N − 1 and serves that layer.
    /// Anything else (attention `hook_z`, MLP outputs, the embeddings) is refused.
    public static func block(ofHook hook: String, layout: SparseAutoencoder.Layout, folder: String) throws -> Int {
        let parts = hook.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String) -> Int? {
            guard !s.isEmpty, s.count <= 6, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(s)
        }
        switch layout {
        case .eleuther:
            let tail = parts.first == "model" ? Array(parts.dropFirst()) : parts
            if tail.count == 2, tail[0] == "layers", let n = number(tail[1]) { return n }
            let reason = tail.count > 2 && tail[0] == "layers"
                ? "a module inside decoder layer \(tail[1]) (\(tail[2...].joined(separator: "."))), not the layer's output"
                : "not a decoder layer's output (expected layers.N)"
            throw SAEError.unsupportedHook(path: folder, hook: hook, reason: reason)
        case .saelens:
            if parts.count == 3, parts[0] == "blocks", let n = number(parts[1]) {
                if parts[2] == "hook_resid_post" { return n }
                if parts[2] == "hook_resid_pre" {
                    guard n >= 1 else {
                        throw SAEError.unsupportedHook(path: folder, hook: hook, reason: "the input of block 0 is the token embeddings, which are not a trainable layer")
                    }
                    return n - 1
                }
            }
            let reason = parts.count >= 3 && parts[0] == "blocks"
                ? "a hook inside block \(parts[1]) (\(parts[2...].joined(separator: "."))), not the residual stream"
                : "not a block's residual stream (expected blocks.N.hook_resid_post)"
            throw SAEError.unsupportedHook(path: folder, hook: hook, reason: reason)
        }
    }

    // MARK: Reading one SAE

    static func readOne(_ folder: String) throws -> SparseAutoencoder {
        let eleutherFile = folder + "/sae.safetensors", saelensFile = folder + "/sae_weights.safetensors"
        let config = try readConfig(folder)
        if fileExists(saelensFile) { return try readSAELens(folder, config: config, weights: saelensFile) }
        if fileExists(eleutherFile) { return try readEleuther(folder, config: config, weights: eleutherFile) }
        throw SAEError.unknownLayout(path: folder)
    }

    static func readConfig(_ folder: String) throws -> JSONObject {
        let bytes: [UInt8]
        do { bytes = try readSmallFile(folder + "/cfg.json", limit: SparseAutoencoder.maxConfigBytes) } catch {
            throw SAEError.badConfig(path: folder, reason: error.description)
        }
        let value: JSONValue
        do { value = try JSONReader.parse(bytes) } catch { throw SAEError.badConfig(path: folder, reason: "not valid JSON: \(error)") }
        guard let o = value.object else { throw SAEError.badConfig(path: folder, reason: "is \(value.kind), not an object") }
        return o
    }

    static func openWeights(_ path: String, folder: String) throws -> SafeTensorsFile {
        do { return try SafeTensorsFile(path: path) } catch { throw SAEError.safetensors(path: folder, error) }
    }

    static func size(_ o: JSONObject, _ key: String, folder: String, max: Int) throws -> Int? {
        guard let v = o[key], !v.isNull else { return nil }
        guard let n = v.int, n >= 0, n <= max else {
            throw SAEError.badConfig(path: folder, reason: "'\(key)' must be an integer in 0...\(max)")
        }
        return n
    }

    static func flag(_ o: JSONObject, _ key: String, folder: String) throws -> Bool? {
        guard let v = o[key], !v.isNull else { return nil }
        guard let b = v.bool else { throw SAEError.badConfig(path: folder, reason: "'\(key)' must be true or false") }
        return b
    }

    static func text(_ o: JSONObject, _ key: String, folder: String) throws -> String? {
        guard let v = o[key], !v.isNull else { return nil }
        guard let s = v.string else { throw SAEError.badConfig(path: folder, reason: "'\(key)' must be a string") }
        return s
    }

    /// A float tensor of exactly `shape`.
    static func tensor(_ file: SafeTensorsFile, _ name: String, shape: [Int], folder: String) throws -> SafeTensorsTensorInfo {
        guard let t = file.tensor(named: name) else { throw SAEError.badTensor(path: folder, tensor: name, reason: "is missing") }
        guard t.dtype.isFloatWeight else {
            throw SAEError.badTensor(path: folder, tensor: name, reason: "has dtype \(t.dtype.rawValue); F32, F16 or BF16 expected")
        }
        // A [1, n] or [n, 1] bias is accepted for [n].
        let squeezed = t.shape.filter { $0 != 1 }
        guard t.shape == shape || (shape.count == 1 && squeezed == shape.filter { $0 != 1 } && t.elementCount == shape[0]) else {
            throw SAEError.badTensor(path: folder, tensor: name, reason: "has shape \(t.shape), expected \(shape)")
        }
        return t
    }

    static func vector(_ file: SafeTensorsFile, _ name: String, count: Int, folder: String) throws -> [Float] {
        let t = try tensor(file, name, shape: [count], folder: folder)
        var out = [Float](repeating: 0, count: count)
        do { try out.withUnsafeMutableBufferPointer { try file.decode(t, into: $0.baseAddress!) } } catch let e as SafeTensorsError {
            throw SAEError.safetensors(path: folder, e)
        }
        guard out.allSatisfy({ $0.isFinite }) else { throw SAEError.badTensor(path: folder, tensor: name, reason: "holds NaN or infinity") }
        return out
    }

    /// EleutherAI (sparsify / sae): cfg.json with d_in, num_latents (0: expansion_factor × d_in),
    /// k, activation (topk or groupmax), transcode, skip_connection; sae.safetensors with
    /// encoder.weight [latents, d], encoder.bias [latents], W_dec [latents, d], b_dec [d].
    /// Features are ReLU(encoder(x − b_dec)), the SAE's pre-activations, as repeng encodes them.
    static func readEleuther(_ folder: String, config o: JSONObject, weights: String) throws -> SparseAutoencoder {
        let hook = (folder as NSString).lastPathComponent
        let block = try block(ofHook: hook, layout: .eleuther, folder: folder)
        if try flag(o, "transcode", folder: folder) == true {
            throw SAEError.unsupported(path: folder, reason: "a transcoder (transcode: true) predicts a module's output from its input; only autoencoders of one layer's output are supported")
        }
        if try flag(o, "skip_connection", folder: folder) == true {
            throw SAEError.unsupported(path: folder, reason: "has a skip connection (skip_connection: true), which is not supported")
        }
        if let a = try text(o, "activation", folder: folder), a != "topk", a != "groupmax" {
            throw SAEError.unsupported(path: folder, reason: "unknown activation '\(quoted(a))' (topk or groupmax expected)")
        }
        let file = try openWeights(weights, folder: folder)
        if file.tensor(named: "W_skip") != nil {
            throw SAEError.unsupported(path: folder, reason: "has a skip connection (tensor W_skip), which is not supported")
        }
        let (F, d) = try encoderSizes(file, "encoder.weight", latentsFirst: true, config: o, latentsKey: "num_latents", folder: folder)
        let encoder = try tensor(file, "encoder.weight", shape: [F, d], folder: folder)
        guard file.tensor(named: "W_dec") != nil else {
            throw SAEError.unsupported(path: folder, reason: "has no decoder (W_dec), so directions cannot be decoded")
        }
        let decoder = try tensor(file, "W_dec", shape: [F, d], folder: folder)
        return SparseAutoencoder(
            folder: folder, layout: .eleuther, hook: hook, block: block, inputSize: d, latents: F, activation: .relu,
            subtractsDecoderBias: true, inputNormalization: .none, file: file, encoder: encoder, decoder: decoder,
            encoderBias: try vector(file, "encoder.bias", count: F, folder: folder),
            decoderBias: try vector(file, "b_dec", count: d, folder: folder),
            threshold: nil, magnitudeScale: nil, magnitudeBias: nil)
    }

    /// SAELens: cfg.json with architecture (standard, jumprelu, topk, gated), d_in, d_sae,
    /// apply_b_dec_to_input, normalize_activations and the hook name (`metadata.hook_name` in
    /// SAELens 6, top-level `hook_name` before); sae_weights.safetensors with W_enc [d, latents],
    /// b_enc, W_dec [latents, d], b_dec, and threshold (jumprelu) or b_gate, r_mag, b_mag (gated).
    static func readSAELens(_ folder: String, config o: JSONObject, weights: String) throws -> SparseAutoencoder {
        let meta = o["metadata"]?.object
        guard let hook = try meta.flatMap({ try text($0, "hook_name", folder: folder) }) ?? text(o, "hook_name", folder: folder) else {
            throw SAEError.badConfig(path: folder, reason: "no hook_name (in metadata or at the top level)")
        }
        let block = try block(ofHook: hook, layout: .saelens, folder: folder)
        if let head = meta?["hook_head_index"] ?? o["hook_head_index"], !head.isNull {
            throw SAEError.unsupportedHook(path: folder, hook: hook, reason: "reads one attention head (hook_head_index)")
        }
        let architecture = try text(o, "architecture", folder: folder) ?? "standard"
        var activation: SparseAutoencoder.Activation
        switch architecture {
        case "standard": activation = .relu
        case "jumprelu": activation = .jumpReLU
        case "gated": activation = .gated
        case "topk":
            guard let k = try size(o, "k", folder: folder, max: SparseAutoencoder.maxLatents), k >= 1 else {
                throw SAEError.badConfig(path: folder, reason: "a topk SAE needs k ≥ 1")
            }
            activation = .topK(k)
        default:
            throw SAEError.unsupported(path: folder, reason: "architecture '\(quoted(architecture))' is not supported (standard, jumprelu, topk or gated)")
        }
        // Older SAELens wrote top-k as a standard SAE with activation_fn_str "topk".
        if let fn = try text(o, "activation_fn_str", folder: folder) ?? text(o, "activation_fn", folder: folder) {
            switch (fn, activation) {
            case ("relu", _): break
            case ("topk", .relu):
                let kwargs = o["activation_fn_kwargs"]?.object
                guard let k = try kwargs.flatMap({ try size($0, "k", folder: folder, max: SparseAutoencoder.maxLatents) }) ?? size(o, "k", folder: folder, max: SparseAutoencoder.maxLatents), k >= 1 else {
                    throw SAEError.badConfig(path: folder, reason: "activation topk without k")
                }
                activation = .topK(k)
            case ("topk", .topK): break
            default:
                throw SAEError.unsupported(path: folder, reason: "activation function '\(quoted(fn))' is not supported (relu or topk)")
            }
        }
        if try flag(o, "rescale_acts_by_decoder_norm", folder: folder) == true {
            throw SAEError.unsupported(path: folder, reason: "rescale_acts_by_decoder_norm is not supported")
        }
        let normName = try text(o, "normalize_activations", folder: folder) ?? "none"
        let norm: SparseAutoencoder.InputNormalization
        switch normName {
        case "none", "expected_average_only_in": norm = .none  // the latter's scale is folded into the saved weights
        case "constant_norm_rescale": norm = .constantNormRescale
        case "layer_norm": norm = .layerNorm
        default: throw SAEError.unsupported(path: folder, reason: "normalize_activations '\(quoted(normName))' is not supported")
        }
        let file = try openWeights(weights, folder: folder)
        let (F, d) = try encoderSizes(file, "W_enc", latentsFirst: false, config: o, latentsKey: "d_sae", folder: folder)
        let encoder = try tensor(file, "W_enc", shape: [d, F], folder: folder)
        let decoder = try tensor(file, "W_dec", shape: [F, d], folder: folder)
        let bDec = try vector(file, "b_dec", count: d, folder: folder)
        var bEnc: [Float], threshold: [Float]? = nil, scale: [Float]? = nil, bMag: [Float]? = nil
        switch activation {
        case .gated:
            bEnc = try vector(file, "b_gate", count: F, folder: folder)
            scale = try vector(file, "r_mag", count: F, folder: folder).map { Float(exp(Double($0))) }
            bMag = try vector(file, "b_mag", count: F, folder: folder)
        case .jumpReLU:
            bEnc = try vector(file, "b_enc", count: F, folder: folder)
            if file.tensor(named: "threshold") != nil {
                threshold = try vector(file, "threshold", count: F, folder: folder)
            } else if file.tensor(named: "log_threshold") != nil {
                threshold = try vector(file, "log_threshold", count: F, folder: folder).map { Float(exp(Double($0))) }
            } else {
                throw SAEError.badTensor(path: folder, tensor: "threshold", reason: "is missing (a jumprelu SAE needs threshold or log_threshold)")
            }
        case .relu, .topK:
            bEnc = try vector(file, "b_enc", count: F, folder: folder)
        }
        let applyBDec = try flag(o, "apply_b_dec_to_input", folder: folder) ?? true
        return SparseAutoencoder(
            folder: folder, layout: .saelens, hook: hook, block: block, inputSize: d, latents: F, activation: activation,
            subtractsDecoderBias: applyBDec, inputNormalization: norm, file: file, encoder: encoder, decoder: decoder,
            encoderBias: bEnc, decoderBias: bDec, threshold: threshold, magnitudeScale: scale, magnitudeBias: bMag)
    }

    /// Latents and input width from the encoder matrix ([latents, d] or [d, latents]), checked
    /// against the bounds and against `d_in` and the latent count of cfg.json where given (0 = unset).
    static func encoderSizes(_ file: SafeTensorsFile, _ name: String, latentsFirst: Bool, config o: JSONObject,
                             latentsKey: String, folder: String) throws -> (latents: Int, inputSize: Int) {
        guard let enc = file.tensor(named: name), enc.shape.count == 2 else {
            throw SAEError.badTensor(path: folder, tensor: name, reason: "is missing or not a matrix")
        }
        let F = latentsFirst ? enc.shape[0] : enc.shape[1], d = latentsFirst ? enc.shape[1] : enc.shape[0]
        guard d >= 1, d <= SparseAutoencoder.maxInputSize, F >= 1, F <= SparseAutoencoder.maxLatents else {
            throw SAEError.badConfig(path: folder, reason: "\(d) inputs × \(F) latents is outside 1...\(SparseAutoencoder.maxInputSize) × 1...\(SparseAutoencoder.maxLatents)")
        }
        if let din = try size(o, "d_in", folder: folder, max: SparseAutoencoder.maxInputSize), din != d {
            throw SAEError.badConfig(path: folder, reason: "d_in is \(din) but \(name) has \(d) inputs")
        }
        if let n = try size(o, latentsKey, folder: folder, max: SparseAutoencoder.maxLatents), n != 0, n != F {
            throw SAEError.badConfig(path: folder, reason: "\(latentsKey) is \(n) but \(name) has \(F) latents")
        }
        return (F, d)
    }

    static func isDirectory(_ p: String) -> Bool {
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func fileExists(_ p: String) -> Bool {
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}
