// Errors raised while loading models and running forward passes.

/// Why a model could not be loaded or a forward pass could not run.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case unsupportedArchitecture(String)
    /// A Hugging Face folder whose config.json `model_type` no family reads.
    case unsupportedHFModelType(String)
    case unsupported(String)
    case badConfig(String)
    case missingTensor(String)
    case tensorShape(name: String, expected: [Int], found: [Int])
    case tensorType(name: String, type: String)
    case tokenOutOfRange(id: Int32, vocabSize: Int)
    case contextOverflow(needed: Int, limit: Int)
    case layerOutOfRange(layer: Int, blockCount: Int)
    case hiddenIndexOutOfRange(index: Int, max: Int)
    case steeringSize(layer: Int, expected: Int, found: Int)
    case emptySequence
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a):
            return "unsupported model architecture '\(a)' (supported: \(Architectures.supported.joined(separator: ", ")))"
        case .unsupportedHFModelType(let t):
            return "unsupported model_type '\(quoted(t))' in config.json (supported: \(Architectures.supportedHF.joined(separator: ", ")))"
        case .unsupported(let what): return "unsupported: \(what)"
        case .badConfig(let m): return "bad model configuration: \(m)"
        case .missingTensor(let n): return "model file has no tensor '\(n)'"
        case .tensorShape(let n, let e, let f): return "tensor '\(n)' has shape \(f), expected \(e)"
        case .tensorType(let n, let t): return "tensor '\(n)' has type \(t), which this engine cannot decode"
        case .tokenOutOfRange(let id, let v): return "token id \(id) is outside the vocabulary (0..<\(v))"
        case .contextOverflow(let n, let l): return "sequence needs \(n) positions but the model's context is \(l)"
        case .layerOutOfRange(let l, let b): return "layer \(l) is out of range for a model with \(b) blocks (use 0..<\(b) or -\(b)...-1)"
        case .hiddenIndexOutOfRange(let i, let m): return "hidden-state index \(i) is out of range 0...\(m)"
        case .steeringSize(let l, let e, let f): return "steering vector for layer \(l) has \(f) values, the model's hidden size is \(e)"
        case .emptySequence: return "a sequence has no tokens"
        case .invalidArgument(let m): return m
        }
    }
}
