// Control-vector files: GGUF in the layout of repeng 0.4's export_gguf / llama.cpp's
// --control-vector loader (ggml docs/gguf.md, GGUF v3), and a JSON format with the same
// content. See docs/vector-formats.md.
import Foundation
import RepengEngine

/// Why a control-vector file could not be read or written.
public enum VectorFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be read or written.
    case io(path: String, reason: String)
    /// The GGUF structure itself is malformed.
    case gguf(GGUFError)
    /// `controlvector.model_hint` is absent (repeng refuses such files too).
    case missingModelHint
    /// A metadata key has a value of the wrong type.
    case wrongType(key: String, expected: String, found: String)
    /// A `direction.*` tensor name whose suffix is not a non-negative decimal integer.
    case badDirectionName(String)
    /// A layer number beyond `VectorFileLimits.maxLayer`, or beyond the file's declared block count.
    case layerOutOfRange(tensor: String, layer: Int, limit: Int)
    /// Two tensors name the same layer (e.g. `direction.5` and `direction.05`).
    case duplicateLayer(Int)
    /// A direction tensor is not F32.
    case tensorType(tensor: String, type: String)
    /// A direction tensor is not one-dimensional.
    case tensorShape(tensor: String, dims: [Int])
    /// A direction tensor has no values.
    case emptyTensor(String)
    /// Directions of different lengths, or a length that contradicts `controlvector.n_embd`.
    case lengthMismatch(tensor: String, expected: Int, found: Int)
    /// A direction value is NaN or infinite.
    case nonFinite(layer: Int, index: Int)
    /// The file has no directions.
    case noDirections
    /// Block 0 cannot be written: llama.cpp rejects files with `direction.0`.
    case blockZero
    /// The vector is inconsistent (e.g. directions of different lengths).
    case invalidVector(ControlVectorError)
    /// The JSON text is malformed or does not follow the format (`reason` says where).
    case json(reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "cannot access control vector file \(path): \(reason)"
        case .gguf(let e): return "control vector file is not valid GGUF: \(e)"
        case .missingModelHint: return "control vector file has no controlvector.model_hint"
        case let .wrongType(key, expected, found): return "\(key) must be \(expected), found \(found)"
        case .badDirectionName(let n): return "tensor '\(n)' is not named direction.<non-negative integer>"
        case let .layerOutOfRange(t, l, limit): return "tensor '\(t)' names layer \(l), beyond the limit \(limit)"
        case .duplicateLayer(let l): return "two tensors hold the direction for layer \(l)"
        case let .tensorType(t, type): return "tensor '\(t)' has type \(type); directions must be F32"
        case let .tensorShape(t, dims): return "tensor '\(t)' has shape \(dims); directions must be one-dimensional"
        case .emptyTensor(let t): return "tensor '\(t)' has no values"
        case let .lengthMismatch(t, e, f): return "tensor '\(t)' has \(f) values, expected \(e)"
        case let .nonFinite(l, i): return "direction for layer \(l) has a NaN or infinite value at index \(i)"
        case .noDirections: return "control vector has no directions"
        case .blockZero:
            return "control vector has a direction for block 0, which llama.cpp's loader rejects; drop it first (vector.removing(layers: [0]))"
        case .invalidVector(let e): return "invalid control vector: \(e)"
        case .json(let reason): return "invalid control vector JSON: \(reason)"
        }
    }
}

/// Bounds applied to control-vector files.
public enum VectorFileLimits {
    /// Largest layer number accepted in a file.
    public static let maxLayer = 65_535
    /// Largest JSON vector file read (512 MiB).
    public static let maxJSONBytes = 512 << 20
}

