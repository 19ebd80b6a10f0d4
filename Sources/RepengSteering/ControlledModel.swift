// Control applied to a resident model (repeng 0.4's ControlModel / set_control / reset):
// coefficient × direction added to the output of each controlled block, at every position.
import Foundation
import RepengEngine

/// Why control could not be set.
public enum ControlError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The coefficient is NaN or infinite.
    case nonFiniteCoefficient(Float)
    /// The vector's directions do not have the model's hidden size.
    case hiddenSizeMismatch(vector: Int, model: Int)
    /// A requested layer has no direction in the vector.
    case missingLayer(Int)
    /// coefficient × direction overflowed, or the vector holds non-finite values.
    case nonFiniteControl(layer: Int)
    /// The vector is inconsistent.
    case invalidVector(ControlVectorError)
    /// The model has no tokenizer, so text prompts cannot be encoded.
    case noTokenizer
    /// The vector holds SAE feature weights (`trainWithSAE(…, decode: false)`), not hidden-state directions.
    case featureSpace(String)

    public var description: String {
        switch self {
        case .nonFiniteCoefficient(let c): return "control coefficient must be finite, got \(c)"
        case let .hiddenSizeMismatch(v, m):
            return "control vector has \(v)-dimensional directions but the model's hidden size is \(m); it was made for another model"
        case .missingLayer(let l): return "control vector has no direction for block \(l)"
        case .nonFiniteControl(let l): return "coefficient × direction is not finite at block \(l)"
        case .invalidVector(let e): return "invalid control vector: \(e)"
        case .noTokenizer: return "the model has no tokenizer"
        case .featureSpace(let f):
            return "control vector holds SAE feature weights (\(f)), not hidden-state directions; train it without keeping features to steer with it"
        }
    }
}

extension ControlVector {
    /// The engine steering that applies `coefficient × direction` to each selected block
    /// (repeng's `set_control(vector, coeff, normalize=…)`).
    ///
    /// - `layers`: blocks to control (negative ids count from the end); nil = every layer of the
    ///   vector. A requested layer the vector lacks is an error (repeng raises `KeyError`).
    /// - A model-type mismatch is not refused (see `compatibilityWarnings(for:)`).
    /// - All-zero layers (coefficient 0, `v * 0`, `v - v`) are left out, so such control is
    ///   bit-identical to none.
    public func steering(
        for model: any LanguageModel, coefficient: Float, layers: [Int]? = nil, normalize: Bool = false
    ) throws -> Steering {
        guard coefficient.isFinite else { throw ControlError.nonFiniteCoefficient(coefficient) }
        if let f = metadata.featureSpace { throw ControlError.featureSpace(f) }
        let size: Int?
        do { size = try validate() } catch let e as ControlVectorError { throw ControlError.invalidVector(e) }
        let d = model.config.hiddenSize
        if let s = size, s != d { throw ControlError.hiddenSizeMismatch(vector: s, model: d) }
        var blocks: [Int] = []
        if let layers {
            for l in layers {
                let b = try model.config.blockIndex(l)
                guard directions[b] != nil else { throw ControlError.missingLayer(b) }
                if !blocks.contains(b) { blocks.append(b) }
            }
        } else {
            for b in self.layers {
                blocks.append(try model.config.blockIndex(b))
            }
        }
        var vectors: [Int: [Float]] = [:]
        for b in blocks {
            guard let dir = directions[b] else { continue }
            let v = dir.map { coefficient * $0 }
            guard v.allSatisfy({ $0.isFinite }) else { throw ControlError.nonFiniteControl(layer: b) }
            if v.allSatisfy({ $0 == 0 }) { continue }
            vectors[b] = v
        }
        return Steering(vectors: vectors, normalize: normalize)
    }

    /// Reasons to doubt this vector suits `model` that do not prevent applying it (repeng only
    /// warns on a model-type mismatch), followed by the vector's own `warnings`.
    public func compatibilityWarnings(for model: any LanguageModel) -> [String] {
        var out: [String] = []
        if modelType != model.config.architecture {
            out.append("control vector is for model type '\(modelType)' but the model is '\(model.config.architecture)'")
        }
        return out + warnings
    }
}

