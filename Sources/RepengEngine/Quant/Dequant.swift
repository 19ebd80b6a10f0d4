// Decoding of GGUF tensor data to f32: ggml block formats as defined in ggml-common.h / ggml-quants.c (llama.cpp).

/// Why tensor data could not be decoded.
public enum DequantError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The element type has no decoder in this project.
    case unsupportedType(GGMLType)
    /// The element count is negative or not a whole number of the type's blocks.
    case partialBlock(type: GGMLType, elements: Int)
    /// The data holds a different number of bytes than `elements` elements of `type` take.
    case sizeMismatch(type: GGMLType, elements: Int, bytes: Int)

    public var description: String {
        switch self {
        case .unsupportedType(let type):
            return "tensor type \(type) cannot be decoded; supported types are "
                + GGMLType.allCases.filter(\.isDecodable).map(\.description).joined(separator: ", ")
        case .partialBlock(let type, let elements):
            return "\(elements) elements of \(type) is not a whole number of \(type.blockSize)-element blocks"
        case .sizeMismatch(let type, let elements, let bytes):
            let expected = type.byteCount(elements: elements).map { "\($0) bytes" } ?? "an unrepresentable size"
            return "\(elements) elements of \(type) take \(expected), but the data holds \(bytes) bytes"
        }
    }
}

/// Decodes ggml tensor encodings (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)
/// to f32. Every value is computed in f32 in the same operation order as ggml's reference
/// `dequantize_row_*` functions, so results are bit-exact with them. Multi-byte fields are read as
/// little-endian, the byte order of GGUF files and of every platform this package builds for.
public enum Dequant {
    /// Decodes `count` elements of `type` from `src` into `dst` (which must have room for `count`
    /// floats). `count` must be a multiple of the type's block size and `src.count` must equal the
    /// encoded size of `count` elements. Whole blocks are decoded with SIMD kernels.
    public static func decode(
        _ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutablePointer<Float>
    ) throws {
        let blocks = try validate(type, src, count: count)
        guard blocks > 0, let base = src.baseAddress else { return }
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: count &* 4)
        case .f16:
            decodeF16(base, count: count, into: dst)
        case .bf16:
            decodeBF16(base, count: count, into: dst)
        case .q4_0: forEachBlock(base, blocks, 18, 32, dst, decodeBlockQ4_0)
        case .q4_1: forEachBlock(base, blocks, 20, 32, dst, decodeBlockQ4_1)
        case .q5_0: forEachBlock(base, blocks, 22, 32, dst, decodeBlockQ5_0)
        case .q5_1: forEachBlock(base, blocks, 24, 32, dst, decodeBlockQ5_1)
        case .q8_0: forEachBlock(base, blocks, 34, 32, dst, decodeBlockQ8_0)
        case .q4_K: forEachBlock(base, blocks, 144, 256, dst, decodeBlockQ4_K)
        case .q5_K: forEachBlock(base, blocks, 176, 256, dst, decodeBlockQ5_K)
        case .q6_K: forEachBlock(base, blocks, 210, 256, dst, decodeBlockQ6_K)
        default:
            throw DequantError.unsupportedType(type)  // unreachable: validate() rejected it
        }
    }

    /// Plain scalar decoding written element by element from the format descriptions; same
    /// contract and same results, bit for bit, as `decode(_:_:count:into:)`. Used to check it.
    public static func decodeReference(
        _ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutablePointer<Float>
    ) throws {
        let blocks = try validate(type, src, count: count)
        guard blocks > 0 else { return }
        let out = UnsafeMutableBufferPointer(start: dst, count: count)
        for block in 0..<blocks {
            let start = block * type.blockBytes
            let bytes = [UInt8](src[start..<(start + type.blockBytes)])
            let y = UnsafeMutableBufferPointer(rebasing: out[(block * type.blockSize)..<((block + 1) * type.blockSize)])
            bytes.withUnsafeBufferPointer { Reference.decodeBlock(type, $0, y) }
        }
    }

    /// Decodes `count` elements of `type` from `src` into a new array (see `decode(_:_:count:into:)`).
    public static func decode(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws -> [Float] {
        _ = try validate(type, src, count: count)
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { try decode(type, src, count: count, into: base) }
            initialized = count
        }
    }

    /// Checks the type, the element count and the byte count; returns the number of blocks.
    static func validate(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws -> Int {
        guard type.isDecodable else { throw DequantError.unsupportedType(type) }
        guard count >= 0, count % type.blockSize == 0 else {
            throw DequantError.partialBlock(type: type, elements: count)
        }
        guard let bytes = type.byteCount(elements: count), bytes == src.count else {
            throw DequantError.sizeMismatch(type: type, elements: count, bytes: src.count)
        }
        return count / type.blockSize
    }

    /// Runs a per-block kernel over `blocks` consecutive blocks.
    @inline(__always)
    static func forEachBlock(
        _ base: UnsafeRawPointer, _ blocks: Int, _ blockBytes: Int, _ blockSize: Int,
        _ dst: UnsafeMutablePointer<Float>,
        _ kernel: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void
    ) {
        var src = base
        var out = dst
        for _ in 0..<blocks {
            kernel(src, out)
            src += blockBytes
            out += blockSize
        }
    }

    /// Decodes `count` binary16 values, 16 at a time with a scalar tail.
    static func decodeF16(_ base: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        var i = 0
        while i &+ 16 <= count {
            let h = base.loadUnaligned(fromByteOffset: i &* 2, as: SIMD16<UInt16>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: halfToFloat(h), as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < count {
            dst[i] = halfToFloat(base.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
            i &+= 1
        }
    }

    /// Decodes `count` bfloat16 values, 16 at a time with a scalar tail.
    static func decodeBF16(_ base: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        var i = 0
        while i &+ 16 <= count {
            let h = base.loadUnaligned(fromByteOffset: i &* 2, as: SIMD16<UInt16>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: bfloat16ToFloat(h), as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < count {
            dst[i] = bfloat16ToFloat(base.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
            i &+= 1
        }
    }
}
