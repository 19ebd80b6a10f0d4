// Control vectors (repeng 0.4 `ControlVector`): one direction per block, with metadata and
// repeng's arithmetic (union of layers, missing layer = zero, model-type mismatch warns).
import Foundation

/// How a control vector's directions were found.
public enum TrainingMethod: String, Sendable, Codable, CaseIterable {
    /// First principal component of the pair differences (repeng's default).
    case pcaDiff = "pca_diff"
    /// First principal component of the hidden states centred on each pair's mean.
    case pcaCenter = "pca_center"
    /// The mean pair difference scaled to unit length (not in repeng; see `ControlVector.train`).
    case meanDiff = "mean_diff"
}

/// Information about a control vector beyond its directions. Every field is optional so that
/// vectors from files that carry only repeng's keys load unchanged.
public struct ControlVectorMetadata: Sendable, Equatable, Codable {
    /// Length of every direction (the model's hidden size).
    public var hiddenSize: Int?
    /// Number of blocks of the model the vector was trained on.
    public var blockCount: Int?
    /// Training method name (`TrainingMethod.rawValue`, or any string from a file).
    public var method: String?
    /// Name of the model the vector was trained on (`general.name` of the model file).
    public var modelName: String?
    /// One-line human-readable summary of the training run.
    public var trainingSummary: String?
    /// Set when the directions are in a sparse autoencoder's feature space (one weight per
    /// latent, `trainWithSAE(…, decode: false)`), not hidden states: names the SAEs. Such a
    /// vector cannot steer a model until decoded.
    public var featureSpace: String?

    public init(hiddenSize: Int? = nil, blockCount: Int? = nil, method: String? = nil,
                modelName: String? = nil, trainingSummary: String? = nil, featureSpace: String? = nil) {
        self.hiddenSize = hiddenSize
        self.blockCount = blockCount
        self.method = method
        self.modelName = modelName
        self.trainingSummary = trainingSummary
        self.featureSpace = featureSpace
    }

    /// Fields equal on both sides are kept, others dropped (for the result of `a ± b`).
    func merged(with other: ControlVectorMetadata, hiddenSize: Int?) -> ControlVectorMetadata {
        ControlVectorMetadata(
            hiddenSize: hiddenSize,
            blockCount: blockCount == other.blockCount ? blockCount : (blockCount ?? other.blockCount),
            method: method == other.method ? method : nil,
            modelName: modelName == other.modelName ? modelName : nil,
            trainingSummary: trainingSummary == other.trainingSummary ? trainingSummary : nil,
            featureSpace: featureSpace ?? other.featureSpace)
    }
}

/// Why a control-vector operation failed.
public enum ControlVectorError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The two operands have directions of different lengths (vectors for different models).
    case hiddenSizeMismatch(lhs: Int, rhs: Int)
    /// Directions of one vector have different lengths.
    case inconsistentDirections(layer: Int, expected: Int, found: Int)
    /// A direction is keyed by a negative block index (directions are keyed 0 ..< blockCount).
    case negativeLayer(Int)
    /// A direction has no values.
    case emptyDirection(layer: Int)

    public var description: String {
        switch self {
        case let .hiddenSizeMismatch(l, r):
            return "control vectors have different hidden sizes (\(l) and \(r)); they belong to different models and cannot be combined"
        case let .inconsistentDirections(layer, e, f):
            return "direction for layer \(layer) has \(f) values but the vector's other directions have \(e)"
        case .negativeLayer(let l):
            return "direction keyed by negative layer \(l); control vectors key directions by block index (0-based, non-negative)"
        case .emptyDirection(let l):
            return "direction for layer \(l) is empty"
        }
    }
}

/// A control vector: for some blocks of a model, a direction in its residual stream
/// (repeng's `ControlVector`). Applying it with coefficient c adds c × direction to the
/// output of each of those blocks.
///
/// Directions are keyed by block index (0-based; layer i is the output of block i). Trained
/// directions have unit length; arithmetic results need not.
///
/// Arithmetic follows repeng: `a + b` and `a - b` cover the union of both vectors' layers, a
/// layer missing on one side counting as zero; `-a`, `a * k`, `k * a`, `a / k` act per layer.
/// Combining vectors of different model types keeps the left operand's type and records a
/// warning in `warnings`. Combining vectors whose directions differ in length is an error: the
/// throwing `adding(_:)` / `subtracting(_:)` report it, while the operators never trap and
/// instead return the left operand unchanged with a warning.
public struct ControlVector: Sendable, Equatable {
    /// The model type (`general.architecture` of the model, e.g. "llama"); repeng's `model_type`
    /// and the GGUF `controlvector.model_hint`.
    public var modelType: String
    /// Block index (≥ 0) → direction (`hiddenSize` values).
    public var directions: [Int: [Float]]
    /// Hidden size, method, model name and a training summary, where known.
    public var metadata: ControlVectorMetadata
    /// Problems noticed while building, loading or combining this vector (model-type
    /// mismatches, unusual file contents). Not part of equality and never saved.
    public var warnings: [String]

    public init(modelType: String, directions: [Int: [Float]], metadata: ControlVectorMetadata = ControlVectorMetadata(),
                warnings: [String] = []) {
        self.modelType = modelType
        self.directions = directions
        self.metadata = metadata
        if self.metadata.hiddenSize == nil, let first = directions.values.first {
            self.metadata.hiddenSize = first.count
        }
        self.warnings = warnings
    }

    /// Equality of model type, directions (element-wise `==`) and metadata; warnings are ignored.
    public static func == (a: ControlVector, b: ControlVector) -> Bool {
        a.modelType == b.modelType && a.directions == b.directions && a.metadata == b.metadata
    }

