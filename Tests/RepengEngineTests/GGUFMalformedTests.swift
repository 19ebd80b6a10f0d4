// Hostile-input tests of the GGUF reader: one malformed file per test, each with its specific error, plus mutation fuzzing.
import XCTest
@testable import RepengEngine

final class GGUFMalformedTests: XCTestCase {
    private func expect(_ bytes: [UInt8], _ expected: GGUFError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GGUFFile(bytes: bytes), file: file, line: line) { error in
            XCTAssertEqual(error as? GGUFError, expected, file: file, line: line)
            XCTAssertFalse("\(error)".isEmpty, file: file, line: line)
        }
    }

    private func expect(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line, _ matches: (GGUFError) -> Bool) {
        XCTAssertThrowsError(try GGUFFile(bytes: bytes), file: file, line: line) { error in
            guard let e = error as? GGUFError else { return XCTFail("not a GGUFError: \(error)", file: file, line: line) }
            XCTAssertTrue(matches(e), "unexpected error: \(e)", file: file, line: line)
        }
    }

    /// A valid header with one string KV, then a tensor table built by `tensors`.
    private func withTensors(_ count: UInt64, dataBytes: Int = 0, _ tensors: (inout GGUFBytes) -> Void) -> [UInt8] {
        var b = GGUFBytes.header(tensors: count, kvs: 1)
        b.kvString("general.architecture", "llama")
        tensors(&b)
        b.pad()
        b.zeros(dataBytes)
        return b.bytes
    }

    /// A header with one KV whose key and value are written by `kv`.
    private func withKV(_ kv: (inout GGUFBytes) -> Void) -> [UInt8] {
        var b = GGUFBytes.header(tensors: 0, kvs: 1)
        kv(&b)
        return b.bytes
    }

    // MARK: header

    func testBadMagic() {
        var b = GGUFBytes.header()
        b.bytes[0] = UInt8(ascii: "P")
        expect(b.bytes, .badMagic(found: Array("PGUF".utf8)))
    }

    func testEmptyFile() {
        expect([], .badMagic(found: []))
        expect(Array("GG".utf8), .badMagic(found: Array("GG".utf8)))
    }

    func testVersion0() { expect(GGUFBytes.header(version: 0).bytes, .unsupportedVersion(0)) }

    func testVersion1() { expect(GGUFBytes.header(version: 1).bytes, .unsupportedVersion(1)) }

    func testFutureVersion() { expect(GGUFBytes.header(version: 4).bytes, .unsupportedVersion(4)) }

    func testBigEndianFile() {
        let b = GGUFBytes.header(version: UInt32(3).byteSwapped).bytes
        expect(b, .unsupportedVersion(UInt32(3).byteSwapped))
        XCTAssertTrue(GGUFError.unsupportedVersion(UInt32(3).byteSwapped).description.contains("big-endian"))
    }

    func testTruncatedHeader() {
        let b = GGUFBytes.header(tensors: 0, kvs: 0).bytes
        expect(Array(b.prefix(20)), .truncated(what: "metadata KV count", offset: 16))
        expect(Array(b.prefix(6)), .truncated(what: "version", offset: 4))
    }

    func testKVCountMinusOne() {
        expect(GGUFBytes.header(kvs: .max).bytes, .countTooLarge(what: "metadata KV count", count: .max))
    }

    func testKVCountLargerThanFile() {
        var b = GGUFBytes.header(kvs: 3)
        b.kvU32("a", 1)
        b.kvU32("b", 2)
        expect(b.bytes, .countTooLarge(what: "metadata KV count", count: 3))
    }

    func testTensorCountMinusOne() {
        expect(GGUFBytes.header(tensors: .max).bytes, .countTooLarge(what: "tensor count", count: .max))
    }

    func testTensorCountLargerThanFile() {
        let bytes = withTensors(2) { $0.tensorInfo("a", dims: [1], offset: 0) }
        expect(bytes, .countTooLarge(what: "tensor count", count: 2))
    }

    // MARK: metadata

    func testKeyLengthPastEnd() {
        let bytes = withKV { b in b.u64(100); b.raw(Array("general".utf8)); b.zeros(10) }
        expect(bytes) { if case .stringTooLong(what: "key of metadata KV #0", length: 100, _) = $0 { true } else { false } }
    }

    func testKeyLength2Pow63() {
        let bytes = withKV { b in b.u64(1 << 63); b.zeros(32) }
        expect(bytes) { if case .stringTooLong(what: "key of metadata KV #0", length: 1 << 63, _) = $0 { true } else { false } }
    }

    func testKeyLongerThanSpecLimit() {
        let long = String(repeating: "k", count: GGUFLimits.maxKeyLength + 1)
        let bytes = withKV { b in b.kvU32(long, 1) }
        expect(bytes, .stringTooLong(what: "key of metadata KV #0", length: UInt64(long.utf8.count), limit: GGUFLimits.maxKeyLength))
    }

    func testStringValueLengthPastEnd() {
        let bytes = withKV { b in b.key("general.name", .string); b.u64(50); b.raw(Array("abc".utf8)) }
        expect(bytes, .stringTooLong(what: "value of key 'general.name'", length: 50, limit: 3))
    }

    func testStringValueLength2Pow63() {
        let bytes = withKV { b in b.key("general.name", .string); b.u64(1 << 63) }
        expect(bytes, .stringTooLong(what: "value of key 'general.name'", length: 1 << 63, limit: 0))
    }

    func testStringLengthTruncated() {
        let bytes = withKV { b in b.key("general.name", .string); b.u32(5) }
        expect(bytes) { if case .truncated(what: "length of value of key 'general.name'", _) = $0 { true } else { false } }
    }

    func testInvalidUTF8Key() {
        let bytes = withKV { b in b.u64(2); b.raw([0xC3, 0x28]); b.u32(GGUFValueType.uint8.rawValue); b.u8(0) }
        expect(bytes, .invalidUTF8(what: "key of metadata KV #0"))
    }

    func testInvalidUTF8Value() {
        let bytes = withKV { b in b.key("general.name", .string); b.u64(3); b.raw([0x61, 0xFF, 0x62]) }
        expect(bytes, .invalidUTF8(what: "value of key 'general.name'"))
    }

    func testEmptyKey() {
        let bytes = withKV { b in b.key("", .uint8); b.u8(1) }
        expect(bytes, .emptyKey(index: 0))
    }

    func testDuplicateKey() {
        var b = GGUFBytes.header(kvs: 2)
        b.kvU32("llama.block_count", 1)
        b.kvU32("llama.block_count", 2)
        expect(b.bytes, .duplicateKey("llama.block_count"))
    }

    func testUnknownValueType() {
        let bytes = withKV { b in b.str("x"); b.u32(13); b.zeros(8) }
        expect(bytes, .unknownValueType(13, key: "x"))
    }

    func testUnknownArrayElementType() {
        let bytes = withKV { b in b.key("x", .array); b.u32(0xFFFF_FFFF); b.u64(1); b.zeros(8) }
        expect(bytes, .unknownValueType(0xFFFF_FFFF, key: "x"))
    }

    func testInvalidBool() {
        let bytes = withKV { b in b.key("x", .bool); b.u8(2) }
        expect(bytes, .invalidBool(2, key: "x"))
    }

    func testInvalidBoolInArray() {
        let bytes = withKV { b in b.key("x", .array); b.u32(GGUFValueType.bool.rawValue); b.u64(3); b.raw([1, 0, 7]) }
        expect(bytes, .invalidBool(7, key: "x"))
    }

    func testTruncatedScalarValue() {
        let bytes = withKV { b in b.key("x", .uint64); b.u32(1) }
        expect(bytes, .truncated(what: "value of key 'x'", offset: bytes.count - 4))
    }

    /// `depth` levels of arrays, the innermost holding one uint8.
    private func nested(_ depth: Int) -> [UInt8] {
        withKV { b in
            b.key("deep", .array)
            for _ in 1 ..< depth { b.u32(GGUFValueType.array.rawValue); b.u64(1) }
            b.u32(GGUFValueType.uint8.rawValue); b.u64(1); b.u8(42)
        }
    }

    func testNestedArraysWithinLimitAreAccepted() throws {
        let f = try GGUFFile(bytes: nested(GGUFLimits.maxArrayNesting))
        var a = try XCTUnwrap(f.metadata["deep"]?.array)
        for _ in 1 ..< GGUFLimits.maxArrayNesting { a = try XCTUnwrap(a.arrays?.first) }
        XCTAssertEqual(a.ints, [42])
    }

    func testNestingTooDeep() {
        expect(nested(GGUFLimits.maxArrayNesting + 1), .nestingTooDeep(key: "deep"))
    }

    func testArrayCountMinusOne() {
        let bytes = withKV { b in b.key("x", .array); b.u32(GGUFValueType.uint32.rawValue); b.u64(.max); b.zeros(16) }
        expect(bytes, .countTooLarge(what: "array length of key 'x'", count: .max))
    }

    func testArrayCountLargerThanFile() {
        let bytes = withKV { b in b.key("x", .array); b.u32(GGUFValueType.float32.rawValue); b.u64(5); b.zeros(16) }
        expect(bytes, .countTooLarge(what: "array length of key 'x'", count: 5))
    }

    func testStringArrayCountLargerThanFile() {
        let bytes = withKV { b in b.key("x", .array); b.u32(GGUFValueType.string.rawValue); b.u64(1 << 40); b.str("a") }
        expect(bytes, .countTooLarge(what: "array length of key 'x'", count: 1 << 40))
    }

    func testNestedArrayCountLargerThanFile() {
        let bytes = withKV { b in
            b.key("x", .array); b.u32(GGUFValueType.array.rawValue); b.u64(2)
            b.u32(GGUFValueType.array.rawValue); b.u64(1 << 50)
        }
        expect(bytes, .countTooLarge(what: "array length of key 'x'", count: 2))
    }

    func testStringArrayElementPastEnd() {
        let bytes = withKV { b in b.key("x", .array); b.u32(GGUFValueType.string.rawValue); b.u64(2); b.str("ab"); b.u64(9) }
        expect(bytes, .stringTooLong(what: "element 1 of key 'x'", length: 9, limit: 0))
    }

    // MARK: alignment

    private func withAlignment(_ value: GGUFValue) -> [UInt8] {
        var b = GGUFBytes.header(kvs: 1)
        b.str("general.alignment")
        b.u32(value.type.rawValue)
        switch value {
        case .uint32(let v): b.u32(v)
        case .uint64(let v): b.u64(v)
        default: XCTFail("value type not handled by withAlignment")
        }
        return b.bytes
    }

    func testAlignmentZero() { expect(withAlignment(.uint32(0)), .badAlignment(0)) }

    func testAlignmentNotPowerOfTwo() { expect(withAlignment(.uint32(48)), .badAlignment(48)) }

    func testAlignmentHuge() {
        expect(withAlignment(.uint32(UInt32(GGUFLimits.maxAlignment) * 2)), .badAlignment(GGUFLimits.maxAlignment * 2))
        expect(withAlignment(.uint32(.max)), .badAlignment(Int(UInt32.max)))
    }

    func testAlignmentWrongType() {
        expect(withAlignment(.uint64(32)), .wrongType(key: "general.alignment", expected: "uint32"))
    }

    func testAlignmentAtLimitIsAccepted() throws {
        let f = try GGUFFile(bytes: withAlignment(.uint32(UInt32(GGUFLimits.maxAlignment))))
        XCTAssertEqual(f.alignment, GGUFLimits.maxAlignment)
    }

    // MARK: tensor table

    func testZeroDimensions() {
        let bytes = withTensors(1) { b in b.str("t"); b.u32(0); b.u32(0); b.u64(0); b.zeros(8) }
        expect(bytes, .badDimensionCount(tensor: "t", n: 0))
    }

    func testFiveDimensions() {
        let bytes = withTensors(1, dataBytes: 4) { $0.tensorInfo("t", dims: [1, 1, 1, 1, 1]) }
        expect(bytes, .badDimensionCount(tensor: "t", n: 5))
    }

    func testHugeDimensionCount() {
        let bytes = withTensors(1) { b in b.str("t"); b.u32(.max); b.zeros(40) }
        expect(bytes, .badDimensionCount(tensor: "t", n: .max))
    }

    func testDimensionProductOverflow() {
        let bytes = withTensors(1) { $0.tensorInfo("t", dims: [1 << 32, 1 << 32]) }
        expect(bytes, .dimensionOverflow(tensor: "t"))
    }

    func testZeroDimensionHidesNoOverflow() {
        // Zero elements, but the rows (dims[1...]) would overflow: found by fuzzing.
        let bytes = withTensors(1) { $0.tensorInfo("t", dims: [0, 1 << 40, 1 << 40]) }
        expect(bytes, .dimensionOverflow(tensor: "t"))
    }

    func testByteSizeOverflow() {
        // Elements fit in Int, bytes (4 per element) do not.
        let bytes = withTensors(1) { $0.tensorInfo("t", dims: [1 << 31, 1 << 31]) }
        expect(bytes, .dimensionOverflow(tensor: "t"))
    }

    func testNegativeDimension() {
        let bytes = withTensors(1) { $0.tensorInfo("t", dims: [.max]) }
        expect(bytes, .dimensionOverflow(tensor: "t"))
    }

    func testUnknownTensorType() {
        for raw: UInt32 in [4, 5, 31, 32, 33, 36, 1000, .max] {
            let bytes = withTensors(1, dataBytes: 64) { $0.tensorInfo("t", dims: [32], type: raw) }
            expect(bytes, .unknownTensorType(tensor: "t", raw: raw))
        }
    }

    func testPartialBlock() {
        let bytes = withTensors(1, dataBytes: 64) { $0.tensorInfo("t", dims: [33], type: GGMLType.q4_0.rawValue) }
        expect(bytes, .partialBlock(tensor: "t", type: .q4_0, rowLength: 33))
        // Whole blocks overall but not per row (2 rows of 128 for a 256-element block type).
        let rows = withTensors(1, dataBytes: 256) { $0.tensorInfo("k", dims: [128, 2], type: GGMLType.q4_K.rawValue) }
        expect(rows, .partialBlock(tensor: "k", type: .q4_K, rowLength: 128))
    }

    func testTensorPastEnd() {
        let bytes = withTensors(1, dataBytes: 15) { $0.tensorInfo("t", dims: [4]) }
        expect(bytes, .tensorOutOfBounds(tensor: "t", offset: 0, byteCount: 16, available: 15))
    }

    func testTensorOffsetPastEnd() {
        let bytes = withTensors(1, dataBytes: 64) { $0.tensorInfo("t", dims: [4], offset: 64) }
        expect(bytes, .tensorOutOfBounds(tensor: "t", offset: 64, byteCount: 16, available: 64))
    }

    func testTensorOffsetNearUInt64Max() {
        let off = UInt64.max & ~31
        let bytes = withTensors(1, dataBytes: 64) { $0.tensorInfo("t", dims: [4], offset: off) }
        expect(bytes, .tensorOutOfBounds(tensor: "t", offset: off, byteCount: 16, available: 64))
    }

    func testTensorWithoutDataSection() {
        var b = GGUFBytes.header(tensors: 1, kvs: 0)
        b.tensorInfo("t", dims: [4])
        expect(b.bytes, .tensorOutOfBounds(tensor: "t", offset: 0, byteCount: 16, available: 0))
    }

    func testMisalignedTensor() {
        let bytes = withTensors(1, dataBytes: 64) { $0.tensorInfo("t", dims: [4], offset: 4) }
        expect(bytes, .misalignedTensor(tensor: "t", offset: 4, alignment: 32))
    }

    func testDuplicateTensor() {
        let bytes = withTensors(2, dataBytes: 64) { b in
            b.tensorInfo("t", dims: [4], offset: 0)
            b.tensorInfo("t", dims: [4], offset: 32)
        }
        expect(bytes, .duplicateTensor("t"))
    }

    func testEmptyTensorName() {
        let bytes = withTensors(1, dataBytes: 32) { $0.tensorInfo("", dims: [4]) }
        expect(bytes) { if case .badTensorName("", _) = $0 { true } else { false } }
    }

    func testTensorNameTooLong() {
        let name = String(repeating: "n", count: GGUFLimits.maxTensorNameLength + 1)
        let bytes = withTensors(1, dataBytes: 32) { $0.tensorInfo(name, dims: [4]) }
        expect(bytes) { if case .badTensorName(name, _) = $0 { true } else { false } }
    }

    func testTensorNameLengthPastEnd() {
        let bytes = withTensors(1) { b in b.u64(1 << 63); b.zeros(40) }
        expect(bytes) { if case .stringTooLong(what: "name of tensor #0", length: 1 << 63, _) = $0 { true } else { false } }
    }

    func testTruncatedTensorInfo() {
        var b = GGUFBytes.header(tensors: 1, kvs: 0)
        b.tensorInfo("weights", dims: [4, 4])
        let cut = Array(b.bytes.prefix(b.bytes.count - 3))
        expect(cut) { if case .truncated(what: "data offset of tensor 'weights'", _) = $0 { true } else { false } }
    }

    // MARK: mutation fuzzing

    /// A small valid file from the writer, with metadata of every kind and a few tensors.
    private func fuzzSeed() throws -> [UInt8] {
        var w = GGUFWriter()
        w.add(key: "general.architecture", .string("llama"))
        w.add(key: "llama.block_count", .uint32(2))
        w.add(key: "f", .float32(1.5))
        w.add(key: "flag", .bool(true))
        w.add(key: "tokens", .array(GGUFArray(.string(["a", "bc", "def"]))))
        w.add(key: "scores", .array(GGUFArray(.float32([0, -1, -2]))))
        w.add(key: "nested", .array(GGUFArray(.array([GGUFArray(.int64([1, 2])), GGUFArray(.string(["x"]))]))))
        w.addTensor(name: "a", dims: [4, 2], floats: [Float](repeating: 1, count: 8))
        w.addTensor(name: "q", dims: [32], type: .q8_0, data: [UInt8](repeating: 3, count: 34))
        return try w.serialize()
    }

    private func parseNeverCrashes(_ bytes: [UInt8], _ stats: inout (ok: Int, failed: Int)) {
        do {
            let f = try GGUFFile(bytes: bytes)
            for t in f.tensors { XCTAssertEqual(f.tensorData(t).count, t.byteCount) }
            stats.ok += 1
        } catch {
            stats.failed += 1
        }
    }

    func testMutationsNeverCrash() throws {
        let seed = try fuzzSeed()
        XCTAssertNoThrow(try GGUFFile(bytes: seed))
        var stats = (ok: 0, failed: 0)
        // Every truncation.
        for n in 0 ..< seed.count { parseNeverCrashes(Array(seed.prefix(n)), &stats) }
        // Every byte set to a few interesting values.
        for i in 0 ..< seed.count {
            for v: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF, seed[i] ^ 0x01, seed[i] ^ 0x10] {
                var m = seed
                m[i] = v
                parseNeverCrashes(m, &stats)
            }
        }
        // Multi-byte overwrites with extreme 64-bit values, and random multi-byte corruption.
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return rng >> 11 }
        for i in 0 ..< seed.count - 8 {
            for v: UInt64 in [.max, 1 << 63, UInt64(Int64.max), 0x1_0000_0000] {
                var m = seed
                withUnsafeBytes(of: v.littleEndian) { for k in 0 ..< 8 { m[i + k] = $0[k] } }
                parseNeverCrashes(m, &stats)
            }
        }
        for _ in 0 ..< 2000 {
            var m = seed
            for _ in 0 ..< 1 + Int(next() % 4) { m[Int(next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: next()) }
            if next() % 4 == 0 { m.removeLast(Int(next() % UInt64(m.count))) }
            parseNeverCrashes(m, &stats)
        }
        print("GGUF mutations: \(stats.ok) parsed, \(stats.failed) rejected")
        XCTAssertGreaterThan(stats.failed, 0)
        XCTAssertGreaterThan(stats.ok, 0)
    }
}
