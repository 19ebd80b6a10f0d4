// GGUF v3 little-endian writer (ggml docs/gguf.md): metadata in insertion order, aligned tensor data.

/// Builds a GGUF version 3 file in memory.
///
/// Layout: header, metadata KVs in insertion order, tensor infos in insertion order, zero padding
/// to `alignment`, then each tensor's data followed by zero padding to `alignment` (as ggml and
/// gguf-py write it). Parsing the output with `GGUFFile` and copying it with `init(copying:)`
/// reproduces the same bytes.
public struct GGUFWriter: Sendable {
    private struct PendingTensor: Sendable {
        var name: String
        var dims: [Int]
        var type: GGMLType
        var data: [UInt8]
    }

    /// Alignment of tensor data. Set from `init(alignment:)` or by adding `general.alignment`.
    public private(set) var alignment: Int
    private var keys: [String] = []
    private var values: [String: GGUFValue] = [:]
    private var pending: [PendingTensor] = []

    /// A writer with the given tensor data alignment. Any alignment other than the default 32 is
    /// recorded as a first `general.alignment` (uint32) key, as the format requires.
    public init(alignment: Int = GGUFLimits.defaultAlignment) {
        self.alignment = alignment
        if alignment != GGUFLimits.defaultAlignment {
            let raw = UInt32(clamping: alignment)
            keys.append("general.alignment")
            values["general.alignment"] = .uint32(raw)
        }
    }

    /// A writer holding the metadata and tensors of `file` in file order (output is version 3).
    public init(copying file: GGUFFile) {
        self.alignment = file.alignment
        for key in file.metadataKeys {
            if let v = file.metadata[key] { add(key: key, v) }
        }
        for t in file.tensors {
            addTensor(name: t.name, dims: t.dims, type: t.type, data: Array(file.tensorData(t)))
        }
    }

    /// Adds a metadata value. Adding a key again replaces its value and keeps its first position.
    /// Adding `general.alignment` (uint32) also sets `alignment`.
    public mutating func add(key: String, _ value: GGUFValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
        if key == "general.alignment", case .uint32(let a) = value { alignment = Int(a) }
    }

