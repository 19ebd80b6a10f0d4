// GGUF file reader for format versions 2 and 3 (ggml docs/gguf.md): header, metadata, tensor table, mmap'd data.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where one tensor lives in a GGUF file and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// Sizes in ggml `ne` order: `dims[0]` varies fastest (the row length). 1 to 4 entries.
    public let dims: [Int]
    /// Element type.
    public let type: GGMLType
    /// Byte offset of the data relative to the start of the data section (`GGUFFile.dataOffset`).
    public let offset: Int
    /// Product of `dims` (0 for an empty tensor).
    public let elementCount: Int
    /// Bytes of data, whole blocks of `type`.
    public let byteCount: Int

    public init(name: String, dims: [Int], type: GGMLType, offset: Int, elementCount: Int, byteCount: Int) {
        self.name = name
        self.dims = dims
        self.type = type
        self.offset = offset
        self.elementCount = elementCount
        self.byteCount = byteCount
    }

    /// Number of rows, i.e. the product of all dims but the first.
    public var rowCount: Int { dims.count > 1 ? dims.dropFirst().reduce(1, *) : 1 }
}

/// A parsed GGUF file. The file is memory-mapped read-only; tensor data is served from the
/// mapping without copying. Immutable after `init`, so it may be shared across threads.
///
/// Every count, length and offset read from the file is checked against the bytes that remain;
/// malformed files raise `GGUFError` and never allocate more than a small multiple of their size.
/// (As with any mmap reader, a file truncated by another process while mapped can still fault.)
public final class GGUFFile: @unchecked Sendable {
    /// The file path, or nil when parsed from memory.
    public let path: String?
    /// Format version (2 or 3).
    public let version: UInt32
    /// Alignment of tensor data (`general.alignment`, default 32).
    public let alignment: Int
    /// All metadata values by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// Absolute byte offset of the tensor data section.
    public let dataOffset: Int
    /// Size of the file in bytes.
    public let fileSize: Int

    private let tensorIndex: [String: Int]
    private let base: UnsafeMutableRawPointer?
    private let mapped: Bool

    /// Maps and parses the file at `path`. Throws `GGUFError` (`.io` for system errors).
    public init(path: String) throws(GGUFError) {
        let mapping: FileMapping
        do { mapping = try FileMapping.map(path) } catch { throw GGUFError.io(path: path, errno: error.errno, message: error.message) }
        let pointer = mapping.base, size = mapping.size
        let parsed: GGUFParser.Result
        do {
            parsed = try GGUFParser.parse(UnsafeRawBufferPointer(start: pointer, count: size))
        } catch {
            mapping.unmap()
            throw error
        }
        self.path = path
        self.base = pointer
        self.mapped = true
        self.fileSize = size
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.tensorIndex = parsed.tensorIndex
        self.dataOffset = parsed.dataOffset
    }