/// GGUF metadata keys of control-vector files.
public enum ControlVectorKeys {
    public static let architecture = "general.architecture"
    /// The `general.architecture` value of control-vector files.
    public static let architectureValue = "controlvector"
    public static let modelHint = "controlvector.model_hint"
    public static let layerCount = "controlvector.layer_count"
    public static let hiddenSize = "controlvector.n_embd"
    public static let blockCount = "controlvector.block_count"
    public static let method = "controlvector.method"
    public static let modelName = "controlvector.model_name"
    public static let trainingSummary = "controlvector.training"
    /// Present on vectors in an SAE's feature space (this project's key; names the SAEs).
    public static let featureSpace = "controlvector.sae_features"
    /// Prefix of direction tensor names: `direction.<block index>`.
    public static let directionPrefix = "direction."
}

/// The GGUF type name of a value, for messages.
private func typeName(_ v: GGUFValue) -> String {
    switch v {
    case .uint8: return "uint8"
    case .int8: return "int8"
    case .uint16: return "uint16"
    case .int16: return "int16"
    case .uint32: return "uint32"
    case .int32: return "int32"
    case .float32: return "float32"
    case .bool: return "bool"
    case .string: return "string"
    case .uint64: return "uint64"
    case .int64: return "int64"
    case .float64: return "float64"
    case .array: return "array"
    }
}

extension ControlVector {
    // MARK: GGUF

    /// The vector as a GGUF file: `general.architecture` = "controlvector",
    /// `controlvector.model_hint`, `controlvector.layer_count` (uint32), then this project's
    /// keys (`controlvector.n_embd`, `.block_count`, `.method`, `.model_name`, `.training`,
    /// those known), and one F32 1-D tensor `direction.<block>` per layer in ascending order.
    /// Throws `.blockZero` for a direction at block 0, `.noDirections` for an empty vector,
    /// `.nonFinite` for NaN/infinity.
    public func ggufBytes() throws -> [UInt8] {
        let size: Int?
        do { size = try validate() } catch let e as ControlVectorError { throw VectorFileError.invalidVector(e) }
        guard let n = size else { throw VectorFileError.noDirections }
        guard directions[0] == nil else { throw VectorFileError.blockZero }
        try checkFinite()
        var w = GGUFWriter()
        w.add(key: ControlVectorKeys.architecture, .string(ControlVectorKeys.architectureValue))
        w.add(key: ControlVectorKeys.modelHint, .string(modelType))
        w.add(key: ControlVectorKeys.layerCount, .uint32(UInt32(clamping: directions.count)))
        w.add(key: ControlVectorKeys.hiddenSize, .uint32(UInt32(clamping: n)))
        if let b = metadata.blockCount { w.add(key: ControlVectorKeys.blockCount, .uint32(UInt32(clamping: b))) }
        if let m = metadata.method { w.add(key: ControlVectorKeys.method, .string(m)) }
        if let m = metadata.modelName { w.add(key: ControlVectorKeys.modelName, .string(m)) }
        if let s = metadata.trainingSummary { w.add(key: ControlVectorKeys.trainingSummary, .string(s)) }
        if let f = metadata.featureSpace { w.add(key: ControlVectorKeys.featureSpace, .string(f)) }
        for layer in layers {
            w.addTensor(name: "\(ControlVectorKeys.directionPrefix)\(layer)", dims: [n], floats: directions[layer] ?? [])
        }
        do { return try w.serialize() } catch { throw VectorFileError.gguf(error) }
    }

