// Errors raised while reading or writing GGUF files (ggml docs/gguf.md, GGUF v2/v3).

/// Everything that can go wrong reading or writing a GGUF file. GGUF files are untrusted input:
/// every structural problem is reported as one of these cases, never as a crash.
public enum GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be opened, inspected or mapped.
    case io(path: String, errno: Int32, message: String)
    /// The first four bytes are not "GGUF" (`found` holds the bytes actually there, up to 4).
    case badMagic(found: [UInt8])
    /// Only versions 2 and 3 are read (version 1 used 32-bit counts and is obsolete).
    case unsupportedVersion(UInt32)
    /// A fixed-size field runs past the end of the file.
    case truncated(what: String, offset: Int)
    /// A count read from the file cannot fit in the bytes that remain.
    case countTooLarge(what: String, count: UInt64)
    /// A string's declared length exceeds the bytes remaining or the format's limit.
    case stringTooLong(what: String, length: UInt64, limit: Int)
    /// A string is not valid UTF-8.
    case invalidUTF8(what: String)
    /// The metadata key with this index (0-based, in file order) is empty.
    case emptyKey(index: Int)
    /// A metadata key occurs twice.
    case duplicateKey(String)
    /// A value (or array element) type tag is not one of the 13 GGUF value types.
    case unknownValueType(UInt32, key: String)
    /// A bool byte is neither 0 nor 1.
    case invalidBool(UInt8, key: String)
    /// Arrays nested more than `GGUFLimits.maxArrayNesting` deep.
    case nestingTooDeep(key: String)
    /// A tensor name is empty or longer than `GGUFLimits.maxTensorNameLength` bytes.
    case badTensorName(String, reason: String)
    /// A tensor has 0 or more than 4 dimensions.
    case badDimensionCount(tensor: String, n: UInt32)
    /// A tensor dimension is negative as int64, or the element count / byte size overflows.
    case dimensionOverflow(tensor: String)
    /// A tensor's ggml type number is unknown.
    case unknownTensorType(tensor: String, raw: UInt32)
    /// A tensor's row length (`dims[0]`) is not a whole number of quantization blocks.
    case partialBlock(tensor: String, type: GGMLType, rowLength: Int)
    /// A tensor's data does not lie inside the file's data section.
    case tensorOutOfBounds(tensor: String, offset: UInt64, byteCount: Int, available: Int)
    /// A tensor's data offset is not a multiple of the file alignment.
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    /// `general.alignment` is 0, not a power of two, or above `GGUFLimits.maxAlignment`.
    case badAlignment(Int)
    /// Two tensors share a name.
    case duplicateTensor(String)
    /// A tensor handed to the writer has a data size that does not match its dims and type.
    case tensorSizeMismatch(tensor: String, expected: Int, actual: Int)
    /// A required metadata key is absent.
    case missingKey(String)
    /// A metadata key holds a value of another type than the one asked for.
    case wrongType(key: String, expected: String)

    public var description: String {
        switch self {
        case let .io(path, errno, message):
            return "cannot read GGUF file \(path): \(message) (errno \(errno))"
        case let .badMagic(found):
            let shown = found.map { (32..<127).contains($0) ? String(UnicodeScalar($0)) : "\\x" + hex2($0) }.joined()
            return "not a GGUF file: expected magic \"GGUF\", found \"\(shown)\""
        case let .unsupportedVersion(v):
            let swapped = v.byteSwapped
            if swapped == 2 || swapped == 3 {
                return "unsupported GGUF version \(v): this looks like a big-endian GGUF v\(swapped) file, only little-endian files are supported"
            }
            if v == 1 { return "unsupported GGUF version 1 (obsolete); re-convert the model with a current llama.cpp" }
            return "unsupported GGUF version \(v); only versions 2 and 3 are supported"
        case let .truncated(what, offset):
            return "GGUF file truncated: \(what) at byte \(offset) runs past the end of the file"
        case let .countTooLarge(what, count):
            return "corrupt GGUF file: \(what) is \(count), more than the remaining bytes of the file can hold"
        case let .stringTooLong(what, length, limit):
            return "corrupt GGUF file: \(what) declares \(length) bytes, more than the \(limit) allowed here"
        case let .invalidUTF8(what):
            return "corrupt GGUF file: \(what) is not valid UTF-8"
        case let .emptyKey(index):
            return "corrupt GGUF file: metadata key #\(index) is empty"
        case let .duplicateKey(key):
            return "corrupt GGUF file: metadata key '\(key)' occurs more than once"
        case let .unknownValueType(raw, key):
            return "corrupt GGUF file: metadata key '\(key)' has unknown value type \(raw)"
        case let .invalidBool(byte, key):
            return "corrupt GGUF file: metadata key '\(key)' holds bool byte \(byte), expected 0 or 1"
        case let .nestingTooDeep(key):
            return "corrupt GGUF file: metadata key '\(key)' nests arrays more than \(GGUFLimits.maxArrayNesting) deep"
        case let .badTensorName(name, reason):
            return "corrupt GGUF file: bad tensor name '\(name.prefix(80))': \(reason)"
        case let .badDimensionCount(tensor, n):
            return "corrupt GGUF file: tensor '\(tensor)' has \(n) dimensions, expected 1 to \(GGUFLimits.maxDimensions)"
        case let .dimensionOverflow(tensor):
            return "corrupt GGUF file: tensor '\(tensor)' has dimensions whose size overflows"
        case let .unknownTensorType(tensor, raw):
            return "unsupported GGUF file: tensor '\(tensor)' has unknown ggml type \(raw)"
        case let .partialBlock(tensor, type, rowLength):
            return "corrupt GGUF file: tensor '\(tensor)' of type \(type) has row length \(rowLength), not a multiple of the block size \(type.blockSize)"
        case let .tensorOutOfBounds(tensor, offset, byteCount, available):
            return "corrupt or truncated GGUF file: tensor '\(tensor)' (\(byteCount) bytes at data offset \(offset)) extends past the \(available) bytes of tensor data"
        case let .misalignedTensor(tensor, offset, alignment):
            return "corrupt GGUF file: tensor '\(tensor)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .badAlignment(a):
            return "corrupt GGUF file: general.alignment is \(a), expected a power of two from 1 to \(GGUFLimits.maxAlignment)"
        case let .duplicateTensor(name):
            return "corrupt GGUF file: tensor '\(name)' occurs more than once"
        case let .tensorSizeMismatch(tensor, expected, actual):
            return "GGUF writer: tensor '\(tensor)' has \(actual) bytes of data, its dims and type need \(expected)"
        case let .missingKey(key):
            return "GGUF metadata key '\(key)' is missing"
        case let .wrongType(key, expected):
            return "GGUF metadata key '\(key)' does not hold the expected \(expected) value"
        }
    }
}

private func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

/// Limits this implementation enforces on GGUF files, beyond what the bytes themselves bound.
public enum GGUFLimits {
    /// Largest accepted `general.alignment` (1 MiB). ggml uses 32; a few tools page-align (4–64 KiB).
    public static let maxAlignment = 1 << 20
    /// Deepest accepted nesting of arrays inside arrays (a top-level array is depth 1).
    public static let maxArrayNesting = 8
    /// Longest metadata key in bytes (GGUF spec: keys are at most 2^16 - 1 bytes).
    public static let maxKeyLength = 65_535
    /// Longest tensor name in bytes (GGUF spec: at most 64 bytes including ggml's NUL, i.e. 63).
    public static let maxTensorNameLength = 63
    /// Most dimensions a tensor may have (GGML_MAX_DIMS).
    public static let maxDimensions = 4
    /// Default alignment of tensor data when `general.alignment` is absent.
    public static let defaultAlignment = 32
}