    /// Adds a tensor with raw data (`data.count` must match `dims` and `type`; checked by `serialize`).
    /// `dims` is in ggml `ne` order: `dims[0]` is the row length.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [UInt8]) {
        pending.append(PendingTensor(name: name, dims: dims, type: type, data: data))
    }

    /// Adds an F32 tensor from floats (stored little-endian).
    public mutating func addTensor(name: String, dims: [Int], floats: [Float]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { appendLE(&bytes, f.bitPattern) }
        addTensor(name: name, dims: dims, type: .f32, data: bytes)
    }

    /// The complete file. Throws `GGUFError` for anything the reader would reject:
    /// bad alignment, empty/overlong keys, arrays nested too deep, bad tensor names, dims or sizes.
    public func serialize() throws(GGUFError) -> [UInt8] {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= GGUFLimits.maxAlignment else {
            throw .badAlignment(alignment)
        }
        if let a = values["general.alignment"] {
            guard case .uint32 = a else { throw .wrongType(key: "general.alignment", expected: "uint32") }
        }

        // Validate tensors and lay out their data.
        var names = Set<String>()
        var offsets: [Int] = []
        var dataSize = 0
        for t in pending {
            guard !t.name.isEmpty else { throw .badTensorName(t.name, reason: "empty name") }
            guard t.name.utf8.count <= GGUFLimits.maxTensorNameLength else {
                throw .badTensorName(t.name, reason: "longer than \(GGUFLimits.maxTensorNameLength) bytes")
            }
            guard names.insert(t.name).inserted else { throw .duplicateTensor(t.name) }
            guard (1 ... GGUFLimits.maxDimensions).contains(t.dims.count) else {
                throw .badDimensionCount(tensor: t.name, n: UInt32(clamping: t.dims.count))
            }
            var elements = 1
            for d in t.dims {
                guard d >= 0 else { throw .dimensionOverflow(tensor: t.name) }
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw .dimensionOverflow(tensor: t.name) }
                elements = p
            }
            guard t.dims[0] % t.type.blockSize == 0 else {
                throw .partialBlock(tensor: t.name, type: t.type, rowLength: t.dims[0])
            }
            guard let bytes = t.type.byteCount(elements: elements) else { throw .dimensionOverflow(tensor: t.name) }
            guard bytes == t.data.count else {
                throw .tensorSizeMismatch(tensor: t.name, expected: bytes, actual: t.data.count)
            }
            offsets.append(dataSize)
            dataSize += padded(bytes)
        }

        var out: [UInt8] = []
        out.reserveCapacity(dataSize + 4096)
        out.append(contentsOf: GGUFParser.magic)
        appendLE(&out, UInt32(3))
        appendLE(&out, UInt64(pending.count))
        appendLE(&out, UInt64(keys.count))
        for (i, key) in keys.enumerated() {
            guard !key.isEmpty else { throw .emptyKey(index: i) }
            guard key.utf8.count <= GGUFLimits.maxKeyLength else {
                throw .stringTooLong(what: "key '\(key.prefix(40))…'", length: UInt64(key.utf8.count), limit: GGUFLimits.maxKeyLength)
            }
            let value = values[key] ?? .uint8(0)
            appendString(&out, key)
            appendLE(&out, value.type.rawValue)
            try appendValue(&out, value, key: key)
        }
        for (t, off) in zip(pending, offsets) {
            appendString(&out, t.name)
            appendLE(&out, UInt32(t.dims.count))
            for d in t.dims { appendLE(&out, UInt64(d)) }
            appendLE(&out, t.type.rawValue)
            appendLE(&out, UInt64(off))
        }
        out.append(contentsOf: repeatElement(0, count: padded(out.count) - out.count))
        for t in pending {
            out.append(contentsOf: t.data)
            out.append(contentsOf: repeatElement(0, count: padded(t.data.count) - t.data.count))
        }
        return out
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private func appendValue(_ out: inout [UInt8], _ value: GGUFValue, key: String) throws(GGUFError) {
        switch value {
        case .uint8(let v): out.append(v)
        case .int8(let v): out.append(UInt8(bitPattern: v))
        case .uint16(let v): appendLE(&out, v)
        case .int16(let v): appendLE(&out, v)
        case .uint32(let v): appendLE(&out, v)
        case .int32(let v): appendLE(&out, v)
        case .float32(let v): appendLE(&out, v.bitPattern)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): appendString(&out, s)
        case .uint64(let v): appendLE(&out, v)
        case .int64(let v): appendLE(&out, v)
        case .float64(let v): appendLE(&out, v.bitPattern)
        case .array(let a): try appendArray(&out, a, key: key, depth: 1)
        }
    }

    private func appendArray(_ out: inout [UInt8], _ array: GGUFArray, key: String, depth: Int) throws(GGUFError) {
        guard depth <= GGUFLimits.maxArrayNesting else { throw .nestingTooDeep(key: key) }
        appendLE(&out, array.elementType.rawValue)
        appendLE(&out, UInt64(array.count))
        switch array.storage {
        case .uint8(let a): out.append(contentsOf: a)
        case .int8(let a): appendAllLE(&out, a)
        case .uint16(let a): appendAllLE(&out, a)
        case .int16(let a): appendAllLE(&out, a)
        case .uint32(let a): appendAllLE(&out, a)
        case .int32(let a): appendAllLE(&out, a)
        case .uint64(let a): appendAllLE(&out, a)
        case .int64(let a): appendAllLE(&out, a)
        case .float32(let a): appendAllLE(&out, a.map(\.bitPattern))
        case .float64(let a): appendAllLE(&out, a.map(\.bitPattern))
        case .bool(let a): for b in a { out.append(b ? 1 : 0) }
        case .string(let a): for s in a { appendString(&out, s) }
        case .array(let a): for inner in a { try appendArray(&out, inner, key: key, depth: depth + 1) }
        }
    }
}

@inline(__always)
private func appendLE<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
    withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
}

private func appendAllLE<T: FixedWidthInteger>(_ out: inout [UInt8], _ values: [T]) {
    #if _endian(little)
    values.withUnsafeBytes { out.append(contentsOf: $0) }
    #else
    for v in values { appendLE(&out, v) }
    #endif
}

private func appendString(_ out: inout [UInt8], _ s: String) {
    appendLE(&out, UInt64(s.utf8.count))
    out.append(contentsOf: s.utf8)
}
