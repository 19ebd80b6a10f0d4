// Per-model control (what SetControl set): the named terms, layers and normalize flag, the
// steering they resolve to, and its durable copy in STATE_DIR/control.json.
import Foundation
import RepengEngine
import RepengSteering

/// A control as the user wrote it: vector names with coefficients, layers, normalize.
public struct ControlSpec: Codable, Sendable, Equatable {
    public struct Term: Codable, Sendable, Equatable {
        public var vector: String
        public var coefficient: Float
        public init(vector: String, coefficient: Float) {
            self.vector = vector
            self.coefficient = coefficient
        }
    }
    public var terms: [Term]
    /// Blocks to control as given (negative ids count from the end); nil = each vector's own.
    public var layers: [Int]?
    public var normalize: Bool

    public init(terms: [Term], layers: [Int]? = nil, normalize: Bool = false) {
        self.terms = terms
        self.layers = layers
        self.normalize = normalize
    }
}

/// A control resolved against a model: ready for the forward pass.
public struct ResolvedControl: @unchecked Sendable {
    public var spec: ControlSpec
    public var steering: Steering
    public var prepared: PreparedSteering?
    public var warnings: [String]
    /// The version of each vector file it was resolved from; a newer version of one of them
    /// (the file changed on disk) makes the model's control resolve again at the next use.
    public var versions: [String: Int] = [:]
    /// Controlled blocks, ascending.
    public var blocks: [Int] { prepared?.steeredBlocks ?? [] }
}

/// Resolves control specs: checks names, coefficients and layers and sums the terms.
public struct ControlResolver: Sendable {
    public let store: VectorStore
    public let limits: DaemonLimits

    /// The steering for `spec` on `model`: Σ coefficient × direction over the terms, on the
    /// spec's layers (or each vector's own). A single term gives exactly the steering of
    /// `ControlVector.steering(for:coefficient:layers:normalize:)`.
    public func resolve(_ spec: ControlSpec, model: any LanguageModel) throws -> ResolvedControl {
        guard spec.terms.count <= limits.maxControlTerms else {
            throw DaemonError.invalidArgument("a control has at most \(limits.maxControlTerms) terms, got \(spec.terms.count)")
        }
        let L = model.config.blockCount
        if let layers = spec.layers {
            guard layers.count <= 4 * L else { throw DaemonError.invalidArgument("too many layers (\(layers.count)) for a model with \(L) blocks") }
            for l in layers where l < -L || l >= L {
                throw DaemonError.invalidArgument("layer \(l) is out of range for model '\(model.config.name)' with \(L) blocks (use 0..<\(L) or -\(L)...-1)")
            }
        }
        var sum: [Int: [Float]] = [:]
        var warnings: [String] = []
        var versions: [String: Int] = [:]
        for term in spec.terms {
            try VectorName.check(term.vector)
            guard term.coefficient.isFinite else {
                throw DaemonError.invalidArgument("coefficient of '\(term.vector)' must be a finite number, got \(term.coefficient)")
            }
            guard abs(term.coefficient) <= limits.maxCoefficient else {
                throw DaemonError.invalidArgument("coefficient of '\(term.vector)' is \(term.coefficient); its magnitude must be at most \(limits.maxCoefficient) (typical values are 0.1 to 20)")
            }
            let (vector, version) = try store.loadVersioned(term.vector)
            versions[term.vector] = version
            if let f = vector.metadata.featureSpace {
                throw DaemonError.unusableVector(name: term.vector, reason: ControlError.featureSpace(f).description)
            }
            if let h = vector.hiddenSize, h != model.config.hiddenSize {
                throw DaemonError.invalidArgument("vector '\(term.vector)' has hidden size \(h) but model '\(model.config.name)' has \(model.config.hiddenSize); it was trained for another model")
            }
            let s: Steering
            do {
                s = try vector.steering(for: model, coefficient: term.coefficient, layers: spec.layers, normalize: spec.normalize)
            } catch let e as ControlError {
                throw DaemonError.invalidArgument("vector '\(term.vector)': \(e)")
            }
            for w in vector.compatibilityWarnings(for: model) where !warnings.contains(w) { warnings.append(w) }
            for (layer, v) in s.vectors {
                if var acc = sum[layer] {
                    for i in acc.indices { acc[i] += v[i] }
                    guard acc.allSatisfy({ $0.isFinite }) else {
                        throw DaemonError.invalidArgument("the summed control is not finite at block \(layer); use smaller coefficients")
                    }
                    sum[layer] = acc
                } else {
                    sum[layer] = v
                }
            }
        }
        let steering = Steering(vectors: sum, normalize: spec.normalize)
        let prepared = spec.terms.isEmpty ? nil : try model.prepareSteering(steering)
        return ResolvedControl(spec: spec, steering: steering, prepared: prepared, warnings: warnings, versions: versions)
    }
}

/// The file STATE_DIR/control.json: model name → control spec.
struct ControlStateFile: Codable {
    var version = 1
    var models: [String: ControlSpec] = [:]
}

/// Reads and writes the persisted control of every model.
final class ControlStateStore: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var state = ControlStateFile()

    init(stateDir: String) {
        path = stateDir + "/control.json"
    }

    /// Loads the file; a missing file is an empty state, a malformed one an error.
    func load() throws -> [String: ControlSpec] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let s = try JSONDecoder().decode(ControlStateFile.self, from: data)
            lock.withLock { state = s }
            return s.models
        } catch {
            throw DaemonError.internalFailure("cannot read control state \(path): \(error)")
        }
    }

    /// Records `spec` (nil removes it) for `model` and writes the file durably.
    func set(_ spec: ControlSpec?, for model: String) throws {
        try lock.withLock {
            var s = state
            s.models[model] = spec
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try enc.encode(s)
            try DurableFile.write(Array(data), to: path, replace: true, mode: 0o600)
            state = s
        }
    }
}