/// Result of one controlled generation.
public struct ControlledGeneration: Sendable {
    /// Generated text (special tokens skipped).
    public var text: String
    /// Generated token ids.
    public var tokens: [Int32]
    public var finish: FinishReason
}

/// A resident model with switchable control (repeng's `ControlModel`). Thread-safe: control
/// changes and generations are serialized by an internal lock; a generation uses the control
/// that was set when it started.
public final class ControlledModel: @unchecked Sendable {
    public let model: any LanguageModel
    private let lock = NSLock()
    private var prepared: PreparedSteering?
    private var current: Steering?
    private var warningList: [String] = []
    private let workspace = ForwardWorkspace()

    public init(model: any LanguageModel) {
        self.model = model
    }

    /// The steering in force (nil after `reset()` or before any `setControl`).
    public var steering: Steering? { lock.withLock { current } }

    /// Warnings from the last `setControl` (e.g. a model-type mismatch).
    public var warnings: [String] { lock.withLock { warningList } }

    /// Applies `coefficient × vector` to the vector's layers (or to `layers`), replacing any
    /// earlier control. `normalize` rescales each controlled position back to its norm before
    /// control. See `ControlVector.steering(for:coefficient:layers:normalize:)`.
    public func setControl(_ vector: ControlVector, coefficient: Float, layers: [Int]? = nil, normalize: Bool = false) throws {
        let s = try vector.steering(for: model, coefficient: coefficient, layers: layers, normalize: normalize)
        let p = try model.prepareSteering(s)
        let w = vector.compatibilityWarnings(for: model)
        lock.withLock {
            current = s
            prepared = p
            warningList = w
        }
    }

    /// Applies already-built steering.
    public func setSteering(_ steering: Steering) throws {
        let p = try model.prepareSteering(steering)
        lock.withLock {
            current = steering
            prepared = p
            warningList = []
        }
    }

    /// Removes control: outputs are again those of the plain model.
    public func reset() {
        lock.withLock {
            current = nil
            prepared = nil
            warningList = []
        }
    }

    /// Generates from token ids under the current control. `onEvent` sees every step; return
    /// false from it to stop.
    public func generate(
        tokens prompt: [Int32], maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
        stopStrings: [String] = [], onEvent: (GenerationEvent) -> Bool = { _ in true }
    ) throws -> ControlledGeneration {
        lock.lock()
        defer { lock.unlock() }
        let request = GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling,
                                        stopStrings: stopStrings, steering: prepared)
        var text = ""
        let (ids, finish) = try model.generate(request, workspace: workspace) { ev in
            text += ev.text
            return onEvent(ev)
        }
        return ControlledGeneration(text: text, tokens: ids, finish: finish)
    }

    /// Generates from a text prompt, encoded with the tokenizer's default special tokens
    /// (apply a chat template to the prompt yourself when the model expects one).
    public func generate(
        prompt: String, maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
        stopStrings: [String] = [], onEvent: (GenerationEvent) -> Bool = { _ in true }
    ) throws -> ControlledGeneration {
        guard let tok = model.tokenizer else { throw ControlError.noTokenizer }
        let ids = tok.encode(prompt, addSpecial: true)
        return try generate(tokens: ids, maxTokens: maxTokens, sampling: sampling, stopStrings: stopStrings, onEvent: onEvent)
    }

    /// Generates from a laid-out chat prompt (`ChatLayout.prompt`), encoded as the layout says.
    public func generate(
        prompt: ChatPrompt, maxTokens: Int = 128, sampling: SamplingParameters = .greedy,
        stopStrings: [String] = [], onEvent: (GenerationEvent) -> Bool = { _ in true }
    ) throws -> ControlledGeneration {
        guard let tok = model.tokenizer else { throw ControlError.noTokenizer }
        return try generate(tokens: prompt.encode(with: tok), maxTokens: maxTokens, sampling: sampling,
                            stopStrings: stopStrings, onEvent: onEvent)
    }
}