    /// Controlled blocks, ascending.
    public var layers: [Int] { directions.keys.sorted() }

    /// The common length of the directions, or `metadata.hiddenSize` when there are none.
    public var hiddenSize: Int? { directions.values.first?.count ?? metadata.hiddenSize }

    /// Checks that layers are non-negative and every direction has the same, non-zero length;
    /// returns that length (nil for a vector without directions).
    @discardableResult
    public func validate() throws -> Int? {
        var size: Int?
        for layer in layers {
            guard layer >= 0 else { throw ControlVectorError.negativeLayer(layer) }
            let n = directions[layer]?.count ?? 0
            guard n > 0 else { throw ControlVectorError.emptyDirection(layer: layer) }
            if let s = size, s != n { throw ControlVectorError.inconsistentDirections(layer: layer, expected: s, found: n) }
            size = n
        }
        return size
    }

    /// The norm of each direction.
    public var norms: [Int: Float] {
        directions.mapValues { v in Float(v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) }
    }

    /// A copy keeping only the given blocks (those the vector has).
    public func keeping(layers keep: some Sequence<Int>) -> ControlVector {
        var out = self
        let set = Set(keep)
        out.directions = directions.filter { set.contains($0.key) }
        return out
    }

    /// A copy without the given blocks.
    public func removing(layers drop: some Sequence<Int>) -> ControlVector {
        var out = self
        for l in drop { out.directions[l] = nil }
        return out
    }

    // MARK: Arithmetic

    private static func appendingUnique(_ a: [String], _ b: [String]) -> [String] {
        var seen = Set<String>()
        return (a + b).filter { seen.insert($0).inserted }
    }

    /// `self + sign · other` over the union of layers.
    private func combined(with other: ControlVector, negateOther: Bool) throws -> ControlVector {
        let lhsSize = try validate(), rhsSize = try other.validate()
        let size: Int?
        switch (lhsSize ?? metadata.hiddenSize, rhsSize ?? other.metadata.hiddenSize) {
        case let (l?, r?):
            guard l == r else { throw ControlVectorError.hiddenSizeMismatch(lhs: l, rhs: r) }
            size = l
        case let (l, r): size = l ?? r
        }
        var warnings = Self.appendingUnique(self.warnings, other.warnings)
        if modelType != other.modelType {
            let w = "combining control vectors for different model types ('\(modelType)' and '\(other.modelType)'); the result keeps '\(modelType)'"
            warnings = Self.appendingUnique(warnings, [w])
        }
        var dirs = directions
        for (layer, v) in other.directions {
            if let mine = dirs[layer] {
                var out = mine
                if negateOther {
                    for i in out.indices { out[i] = mine[i] + -v[i] }
                } else {
                    for i in out.indices { out[i] = mine[i] + v[i] }
                }
                dirs[layer] = out
            } else {
                dirs[layer] = negateOther ? v.map { -$0 } : v
            }
        }
        return ControlVector(modelType: modelType, directions: dirs,
                             metadata: metadata.merged(with: other.metadata, hiddenSize: size), warnings: warnings)
    }

    /// `self + other` (union of layers, a missing layer counting as zero). Throws
    /// `ControlVectorError.hiddenSizeMismatch` when directions differ in length; a model-type
    /// mismatch only adds a warning.
    public func adding(_ other: ControlVector) throws -> ControlVector {
        try combined(with: other, negateOther: false)
    }

    /// `self - other`, i.e. `self + (-other)` as repeng computes it.
    public func subtracting(_ other: ControlVector) throws -> ControlVector {
        try combined(with: other, negateOther: true)
    }

    /// Every direction multiplied by `k` (element-wise, in Float).
    public func scaled(by k: Float) -> ControlVector {
        var out = self
        out.directions = directions.mapValues { v in v.map { $0 * k } }
        if !k.isFinite { out.warnings = Self.appendingUnique(out.warnings, ["control vector scaled by non-finite \(k)"]) }
        return out
    }

    /// Every direction divided by `k` (element-wise division, as repeng's `__truediv__`).
    public func divided(by k: Float) -> ControlVector {
        var out = self
        out.directions = directions.mapValues { v in v.map { $0 / k } }
        if k == 0 || !k.isFinite {
            out.warnings = Self.appendingUnique(out.warnings, ["control vector divided by \(k); its values are no longer finite"])
        }
        return out
    }

    private static func operatorResult(_ lhs: ControlVector, _ body: () throws -> ControlVector) -> ControlVector {
        do {
            return try body()
        } catch {
            var out = lhs
            out.warnings = appendingUnique(out.warnings, ["operation ignored: \(error)"])
            return out
        }
    }

    /// `adding(_:)`; on a size mismatch returns `lhs` unchanged with a warning (never traps).
    public static func + (lhs: ControlVector, rhs: ControlVector) -> ControlVector {
        operatorResult(lhs) { try lhs.adding(rhs) }
    }

    /// `subtracting(_:)`; on a size mismatch returns `lhs` unchanged with a warning (never traps).
    public static func - (lhs: ControlVector, rhs: ControlVector) -> ControlVector {
        operatorResult(lhs) { try lhs.subtracting(rhs) }
    }

    /// Every direction negated.
    public static prefix func - (v: ControlVector) -> ControlVector {
        var out = v
        out.directions = v.directions.mapValues { d in d.map { -$0 } }
        return out
    }

    public static func * (v: ControlVector, k: Float) -> ControlVector { v.scaled(by: k) }
    public static func * (k: Float, v: ControlVector) -> ControlVector { v.scaled(by: k) }
    public static func / (v: ControlVector, k: Float) -> ControlVector { v.divided(by: k) }
}
