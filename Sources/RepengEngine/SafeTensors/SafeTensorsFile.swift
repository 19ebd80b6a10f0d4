// safetensors file reader (huggingface/safetensors format, README "Format" section, v0.4): an
// 8-byte little-endian header length, a JSON header, then the tensor bytes; memory-mapped.
//
// The header is checked as the reference implementation's `Metadata::validate` does (tensors
// sorted by offset must tile the data section exactly: no holes, no overlaps, nothing past the
// end or after the last tensor; each tensor's bytes = its shape's product × its dtype's size),
// plus duplicate names, which the JSON layer reports.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// Whether the engine reads it as weights (converted to f32).
    public var isFloatWeight: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// One tensor of a safetensors file.
public struct SafeTensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    /// Sizes in row-major order (the last varies fastest), as PyTorch's `shape`.
    public let shape: [Int]
    /// Absolute byte offset in the file.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { byteCount / dtype.size }
}

/// Everything that can go wrong reading safetensors files; they are untrusted input.
public enum SafeTensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    case io(path: String, errno: Int32, message: String)
    /// Fewer than the 8 bytes of the header length.
    case truncated(size: Int)
    /// The header length is below 2, above `SafeTensorsFile.maxHeaderBytes` or past the end of the file.
    case headerLength(UInt64, fileSize: Int)
    /// The header is not valid JSON.
    case headerJSON(JSONError)
    /// The header is JSON but not an object.
    case headerNotObject(found: String)
    /// A tensor entry lacks a field or has one of the wrong kind.
    case badEntry(tensor: String, reason: String)
    case unknownDType(tensor: String, dtype: String)
    /// Shape × dtype size differs from the bytes the offsets give, or overflows.
    case sizeMismatch(tensor: String, expected: Int?, found: Int)
    /// Offsets that do not tile the data section (hole, overlap, past the end, begin > end).
    case badOffsets(tensor: String, reason: String)
    /// Bytes after the last tensor.
    case trailingBytes(count: Int)
    case duplicateTensor(String)
    /// `__metadata__` is not an object of strings.
    case badMetadata(String)
    /// A sharded checkpoint's index is malformed or inconsistent with its shards.
    case badIndex(path: String, reason: String)
    /// A tensor the caller asked for is not there.
    case missingTensor(String)

    public var description: String {
        switch self {
        case let .io(path, errno, message): return "cannot read safetensors file \(path): \(message) (errno \(errno))"
        case let .truncated(size): return "not a safetensors file: \(size) bytes, shorter than the 8-byte header length"
        case let .headerLength(n, size):
            return "safetensors header length \(n) is out of range (2...\(SafeTensorsFile.maxHeaderBytes), file of \(size) bytes)"
        case let .headerJSON(e): return "safetensors header is not valid JSON: \(e)"
        case let .headerNotObject(found): return "safetensors header is \(found), not a JSON object"
        case let .badEntry(t, reason): return "safetensors tensor '\(quoted(t))': \(reason)"
        case let .unknownDType(t, d): return "safetensors tensor '\(quoted(t))' has unknown dtype '\(quoted(d))'"
        case let .sizeMismatch(t, expected, found):
            let e = expected.map(String.init) ?? "an overflowing size"
            return "safetensors tensor '\(quoted(t))': shape and dtype give \(e) bytes, its offsets \(found)"
        case let .badOffsets(t, reason): return "safetensors tensor '\(quoted(t))': \(reason)"
        case let .trailingBytes(n): return "safetensors file has \(n) bytes after its last tensor"
        case let .duplicateTensor(t): return "safetensors header names tensor '\(quoted(t))' twice"
        case let .badMetadata(reason): return "safetensors __metadata__: \(reason)"
        case let .badIndex(path, reason): return "safetensors index \(path): \(reason)"
        case let .missingTensor(t): return "no tensor '\(quoted(t))' in the safetensors files"
        }
    }
}