    /// Parses an in-memory copy of `bytes` (for tests and small files).
    public init(bytes: [UInt8]) throws(GGUFError) {
        let size = bytes.count
        var pointer: UnsafeMutableRawPointer? = nil
        if size > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            bytes.withUnsafeBytes { src in
                if let s = src.baseAddress { p.copyMemory(from: s, byteCount: size) }
            }
            pointer = p
        }
        let parsed: GGUFParser.Result
        do {
            parsed = try GGUFParser.parse(UnsafeRawBufferPointer(start: pointer, count: size))
        } catch {
            pointer?.deallocate()
            throw error
        }
        self.path = nil
        self.base = pointer
        self.mapped = false
        self.fileSize = size
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.tensorIndex = parsed.tensorIndex
        self.dataOffset = parsed.dataOffset
    }

    deinit {
        guard let base else { return }
        if mapped { munmap(base, fileSize) } else { base.deallocate() }
    }

    /// The tensor with this name, if any.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of a tensor of this file, valid while this `GGUFFile` lives. An `info` that does
    /// not lie inside this file's data (e.g. one taken from another file) yields an empty buffer.
    public func tensorData(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard let base, info.byteCount > 0, info.offset >= 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let (start, o1) = dataOffset.addingReportingOverflow(info.offset)
        let (end, o2) = start.addingReportingOverflow(info.byteCount)
        guard !o1, !o2, end <= fileSize else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + start, count: info.byteCount)
    }

    /// The whole file as bytes, valid while this `GGUFFile` lives.
    public var rawBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: fileSize) }

    // MARK: typed metadata access

    private func required(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        return v
    }

    /// The string at `key`; throws `.missingKey` / `.wrongType`.
    public func string(_ key: String) throws -> String {
        guard let s = try required(key).string else { throw GGUFError.wrongType(key: key, expected: "string") }
        return s
    }

    /// The integer (any width, fitting `Int`) at `key`; throws `.missingKey` / `.wrongType`.
    public func int(_ key: String) throws -> Int {
        guard let i = try required(key).int else { throw GGUFError.wrongType(key: key, expected: "integer") }
        return i
    }

    /// The float32/float64 at `key`; throws `.missingKey` / `.wrongType`.
    public func float(_ key: String) throws -> Float {
        guard let f = try required(key).float else { throw GGUFError.wrongType(key: key, expected: "float") }
        return f
    }

    /// The bool at `key`; throws `.missingKey` / `.wrongType`.
    public func bool(_ key: String) throws -> Bool {
        guard let b = try required(key).bool else { throw GGUFError.wrongType(key: key, expected: "bool") }
        return b
    }

    /// The array at `key`; throws `.missingKey` / `.wrongType`.
    public func array(_ key: String) throws -> GGUFArray {
        guard let a = try required(key).array else { throw GGUFError.wrongType(key: key, expected: "array") }
        return a
    }

    /// The string at `key`, nil if absent; throws `.wrongType` if present with another type.
    public func optionalString(_ key: String) throws -> String? {
        metadata[key] == nil ? nil : try string(key)
    }

    /// The integer at `key`, nil if absent; throws `.wrongType` if present with another type.
    public func optionalInt(_ key: String) throws -> Int? {
        metadata[key] == nil ? nil : try int(key)
    }

    /// The float at `key`, nil if absent; throws `.wrongType` if present with another type.
    public func optionalFloat(_ key: String) throws -> Float? {
        metadata[key] == nil ? nil : try float(key)
    }

    /// The bool at `key`, nil if absent; throws `.wrongType` if present with another type.
    public func optionalBool(_ key: String) throws -> Bool? {
        metadata[key] == nil ? nil : try bool(key)
    }

    /// The array at `key`, nil if absent; throws `.wrongType` if present with another type.
    public func optionalArray(_ key: String) throws -> GGUFArray? {
        metadata[key] == nil ? nil : try array(key)
    }
}

/// The GGUF v2/v3 structure parser: pure function of the bytes.
enum GGUFParser {
    struct Result {
        var version: UInt32
        var alignment: Int
        var metadata: [String: GGUFValue]
        var metadataKeys: [String]
        var tensors: [GGUFTensorInfo]
        var tensorIndex: [String: Int]
        var dataOffset: Int
    }

    /// "GGUF" as bytes.
    static let magic: [UInt8] = [0x47, 0x47, 0x55, 0x46]
    /// Smallest metadata KV in bytes: key length (8) + type (4) + 1-byte value.
    static let minKVBytes = 8 + 4 + 1
    /// Smallest tensor info in bytes: name length (8) + 1-byte name + n_dims (4) + one dim (8) + type (4) + offset (8).
    static let minTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8

