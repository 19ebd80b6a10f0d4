// Bounds-checked little-endian read cursor over a byte buffer, used by the GGUF (v2/v3) parser.

/// Reads little-endian scalars and GGUF strings from a raw buffer, checking every read against
/// the end of the buffer. It never traps on bad input: every failure is a `GGUFError`.
struct GGUFCursor {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset: Int = 0

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    /// Bytes left after the current position.
    var remaining: Int { buffer.count - offset }

    /// Throws `truncated` unless `n` more bytes are available.
    @inline(__always)
    func need(_ n: Int, _ what: @autoclosure () -> String) throws(GGUFError) {
        guard n >= 0, n <= remaining else { throw .truncated(what: what(), offset: offset) }
    }

    /// Reads one little-endian integer.
    @inline(__always)
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(what: what(), offset: offset) }
        let raw = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: raw)
    }

    /// Advances by `n` bytes, which must be available.
    mutating func skip(_ n: Int, _ what: @autoclosure () -> String) throws(GGUFError) {
        try need(n, what())
        offset += n
    }

    /// A view of the next `n` bytes (which must be available) without advancing.
    func peekBytes(_ n: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[offset ..< offset + n])
    }

    /// Reads a GGUF string: u64 byte length, then that many UTF-8 bytes (no terminator).
    /// `limit` caps the length in addition to the bytes remaining.
    mutating func readString(_ what: @autoclosure () -> String, limit: Int = .max) throws(GGUFError) -> String {
        let length = try read(UInt64.self, "length of " + what())
        let cap = min(limit, remaining)
        guard length <= UInt64(cap) else {
            throw .stringTooLong(what: what(), length: length, limit: cap)
        }
        let n = Int(length)
        let bytes = peekBytes(n)
        offset += n
        return try Self.decodeUTF8(bytes, what())
    }

    /// Validates and decodes UTF-8; ASCII-only strings take a fast path.
    static func decodeUTF8(_ bytes: UnsafeRawBufferPointer, _ what: @autoclosure () -> String) throws(GGUFError) -> String {
        if bytes.isEmpty { return "" }
        var ascii = true
        for b in bytes where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8(what: what()) }
        return s
    }

    /// Reads `count` fixed-width little-endian integers (the caller has bounded `count`).
    mutating func readIntegers<T: FixedWidthInteger>(_: T.Type, count: Int, _ what: @autoclosure () -> String) throws(GGUFError) -> [T] {
        let size = MemoryLayout<T>.stride
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, count >= 0 else { throw .countTooLarge(what: what(), count: UInt64(max(count, 0))) }
        try need(bytes, what())
        let src = peekBytes(bytes)
        let out = [T](unsafeUninitializedCapacity: count) { dst, initialized in
            if count > 0, let d = dst.baseAddress, let s = src.baseAddress {
                UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: bytes)
            }
            #if _endian(big)
            for i in 0 ..< count { dst[i] = T(littleEndian: dst[i]) }
            #endif
            initialized = count
        }
        offset += bytes
        return out
    }
}