    /// Writes `ggufBytes()` to `path`.
    public func exportGGUF(to path: String) throws {
        let bytes = try ggufBytes()
        do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw VectorFileError.io(path: path, reason: error.localizedDescription)
        }
    }

    /// Reads a control vector from a GGUF file (`importGGUF(path:)` for files).
    public init(gguf file: GGUFFile) throws {
        var warnings: [String] = []
        let meta = file.metadata
        switch meta[ControlVectorKeys.architecture] {
        case nil: warnings.append("file has no general.architecture; reading it as a control vector anyway")
        case .string(let a)? where a == ControlVectorKeys.architectureValue: break
        case .string(let a)?: warnings.append("file has general.architecture '\(a)', not 'controlvector'; it may not be a control vector")
        case let v?: warnings.append("general.architecture is a \(typeName(v)), not a string")
        }
        guard let hintValue = meta[ControlVectorKeys.modelHint] else { throw VectorFileError.missingModelHint }
        guard let hint = hintValue.string else {
            throw VectorFileError.wrongType(key: ControlVectorKeys.modelHint, expected: "a string", found: typeName(hintValue))
        }
        func optionalInt(_ key: String) throws -> Int? {
            guard let v = meta[key] else { return nil }
            guard let i = v.int, i >= 0 else {
                throw VectorFileError.wrongType(key: key, expected: "a non-negative integer", found: v.description)
            }
            return i
        }
        func optionalString(_ key: String) throws -> String? {
            guard let v = meta[key] else { return nil }
            guard let s = v.string else { throw VectorFileError.wrongType(key: key, expected: "a string", found: typeName(v)) }
            return s
        }
        var declaredCount: Int?
        if let v = meta[ControlVectorKeys.layerCount] {
            if let i = v.int { declaredCount = i } else {
                warnings.append("\(ControlVectorKeys.layerCount) is a \(typeName(v)), not an integer; ignored")
            }
        }
        let nEmbd = try optionalInt(ControlVectorKeys.hiddenSize)
        let blockCount = try optionalInt(ControlVectorKeys.blockCount)
        let metadata = ControlVectorMetadata(
            hiddenSize: nEmbd, blockCount: blockCount,
            method: try optionalString(ControlVectorKeys.method),
            modelName: try optionalString(ControlVectorKeys.modelName),
            trainingSummary: try optionalString(ControlVectorKeys.trainingSummary),
            featureSpace: try optionalString(ControlVectorKeys.featureSpace))

        let layerLimit = blockCount.map { $0 - 1 } ?? VectorFileLimits.maxLayer
        var directions: [Int: [Float]] = [:]
        var length = nEmbd
        var ignored: [String] = []
        for t in file.tensors {
            guard t.name.hasPrefix(ControlVectorKeys.directionPrefix) else { ignored.append(t.name); continue }
            let suffix = t.name.dropFirst(ControlVectorKeys.directionPrefix.count)
            guard !suffix.isEmpty, suffix.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw VectorFileError.badDirectionName(t.name)
            }
            guard suffix.count <= 9, let layer = Int(suffix), layer <= layerLimit else {
                throw VectorFileError.layerOutOfRange(tensor: t.name, layer: Int(suffix.prefix(18)) ?? Int.max, limit: layerLimit)
            }
            guard directions[layer] == nil else { throw VectorFileError.duplicateLayer(layer) }
            guard t.type == .f32 else { throw VectorFileError.tensorType(tensor: t.name, type: t.type.description) }
            guard t.dims.count >= 1, t.dims.dropFirst().allSatisfy({ $0 == 1 }) else {
                throw VectorFileError.tensorShape(tensor: t.name, dims: t.dims)
            }
            let n = t.dims[0]
            guard n > 0 else { throw VectorFileError.emptyTensor(t.name) }
            if let expected = length, expected != n {
                throw VectorFileError.lengthMismatch(tensor: t.name, expected: expected, found: n)
            }
            length = n
            let raw = file.tensorData(t)
            guard raw.count == n * 4 else { throw VectorFileError.lengthMismatch(tensor: t.name, expected: n * 4, found: raw.count) }
            var v = [Float](repeating: 0, count: n)
            for i in 0..<n {
                let bits = UInt32(raw[4 * i]) | UInt32(raw[4 * i + 1]) << 8 | UInt32(raw[4 * i + 2]) << 16 | UInt32(raw[4 * i + 3]) << 24
                let f = Float(bitPattern: bits)
                guard f.isFinite else { throw VectorFileError.nonFinite(layer: layer, index: i) }
                v[i] = f
            }
            directions[layer] = v
        }
        guard !directions.isEmpty else { throw VectorFileError.noDirections }
        if !ignored.isEmpty {
            warnings.append("ignored tensors that are not directions (llama.cpp rejects such files): \(ignored.joined(separator: ", "))")
        }
        if let c = declaredCount, c != directions.count {
            warnings.append("\(ControlVectorKeys.layerCount) is \(c) but the file has \(directions.count) directions")
        }
        if directions[0] != nil {
            warnings.append("file has direction.0 (block 0); llama.cpp rejects such files")
        }
        self.init(modelType: hint, directions: directions, metadata: metadata, warnings: warnings)
    }

    /// Reads a control vector from GGUF bytes.
    public init(ggufBytes bytes: [UInt8]) throws {
        let file: GGUFFile
        do { file = try GGUFFile(bytes: bytes) } catch { throw VectorFileError.gguf(error) }
        try self.init(gguf: file)
    }

    /// Reads a control vector from a GGUF file written by this library, by repeng's
    /// `export_gguf` or by llama.cpp's `llama-cvector-generator` (whose `direction.<k>` holds
    /// what it read at block k−1's output; see docs/vector-formats.md). Problems that do not
    /// prevent use (wrong architecture, stray tensors, a wrong `layer_count`) go to `warnings`.
    public static func importGGUF(path: String) throws -> ControlVector {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw VectorFileError.gguf(error) }
        return try ControlVector(gguf: file)
    }

    private func checkFinite() throws {
        for layer in layers {
            if let i = directions[layer]?.firstIndex(where: { !$0.isFinite }) { throw VectorFileError.nonFinite(layer: layer, index: i) }
        }
    }

    // MARK: JSON

    /// The vector as JSON (format "repeng-control-vector", version 1; see docs/vector-formats.md).
    /// Values are written as the shortest decimal that reads back as the same double, which is
    /// the exact Float value, so every Float bit pattern survives a round trip.
    public func jsonData() throws -> Data {
        let size: Int?
        do { size = try validate() } catch let e as ControlVectorError { throw VectorFileError.invalidVector(e) }
        guard let n = size else { throw VectorFileError.noDirections }
        try checkFinite()
        var s = "{\n"
        s += "  \"format\": \"repeng-control-vector\",\n"
        s += "  \"version\": 1,\n"
        s += "  \"model_type\": \(jsonString(modelType)),\n"
        s += "  \"n_embd\": \(n),\n"
        if let b = metadata.blockCount { s += "  \"block_count\": \(b),\n" }
        if let m = metadata.method { s += "  \"method\": \(jsonString(m)),\n" }
        if let m = metadata.modelName { s += "  \"model_name\": \(jsonString(m)),\n" }
        if let t = metadata.trainingSummary { s += "  \"training\": \(jsonString(t)),\n" }
        if let f = metadata.featureSpace { s += "  \"sae_features\": \(jsonString(f)),\n" }
        s += "  \"directions\": {"
        for (k, layer) in layers.enumerated() {
            s += k == 0 ? "\n" : ",\n"
            s += "    \"\(layer)\": ["
            s += (directions[layer] ?? []).map { jsonNumber($0) }.joined(separator: ", ")
            s += "]"
        }
        s += "\n  }\n}\n"
        return Data(s.utf8)
    }

    /// Writes `jsonData()` to `path`.
    public func exportJSON(to path: String) throws {
        let data = try jsonData()
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw VectorFileError.io(path: path, reason: error.localizedDescription)
        }
    }

    /// Reads a vector from JSON written by `jsonData()` (or by hand in the same format).
    /// Numbers that are not exactly representable as Float are rounded to the nearest Float.
    public init(jsonData data: Data) throws {
        guard data.count <= VectorFileLimits.maxJSONBytes else {
            throw VectorFileError.json(reason: "\(data.count) bytes is more than the \(VectorFileLimits.maxJSONBytes)-byte limit")
        }
        let file: JSONVectorFile
        do { file = try JSONDecoder().decode(JSONVectorFile.self, from: data) } catch let e as DecodingError {
            throw VectorFileError.json(reason: describe(e))
        } catch {
            throw VectorFileError.json(reason: String(describing: error))
        }
        guard file.format == "repeng-control-vector" else {
            throw VectorFileError.json(reason: "\"format\" is \"\(file.format)\", expected \"repeng-control-vector\"")
        }
        guard file.version == 1 else { throw VectorFileError.json(reason: "unsupported version \(file.version) (this reader knows version 1)") }
        guard file.n_embd > 0 else { throw VectorFileError.json(reason: "\"n_embd\" must be positive") }
        // The GGUF form stores it as uint32; a larger value would not survive a round trip.
        if let b = file.block_count, b < 1 || b > Int(UInt32.max) {
            throw VectorFileError.json(reason: "\"block_count\" must be in 1...\(UInt32.max)")
        }
        let limit = file.block_count.map { $0 - 1 } ?? VectorFileLimits.maxLayer
        var directions: [Int: [Float]] = [:]
        for (key, values) in file.directions {
            guard !key.isEmpty, key.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw VectorFileError.badDirectionName(key)
            }
            guard key.count <= 9, let layer = Int(key), layer <= limit else {
                throw VectorFileError.layerOutOfRange(tensor: key, layer: Int(key.prefix(18)) ?? Int.max, limit: limit)
            }
            guard directions[layer] == nil else { throw VectorFileError.duplicateLayer(layer) }
            guard values.count == file.n_embd else {
                throw VectorFileError.lengthMismatch(tensor: key, expected: file.n_embd, found: values.count)
            }
            var v = [Float](repeating: 0, count: values.count)
            for (i, x) in values.enumerated() {
                let f = Float(x)
                guard x.isFinite, f.isFinite else { throw VectorFileError.nonFinite(layer: layer, index: i) }
                v[i] = f
            }
            directions[layer] = v
        }
        guard !directions.isEmpty else { throw VectorFileError.noDirections }
        self.init(modelType: file.model_type, directions: directions,
                  metadata: ControlVectorMetadata(hiddenSize: file.n_embd, blockCount: file.block_count, method: file.method,
                                                  modelName: file.model_name, trainingSummary: file.training,
                                                  featureSpace: file.sae_features))
    }

    /// Reads a JSON vector file.
    public static func importJSON(path: String) throws -> ControlVector {
        let url = URL(fileURLWithPath: path)
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
           size.intValue > VectorFileLimits.maxJSONBytes {
            throw VectorFileError.json(reason: "\(path) is larger than \(VectorFileLimits.maxJSONBytes) bytes")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw VectorFileError.io(path: path, reason: error.localizedDescription) }
        return try ControlVector(jsonData: data)
    }

    /// Reads a vector file of either format, chosen by its first bytes ("GGUF" or JSON).
    public static func load(path: String) throws -> ControlVector {
        guard let h = FileHandle(forReadingAtPath: path) else { throw VectorFileError.io(path: path, reason: "cannot open") }
        let head = (try? h.read(upToCount: 4)) ?? Data()
        try? h.close()
        if head == Data("GGUF".utf8) { return try importGGUF(path: path) }
        return try importJSON(path: path)
    }
}

/// The JSON file layout.
private struct JSONVectorFile: Decodable {
    var format: String
    var version: Int
    var model_type: String
    var n_embd: Int
    var block_count: Int?
    var method: String?
    var model_name: String?
    var training: String?
    var sae_features: String?
    var directions: [String: [Double]]
}

private func describe(_ e: DecodingError) -> String {
    func path(_ c: [CodingKey]) -> String { c.isEmpty ? "top level" : c.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") }
    switch e {
    case let .keyNotFound(key, ctx): return "missing \"\(key.stringValue)\" at \(path(ctx.codingPath))"
    case let .typeMismatch(_, ctx): return "wrong type at \(path(ctx.codingPath)): \(ctx.debugDescription)"
    case let .valueNotFound(_, ctx): return "null at \(path(ctx.codingPath))"
    case let .dataCorrupted(ctx): return "malformed at \(path(ctx.codingPath)): \(ctx.debugDescription)"
    @unknown default: return String(describing: e)
    }
}


/// A finite Float as the shortest decimal that parses back to the same Double (hence the
/// same Float): exact under any correctly rounding double or float parser.
func jsonNumber(_ f: Float) -> String {
    Double(f).description
}