/// A parsed safetensors file, memory-mapped read-only; tensor bytes are served from the mapping.
/// Immutable after `init`, so it may be shared across threads.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The reference implementation's limit on the header (100,000,000 bytes).
    public static let maxHeaderBytes = 100_000_000

    public let path: String?
    /// Tensors in header order.
    public let tensors: [SafeTensorsTensorInfo]
    /// `__metadata__` (string values).
    public let metadata: [String: String]
    public let fileSize: Int

    private let index: [String: Int]
    private let base: UnsafeMutableRawPointer?
    private let mapped: Bool

    /// Maps and parses the file at `path`.
    public init(path: String) throws(SafeTensorsError) {
        let mapping: FileMapping
        do { mapping = try FileMapping.map(path) } catch { throw .io(path: path, errno: error.errno, message: error.message) }
        let pointer = mapping.base, size = mapping.size
        let parsed: Parsed
        do {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: pointer, count: size))
        } catch {
            mapping.unmap()
            throw error
        }
        self.path = path
        base = pointer
        mapped = true
        fileSize = size
        (tensors, metadata, index) = (parsed.tensors, parsed.metadata, parsed.index)
    }

    /// Parses an in-memory copy of `bytes` (tests).
    public init(bytes: [UInt8]) throws(SafeTensorsError) {
        let size = bytes.count
        var pointer: UnsafeMutableRawPointer?
        if size > 0 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            bytes.withUnsafeBytes { src in if let s = src.baseAddress { p.copyMemory(from: s, byteCount: size) } }
            pointer = p
        }
        let parsed: Parsed
        do {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: pointer, count: size))
        } catch {
            pointer?.deallocate()
            throw error
        }
        path = nil
        base = pointer
        mapped = false
        fileSize = size
        (tensors, metadata, index) = (parsed.tensors, parsed.metadata, parsed.index)
    }

    deinit {
        guard let base else { return }
        if mapped { munmap(base, fileSize) } else { base.deallocate() }
    }

    public func tensor(named name: String) -> SafeTensorsTensorInfo? { index[name].map { tensors[$0] } }

    /// The bytes of a tensor of this file, valid while this object lives.
    public func data(_ t: SafeTensorsTensorInfo) -> UnsafeRawBufferPointer {
        guard let base, t.byteCount > 0, t.offset >= 0, t.offset <= fileSize - t.byteCount else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: base + t.offset, count: t.byteCount)
    }

    /// The f32 values of an F32 tensor in place, when its bytes are 4-byte aligned in memory.
    public func f32InPlace(_ t: SafeTensorsTensorInfo) -> UnsafePointer<Float>? {
        guard t.dtype == .f32 else { return nil }
        let d = data(t)
        guard let p = d.baseAddress, Int(bitPattern: p) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return p.assumingMemoryBound(to: Float.self)
    }

    /// Converts an F32, F16 or BF16 tensor to f32 into `dst` (elementCount values).
    public func decode(_ t: SafeTensorsTensorInfo, into dst: UnsafeMutablePointer<Float>) throws(SafeTensorsError) {
        try decode(t, elements: 0..<t.elementCount, into: dst)
    }

    /// Converts elements `elements` (flat, row-major) of an F32, F16 or BF16 tensor to f32 into
    /// `dst` (`elements.count` values); a range outside the tensor is an error.
    public func decode(_ t: SafeTensorsTensorInfo, elements: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws(SafeTensorsError) {
        let d = data(t)
        guard d.count == t.byteCount else { throw .badOffsets(tensor: t.name, reason: "data outside the file") }
        guard elements.lowerBound >= 0, elements.upperBound <= t.elementCount else {
            throw .badEntry(tensor: t.name, reason: "elements \(elements) asked of a tensor of \(t.elementCount)")
        }
        let n = elements.count
        guard n > 0, let start = d.baseAddress else { return }
        let base = start + elements.lowerBound * t.dtype.size
        switch t.dtype {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: n * 4)
        case .f16: Dequant.decodeF16(base, count: n, into: dst)
        case .bf16: Dequant.decodeBF16(base, count: n, into: dst)
        default:
            throw .badEntry(tensor: t.name, reason: "dtype \(t.dtype.rawValue) is not a weight type this engine reads (F32, F16, BF16)")
        }
    }

    // MARK: Parsing

    private struct Parsed {
        var tensors: [SafeTensorsTensorInfo]
        var metadata: [String: String]
        var index: [String: Int]
    }

    private static func parse(_ b: UnsafeRawBufferPointer) throws(SafeTensorsError) -> Parsed {
        guard b.count >= 8 else { throw .truncated(size: b.count) }
        let n = b.loadUnaligned(as: UInt64.self).littleEndian
        guard n >= 2, n <= UInt64(maxHeaderBytes), n <= UInt64(b.count - 8) else { throw .headerLength(n, fileSize: b.count) }
        let headerEnd = 8 + Int(n)
        let header: JSONValue
        do {
            header = try JSONReader.parse(UnsafeRawBufferPointer(rebasing: b[8..<headerEnd]))
        } catch {
            throw .headerJSON(error)
        }
        guard let object = header.object else { throw .headerNotObject(found: header.kind) }
        if let dup = object.firstDuplicateKey { throw .duplicateTensor(dup) }
        let dataSize = b.count - headerEnd
        var tensors: [SafeTensorsTensorInfo] = []
        var ranges: [(begin: Int, end: Int, index: Int)] = []
        var metadata: [String: String] = [:]
        for (name, entry) in object.pairs {
            if name == "__metadata__" {
                guard let m = entry.object else { throw .badMetadata("is \(entry.kind), not an object") }
                for (k, v) in m.pairs {
                    guard let s = v.string else { throw .badMetadata("'\(quoted(k))' is \(v.kind), not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = entry.object else { throw .badEntry(tensor: name, reason: "entry is \(entry.kind), not an object") }
            guard let dt = e["dtype"]?.string else { throw .badEntry(tensor: name, reason: "no dtype string") }
            guard let dtype = SafeTensorsDType(rawValue: dt) else { throw .unknownDType(tensor: name, dtype: dt) }
            guard let shapeValues = e["shape"]?.array else { throw .badEntry(tensor: name, reason: "no shape array") }
            guard shapeValues.count <= 8 else { throw .badEntry(tensor: name, reason: "\(shapeValues.count) dimensions (at most 8)") }
            var shape: [Int] = []
            // The product of the non-zero dims must not overflow either, so that no product of
            // the dims in any order traps later (a zero dim would hide it).
            var elements: Int? = 1, nonZero: Int? = 1
            for v in shapeValues {
                guard case .int(let d) = v, d >= 0 else { throw .badEntry(tensor: name, reason: "shape holds \(v.kind == "a number" ? "a negative or non-integer number" : v.kind)") }
                shape.append(d)
                if let el = elements { let (p, o) = el.multipliedReportingOverflow(by: d); elements = o ? nil : p }
                if let nz = nonZero, d > 0 { let (p, o) = nz.multipliedReportingOverflow(by: d); nonZero = o ? nil : p }
            }
            if nonZero == nil { elements = nil }
            guard let offs = e["data_offsets"]?.array, offs.count == 2,
                  case .int(let begin) = offs[0], case .int(let end) = offs[1], begin >= 0, end >= 0 else {
                throw .badEntry(tensor: name, reason: "data_offsets is not two non-negative integers")
            }
            guard begin <= end else { throw .badOffsets(tensor: name, reason: "begin \(begin) is after end \(end)") }
            guard end <= dataSize else { throw .badOffsets(tensor: name, reason: "end \(end) is past the \(dataSize) data bytes") }
            var bytes: Int?
            if let el = elements { let (p, o) = el.multipliedReportingOverflow(by: dtype.size); bytes = o ? nil : p }
            guard bytes == end - begin else { throw .sizeMismatch(tensor: name, expected: bytes, found: end - begin) }
            ranges.append((begin, end, tensors.count))
            tensors.append(SafeTensorsTensorInfo(name: name, dtype: dtype, shape: shape, offset: headerEnd + begin, byteCount: end - begin))
        }
        // Sorted by offset, the tensors must tile the data section.
        ranges.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for r in ranges {
            let name = tensors[r.index].name
            if r.begin > expected { throw .badOffsets(tensor: name, reason: "a hole of \(r.begin - expected) bytes before it (begins at \(r.begin), the previous tensor ends at \(expected))") }
            if r.begin < expected { throw .badOffsets(tensor: name, reason: "overlaps the previous tensor (begins at \(r.begin), the previous one ends at \(expected))") }
            expected = r.end
        }
        guard expected == dataSize else { throw .trailingBytes(count: dataSize - expected) }
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        return Parsed(tensors: tensors, metadata: metadata, index: index)
    }
}