    static func parse(_ buffer: UnsafeRawBufferPointer) throws(GGUFError) -> Result {
        var c = GGUFCursor(buffer)

        // Header.
        guard c.remaining >= 4 else {
            throw .badMagic(found: Array(buffer))
        }
        let found = Array(c.peekBytes(4))
        guard found == magic else { throw .badMagic(found: found) }
        try c.skip(4, "magic")
        let version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try c.read(UInt64.self, "tensor count")
        let kvCount = try c.read(UInt64.self, "metadata KV count")
        guard kvCount <= UInt64(c.remaining / minKVBytes) else {
            throw .countTooLarge(what: "metadata KV count", count: kvCount)
        }

        // Metadata.
        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        var alignment = GGUFLimits.defaultAlignment
        for i in 0 ..< Int(kvCount) {
            let key = try c.readString("key of metadata KV #\(i)", limit: GGUFLimits.maxKeyLength)
            guard !key.isEmpty else { throw .emptyKey(index: i) }
            guard metadata[key] == nil else { throw .duplicateKey(key) }
            let rawType = try c.read(UInt32.self, "value type of key '\(key)'")
            let value = try readValue(&c, rawType: rawType, key: key, depth: 0)
            if key == "general.alignment" {
                guard case .uint32(let a) = value else { throw .wrongType(key: key, expected: "uint32") }
                alignment = Int(a)
                guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= GGUFLimits.maxAlignment else {
                    throw .badAlignment(alignment)
                }
            }
            metadata[key] = value
            keys.append(key)
        }

        // Tensor table.
        guard tensorCount <= UInt64(c.remaining / minTensorInfoBytes) else {
            throw .countTooLarge(what: "tensor count", count: tensorCount)
        }
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(Int(tensorCount))
        var index: [String: Int] = [:]
        var rawOffsets: [UInt64] = []
        rawOffsets.reserveCapacity(Int(tensorCount))
        for i in 0 ..< Int(tensorCount) {
            let name = try c.readString("name of tensor #\(i)")
            guard !name.isEmpty else { throw .badTensorName(name, reason: "tensor #\(i) has an empty name") }
            guard name.utf8.count <= GGUFLimits.maxTensorNameLength else {
                throw .badTensorName(name, reason: "longer than \(GGUFLimits.maxTensorNameLength) bytes")
            }
            guard index[name] == nil else { throw .duplicateTensor(name) }
            let nDims = try c.read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nDims >= 1, nDims <= UInt32(GGUFLimits.maxDimensions) else {
                throw .badDimensionCount(tensor: name, n: nDims)
            }
            var dims: [Int] = []
            dims.reserveCapacity(Int(nDims))
            for d in 0 ..< Int(nDims) {
                let raw = try c.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard let dim = Int(exactly: raw), dim <= Int(Int64.max) else { throw .dimensionOverflow(tensor: name) }
                dims.append(dim)
            }
            let rawType = try c.read(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else { throw .unknownTensorType(tensor: name, raw: rawType) }
            let offset = try c.read(UInt64.self, "data offset of tensor '\(name)'")

            // The product of the non-zero dims must fit too: a zero dim ([0, 2^40, 2^40]) would
            // otherwise hide dims whose product (rowCount) overflows.
            var nonZeroProduct = 1
            for dim in dims where dim != 0 {
                let (p, o) = nonZeroProduct.multipliedReportingOverflow(by: dim)
                guard !o else { throw .dimensionOverflow(tensor: name) }
                nonZeroProduct = p
            }
            let elements = dims.contains(0) ? 0 : nonZeroProduct
            guard dims[0] % type.blockSize == 0 else {
                throw .partialBlock(tensor: name, type: type, rowLength: dims[0])
            }
            guard let bytes = type.byteCount(elements: elements) else { throw .dimensionOverflow(tensor: name) }
            guard offset % UInt64(alignment) == 0 else {
                throw .misalignedTensor(tensor: name, offset: offset, alignment: alignment)
            }
            index[name] = i
            rawOffsets.append(offset)
            // offset is bounded below, once the data section is known.
            tensors.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: 0, elementCount: elements, byteCount: bytes))
        }

        // Data section: starts at the next multiple of the alignment. A file with no tensor
        // data may end before that padding.
        let end = c.offset
        let dataOffset = (end + alignment - 1) / alignment * alignment
        let available = max(0, buffer.count - dataOffset)
        for i in tensors.indices {
            let t = tensors[i]
            let off = rawOffsets[i]
            guard off <= UInt64(available), t.byteCount <= available - Int(off) else {
                throw .tensorOutOfBounds(tensor: t.name, offset: off, byteCount: t.byteCount, available: available)
            }
            tensors[i] = GGUFTensorInfo(name: t.name, dims: t.dims, type: t.type, offset: Int(off),
                                        elementCount: t.elementCount, byteCount: t.byteCount)
        }

