// GGUF metadata value model (ggml docs/gguf.md, GGUF v3): the typed values of the key-value section.

/// The type tag of a GGUF metadata value, numbered as `gguf_metadata_value_type` in the GGUF spec.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0
    case int8 = 1
    case uint16 = 2
    case int16 = 3
    case uint32 = 4
    case int32 = 5
    case float32 = 6
    case bool = 7
    case string = 8
    case array = 9
    case uint64 = 10
    case int64 = 11
    case float64 = 12

    /// Bytes one value of this type takes in a file, or nil for variable-sized types (string, array).
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The smallest number of bytes one value of this type can take in a file.
    var minimumSize: Int {
        switch self {
        case .string: return 8          // u64 length, empty payload
        case .array: return 12          // u32 element type + u64 count
        default: return fixedSize ?? 1
        }
    }

    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }
}

/// One metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)
    case array(GGUFArray)

    /// The type tag this value is stored with.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// The string, if this is a string value.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as `Int`, if this is an integer of any width whose value fits in `Int`.
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(exactly: v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as `Float`, if this is a float32 or float64 value (float64 is rounded).
    public var float: Float? {
        switch self {
        case .float32(let v): return v
        case .float64(let v): return Float(v)
        default: return nil
        }
    }

    /// The value as `Double`, if this is a float32 or float64 value.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return nil
        }
    }

    /// The flag, if this is a bool value.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The array, if this is an array value.
    public var array: GGUFArray? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var description: String {
        switch self {
        case .uint8(let v): return "\(v) (uint8)"
        case .int8(let v): return "\(v) (int8)"
        case .uint16(let v): return "\(v) (uint16)"
        case .int16(let v): return "\(v) (int16)"
        case .uint32(let v): return "\(v) (uint32)"
        case .int32(let v): return "\(v) (int32)"
        case .float32(let v): return "\(v) (float32)"
        case .bool(let v): return "\(v)"
        case .string(let s): return s.count > 60 ? "\"\(s.prefix(60))…\"" : "\"\(s)\""
        case .uint64(let v): return "\(v) (uint64)"
        case .int64(let v): return "\(v) (int64)"
        case .float64(let v): return "\(v) (float64)"
        case .array(let a): return a.description
        }
    }
}

/// A GGUF array value: one element type and its elements, stored unboxed per type.
/// Arrays of arrays are allowed; each inner array carries its own element type.
public struct GGUFArray: Sendable, Equatable, CustomStringConvertible {
    /// The elements, as a typed Swift array.
    public enum Storage: Sendable, Equatable {
        case uint8([UInt8])
        case int8([Int8])
        case uint16([UInt16])
        case int16([Int16])
        case uint32([UInt32])
        case int32([Int32])
        case float32([Float])
        case bool([Bool])
        case string([String])
        case uint64([UInt64])
        case int64([Int64])
        case float64([Double])
        case array([GGUFArray])
    }

    /// The elements.
    public let storage: Storage

    /// Wraps typed elements, e.g. `GGUFArray(.string(["a", "b"]))`.
    public init(_ storage: Storage) { self.storage = storage }

    /// The element type tag.
    public var elementType: GGUFValueType {
        switch storage {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// Number of elements.
    public var count: Int {
        switch storage {
        case .uint8(let a): return a.count
        case .int8(let a): return a.count
        case .uint16(let a): return a.count
        case .int16(let a): return a.count
        case .uint32(let a): return a.count
        case .int32(let a): return a.count
        case .float32(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        case .uint64(let a): return a.count
        case .int64(let a): return a.count
        case .float64(let a): return a.count
        case .array(let a): return a.count
        }
    }

    /// The elements, if this is an array of strings.
    public var strings: [String]? {
        if case .string(let a) = storage { return a }
        return nil
    }

    /// The elements, if this is an array of float32.
    public var floats: [Float]? {
        if case .float32(let a) = storage { return a }
        return nil
    }

    /// The elements, if this is an array of bools.
    public var bools: [Bool]? {
        if case .bool(let a) = storage { return a }
        return nil
    }

    /// The inner arrays, if this is an array of arrays.
    public var arrays: [GGUFArray]? {
        if case .array(let a) = storage { return a }
        return nil
    }

    /// The elements as `Int`, if this is an array of any integer type and every element fits in `Int`.
    public var ints: [Int]? {
        switch storage {
        case .uint8(let a): return a.map { Int($0) }
        case .int8(let a): return a.map { Int($0) }
        case .uint16(let a): return a.map { Int($0) }
        case .int16(let a): return a.map { Int($0) }
        case .uint32(let a): return a.map { Int($0) }
        case .int32(let a): return a.map { Int($0) }
        case .uint64(let a):
            var out: [Int] = []
            out.reserveCapacity(a.count)
            for v in a {
                guard let i = Int(exactly: v) else { return nil }
                out.append(i)
            }
            return out
        case .int64(let a): return a.map { Int($0) }
        default: return nil
        }
    }

    /// Element `index` as a boxed value (`index` must be in `0..<count`).
    public subscript(index: Int) -> GGUFValue {
        switch storage {
        case .uint8(let a): return .uint8(a[index])
        case .int8(let a): return .int8(a[index])
        case .uint16(let a): return .uint16(a[index])
        case .int16(let a): return .int16(a[index])
        case .uint32(let a): return .uint32(a[index])
        case .int32(let a): return .int32(a[index])
        case .float32(let a): return .float32(a[index])
        case .bool(let a): return .bool(a[index])
        case .string(let a): return .string(a[index])
        case .uint64(let a): return .uint64(a[index])
        case .int64(let a): return .int64(a[index])
        case .float64(let a): return .float64(a[index])
        case .array(let a): return .array(a[index])
        }
    }

    /// All elements as boxed values.
    public var values: [GGUFValue] { (0..<count).map { self[$0] } }

    public var description: String {
        let n = count
        let head = (0..<min(n, 4)).map { self[$0].description }.joined(separator: ", ")
        return "[\(elementType); \(n)]{\(head)\(n > 4 ? ", …" : "")}"
    }
}