        return Result(version: version, alignment: alignment, metadata: metadata, metadataKeys: keys,
                      tensors: tensors, tensorIndex: index, dataOffset: dataOffset)
    }

    private static func readValue(_ c: inout GGUFCursor, rawType: UInt32, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        guard let type = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(rawType, key: key) }
        let what = "value of key '\(key)'"
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self, what))
        case .int8: return .int8(try c.read(Int8.self, what))
        case .uint16: return .uint16(try c.read(UInt16.self, what))
        case .int16: return .int16(try c.read(Int16.self, what))
        case .uint32: return .uint32(try c.read(UInt32.self, what))
        case .int32: return .int32(try c.read(Int32.self, what))
        case .float32: return .float32(Float(bitPattern: try c.read(UInt32.self, what)))
        case .bool:
            let b = try c.read(UInt8.self, what)
            guard b <= 1 else { throw .invalidBool(b, key: key) }
            return .bool(b == 1)
        case .string: return .string(try c.readString(what))
        case .uint64: return .uint64(try c.read(UInt64.self, what))
        case .int64: return .int64(try c.read(Int64.self, what))
        case .float64: return .float64(Double(bitPattern: try c.read(UInt64.self, what)))
        case .array: return .array(try readArray(&c, key: key, depth: depth + 1))
        }
    }

    /// Reads an array body (element type, count, elements); `depth` is 1 for a top-level array.
    private static func readArray(_ c: inout GGUFCursor, key: String, depth: Int) throws(GGUFError) -> GGUFArray {
        guard depth <= GGUFLimits.maxArrayNesting else { throw .nestingTooDeep(key: key) }
        let rawType = try c.read(UInt32.self, "array element type of key '\(key)'")
        let rawCount = try c.read(UInt64.self, "array length of key '\(key)'")
        guard let type = GGUFValueType(rawValue: rawType) else { throw .unknownValueType(rawType, key: key) }
        // Every element takes at least `minimumSize` bytes, so this bounds all allocations below.
        guard rawCount <= UInt64(c.remaining / type.minimumSize) else {
            throw .countTooLarge(what: "array length of key '\(key)'", count: rawCount)
        }
        let n = Int(rawCount)
        let what = "array elements of key '\(key)'"
        switch type {
        case .uint8: return GGUFArray(.uint8(try c.readIntegers(UInt8.self, count: n, what)))
        case .int8: return GGUFArray(.int8(try c.readIntegers(Int8.self, count: n, what)))
        case .uint16: return GGUFArray(.uint16(try c.readIntegers(UInt16.self, count: n, what)))
        case .int16: return GGUFArray(.int16(try c.readIntegers(Int16.self, count: n, what)))
        case .uint32: return GGUFArray(.uint32(try c.readIntegers(UInt32.self, count: n, what)))
        case .int32: return GGUFArray(.int32(try c.readIntegers(Int32.self, count: n, what)))
        case .uint64: return GGUFArray(.uint64(try c.readIntegers(UInt64.self, count: n, what)))
        case .int64: return GGUFArray(.int64(try c.readIntegers(Int64.self, count: n, what)))
        case .float32:
            let bits = try c.readIntegers(UInt32.self, count: n, what)
            return GGUFArray(.float32(bits.map { Float(bitPattern: $0) }))
        case .float64:
            let bits = try c.readIntegers(UInt64.self, count: n, what)
            return GGUFArray(.float64(bits.map { Double(bitPattern: $0) }))
        case .bool:
            let bytes = try c.readIntegers(UInt8.self, count: n, what)
            var out: [Bool] = []
            out.reserveCapacity(n)
            for b in bytes {
                guard b <= 1 else { throw .invalidBool(b, key: key) }
                out.append(b == 1)
            }
            return GGUFArray(.bool(out))
        case .string:
            var out: [String] = []
            out.reserveCapacity(n)
            for i in 0 ..< n {
                out.append(try c.readString("element \(i) of key '\(key)'"))
            }
            return GGUFArray(.string(out))
        case .array:
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0 ..< n {
                out.append(try readArray(&c, key: key, depth: depth + 1))
            }
            return GGUFArray(.array(out))
        }
    }
}
