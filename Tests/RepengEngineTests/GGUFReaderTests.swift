// Tests of the GGUF v2/v3 reader and writer: value types, tensors, byte-exact round trips, real models.
import Foundation
import XCTest
@testable import RepengEngine

/// Builds GGUF bytes by hand, field by field (little-endian), for reader tests.
struct GGUFBytes {
    var bytes: [UInt8] = []

    /// Magic, version and the two counts.
    static func header(version: UInt32 = 3, tensors: UInt64 = 0, kvs: UInt64 = 0) -> GGUFBytes {
        var b = GGUFBytes()
        b.raw(Array("GGUF".utf8))
        b.u32(version)
        b.u64(tensors)
        b.u64(kvs)
        return b
    }

    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { le(v) }
    mutating func u64(_ v: UInt64) { le(v) }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); raw(Array(s.utf8)) }
    /// Key and value type tag; the value must follow.
    mutating func key(_ k: String, _ type: GGUFValueType) { str(k); u32(type.rawValue) }
    mutating func kvString(_ k: String, _ v: String) { key(k, .string); str(v) }
    mutating func kvU32(_ k: String, _ v: UInt32) { key(k, .uint32); u32(v) }
    mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) {
        str(name)
        u32(UInt32(dims.count))
        for d in dims { u64(d) }
        u32(type)
        u64(offset)
    }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func pad(_ alignment: Int = 32) { zeros((alignment - bytes.count % alignment) % alignment) }
}

final class GGUFReaderTests: XCTestCase {
    /// One of every scalar type, strings and arrays of every element type, including nested ones.
    static func everyValueWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.add(key: "general.architecture", .string("llama"))
        w.add(key: "t.u8", .uint8(200))
        w.add(key: "t.i8", .int8(-100))
        w.add(key: "t.u16", .uint16(65_000))
        w.add(key: "t.i16", .int16(-32_000))
        w.add(key: "t.u32", .uint32(4_000_000_000))
        w.add(key: "t.i32", .int32(-2_000_000_000))
        w.add(key: "t.f32", .float32(3.25))
        w.add(key: "t.bool.t", .bool(true))
        w.add(key: "t.bool.f", .bool(false))
        w.add(key: "t.str", .string("héllo ✓ 🙂"))
        w.add(key: "t.str.empty", .string(""))
        w.add(key: "t.u64", .uint64(UInt64.max))
        w.add(key: "t.i64", .int64(Int64.min))
        w.add(key: "t.f64", .float64(-1e300))
        w.add(key: "a.u8", .array(GGUFArray(.uint8([0, 1, 255]))))
        w.add(key: "a.i8", .array(GGUFArray(.int8([-128, 127]))))
        w.add(key: "a.u16", .array(GGUFArray(.uint16([1, 65535]))))
        w.add(key: "a.i16", .array(GGUFArray(.int16([-5, 5]))))
        w.add(key: "a.u32", .array(GGUFArray(.uint32([7, 8, 9]))))
        w.add(key: "a.i32", .array(GGUFArray(.int32([-1, 0, 1]))))
        w.add(key: "a.f32", .array(GGUFArray(.float32([0.5, -2, .infinity]))))
        w.add(key: "a.bool", .array(GGUFArray(.bool([true, false, true]))))
        w.add(key: "a.str", .array(GGUFArray(.string(["a", "", "ĠHello", "▁x", "<0x0A>"]))))
        w.add(key: "a.u64", .array(GGUFArray(.uint64([UInt64.max, 3]))))
        w.add(key: "a.i64", .array(GGUFArray(.int64([Int64.min, 4]))))
        w.add(key: "a.f64", .array(GGUFArray(.float64([1.5, -0.0]))))
        w.add(key: "a.empty", .array(GGUFArray(.int32([]))))
        w.add(key: "a.nested", .array(GGUFArray(.array([
            GGUFArray(.string(["x", "y"])),
            GGUFArray(.float32([1, 2, 3])),
            GGUFArray(.array([GGUFArray(.uint8([9])), GGUFArray(.bool([]))])),
            GGUFArray(.array([])),
        ]))))
        return w
    }

    func testEveryValueTypeRoundTrip() throws {
        let w = Self.everyValueWriter()
        let bytes = try w.serialize()
        let f = try GGUFFile(bytes: bytes)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.metadataKeys.count, 29)
        XCTAssertEqual(f.metadata["t.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["t.i8"], .int8(-100))
        XCTAssertEqual(f.metadata["t.u16"], .uint16(65_000))
        XCTAssertEqual(f.metadata["t.i16"], .int16(-32_000))
        XCTAssertEqual(f.metadata["t.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f.metadata["t.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f.metadata["t.f32"], .float32(3.25))
        XCTAssertEqual(f.metadata["t.bool.t"], .bool(true))
        XCTAssertEqual(f.metadata["t.bool.f"], .bool(false))
        XCTAssertEqual(f.metadata["t.str"], .string("héllo ✓ 🙂"))
        XCTAssertEqual(f.metadata["t.str.empty"], .string(""))
        XCTAssertEqual(f.metadata["t.u64"], .uint64(.max))
        XCTAssertEqual(f.metadata["t.i64"], .int64(.min))
        XCTAssertEqual(f.metadata["t.f64"], .float64(-1e300))
        XCTAssertEqual(f.metadata["a.str"]?.array?.strings, ["a", "", "ĠHello", "▁x", "<0x0A>"])
        XCTAssertEqual(f.metadata["a.f32"]?.array?.floats, [0.5, -2, .infinity])
        XCTAssertEqual(f.metadata["a.i32"]?.array?.ints, [-1, 0, 1])
        XCTAssertEqual(f.metadata["a.u8"]?.array?.ints, [0, 1, 255])
        XCTAssertNil(f.metadata["a.u64"]?.array?.ints, "UInt64.max does not fit Int")
        XCTAssertEqual(f.metadata["a.i64"]?.array?.ints, [Int(Int64.min), 4])
        XCTAssertEqual(f.metadata["a.bool"]?.array?.bools, [true, false, true])
        XCTAssertEqual(f.metadata["a.f64"]?.array?.storage, .float64([1.5, -0.0]))
        XCTAssertEqual(f.metadata["a.empty"]?.array?.elementType, .int32)
        XCTAssertEqual(f.metadata["a.empty"]?.array?.count, 0)
        let nested = try XCTUnwrap(f.metadata["a.nested"]?.array)
        XCTAssertEqual(nested.elementType, .array)
        XCTAssertEqual(nested.count, 4)
        XCTAssertEqual(nested.arrays?[0].strings, ["x", "y"])
        XCTAssertEqual(nested.arrays?[1].floats, [1, 2, 3])
        XCTAssertEqual(nested.arrays?[2].arrays?[0].ints, [9])
        XCTAssertEqual(nested.arrays?[2].arrays?[1].elementType, .bool)
        XCTAssertEqual(nested.arrays?[3].count, 0)
        XCTAssertEqual(nested[1], .array(GGUFArray(.float32([1, 2, 3]))))
        // Every value survives unchanged, and re-serializing gives the same bytes.
        let again = try GGUFWriter(copying: f).serialize()
        XCTAssertEqual(again, bytes)
        XCTAssertEqual(bytes.count % 32, 0)
        XCTAssertTrue(f.tensors.isEmpty)
        XCTAssertEqual(f.dataOffset, bytes.count)
    }

    func testValueAccessors() throws {
        XCTAssertEqual(GGUFValue.uint8(7).int, 7)
        XCTAssertEqual(GGUFValue.int64(-7).int, -7)
        XCTAssertEqual(GGUFValue.uint64(UInt64(Int.max)).int, Int.max)
        XCTAssertNil(GGUFValue.uint64(UInt64(Int.max) + 1).int)
        XCTAssertNil(GGUFValue.float32(1).int)
        XCTAssertNil(GGUFValue.bool(true).int)
        XCTAssertEqual(GGUFValue.float64(0.5).float, 0.5)
        XCTAssertEqual(GGUFValue.float32(0.25).float, 0.25)
        XCTAssertNil(GGUFValue.int32(1).float)
        XCTAssertEqual(GGUFValue.bool(true).bool, true)
        XCTAssertNil(GGUFValue.uint8(1).bool)
        XCTAssertEqual(GGUFValue.string("s").string, "s")
        XCTAssertNil(GGUFValue.string("s").array)
        XCTAssertNil(GGUFArray(.float64([1])).floats)
        XCTAssertNil(GGUFArray(.string(["1"])).ints)
        XCTAssertEqual(GGUFArray(.uint8([1, 2])).values, [.uint8(1), .uint8(2)])

        let f = try GGUFFile(bytes: Self.everyValueWriter().serialize())
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(try f.int("t.u32"), 4_000_000_000)
        XCTAssertEqual(try f.int("t.i8"), -100)
        XCTAssertEqual(try f.float("t.f32"), 3.25)
        XCTAssertEqual(try f.bool("t.bool.t"), true)
        XCTAssertEqual(try f.array("a.str").count, 5)
        XCTAssertEqual(try f.optionalString("t.str.empty"), "")
        XCTAssertNil(try f.optionalString("nope"))
        XCTAssertNil(try f.optionalInt("nope"))
        XCTAssertNil(try f.optionalFloat("nope"))
        XCTAssertNil(try f.optionalBool("nope"))
        XCTAssertNil(try f.optionalArray("nope"))
        XCTAssertEqual(try f.optionalInt("t.u16"), 65_000)
        XCTAssertEqual(try f.optionalBool("t.bool.f"), false)
        XCTAssertThrowsError(try f.string("nope")) { XCTAssertEqual($0 as? GGUFError, .missingKey("nope")) }
        XCTAssertThrowsError(try f.int("t.str")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.str", expected: "integer")) }
        XCTAssertThrowsError(try f.int("t.u64")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.u64", expected: "integer")) }
        XCTAssertThrowsError(try f.float("t.i32")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.i32", expected: "float")) }
        XCTAssertThrowsError(try f.optionalString("t.u8")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.u8", expected: "string")) }
        XCTAssertThrowsError(try f.optionalInt("t.f32")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.f32", expected: "integer")) }
        XCTAssertThrowsError(try f.optionalFloat("t.str")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.str", expected: "float")) }
        XCTAssertThrowsError(try f.optionalBool("t.u8")) { XCTAssertEqual($0 as? GGUFError, .wrongType(key: "t.u8", expected: "bool")) }
        XCTAssertTrue(GGUFError.missingKey("llama.block_count").description.contains("llama.block_count"))
    }

    func testHandBuiltFile() throws {
        var b = GGUFBytes.header(tensors: 2, kvs: 2)
        b.kvString("general.architecture", "llama")
        b.kvU32("llama.block_count", 30)
        b.tensorInfo("a", dims: [4, 2], type: GGMLType.f32.rawValue, offset: 0)
        b.tensorInfo("b", dims: [32], type: GGMLType.q8_0.rawValue, offset: 32)
        b.pad()
        let dataStart = b.bytes.count
        for i in 0 ..< 8 { b.le(Float(i).bitPattern) }
        b.zeros(34)
        let f = try GGUFFile(bytes: b.bytes)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.dataOffset, dataStart)
        XCTAssertEqual(f.metadataKeys, ["general.architecture", "llama.block_count"])
        XCTAssertEqual(try f.int("llama.block_count"), 30)
        XCTAssertEqual(f.tensors.map(\.name), ["a", "b"])
        let a = try XCTUnwrap(f.tensor(named: "a"))
        XCTAssertEqual(a.dims, [4, 2])
        XCTAssertEqual(a.elementCount, 8)
        XCTAssertEqual(a.byteCount, 32)
        XCTAssertEqual(a.rowCount, 2)
        let floats = f.tensorData(a).withMemoryRebound(to: UInt32.self) { $0.map { Float(bitPattern: UInt32(littleEndian: $0)) } }
        XCTAssertEqual(floats, [0, 1, 2, 3, 4, 5, 6, 7])
        let q = try XCTUnwrap(f.tensor(named: "b"))
        XCTAssertEqual(q.type, .q8_0)
        XCTAssertEqual(q.offset, 32)
        XCTAssertEqual(q.byteCount, 34)
        XCTAssertEqual(f.tensorData(q).count, 34)
        XCTAssertNil(f.tensor(named: "c"))
        // An info that does not belong to this file yields no bytes.
        let foreign = GGUFTensorInfo(name: "x", dims: [1 << 20], type: .f32, offset: 0, elementCount: 1 << 20, byteCount: 4 << 20)
        XCTAssertEqual(f.tensorData(foreign).count, 0)
    }

    func testVersion2File() throws {
        var b = GGUFBytes.header(version: 2, tensors: 1, kvs: 1)
        b.kvString("general.architecture", "llama")
        b.tensorInfo("w", dims: [3], type: GGMLType.f16.rawValue, offset: 0)
        b.pad()
        b.zeros(6)
        let f = try GGUFFile(bytes: b.bytes)
        XCTAssertEqual(f.version, 2)
        XCTAssertEqual(f.tensors.first?.byteCount, 6)
        XCTAssertEqual(try f.string("general.architecture"), "llama")
    }

    func testFileWithoutTensorsMayEndBeforePadding() throws {
        var b = GGUFBytes.header(tensors: 0, kvs: 1)
        b.kvU32("x", 1)
        XCTAssertNotEqual(b.bytes.count % 32, 0)
        let f = try GGUFFile(bytes: b.bytes)
        XCTAssertEqual(f.dataOffset % 32, 0)
        XCTAssertGreaterThan(f.dataOffset, b.bytes.count)
    }

    func testEmptyTensorIsValid() throws {
        var b = GGUFBytes.header(tensors: 1, kvs: 0)
        b.tensorInfo("empty", dims: [0, 7], type: GGMLType.q4_K.rawValue, offset: 0)
        let f = try GGUFFile(bytes: b.bytes)
        let t = try XCTUnwrap(f.tensors.first)
        XCTAssertEqual(t.elementCount, 0)
        XCTAssertEqual(t.byteCount, 0)
        XCTAssertEqual(f.tensorData(t).count, 0)
    }

    func testWriterTensorsAndAlignment() throws {
        var w = GGUFWriter(alignment: 64)
        w.add(key: "general.architecture", .string("controlvector"))
        w.add(key: "controlvector.layer_count", .uint32(2))
        w.addTensor(name: "direction.1", dims: [5], floats: [1, 2, 3, 4, 5])
        w.addTensor(name: "direction.2", dims: [3], floats: [-1, 0, 1])
        w.addTensor(name: "q", dims: [32, 2], type: .q4_0, data: [UInt8](repeating: 0x11, count: 36))
        w.addTensor(name: "z", dims: [0], type: .f32, data: [])
        w.addTensor(name: "four", dims: [1, 1, 1, 2], floats: [7, 8])
        let bytes = try w.serialize()
        let f = try GGUFFile(bytes: bytes)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.metadataKeys.first, "general.alignment")
        XCTAssertEqual(f.metadata["general.alignment"], .uint32(64))
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(f.tensors.map(\.offset), [0, 64, 128, 192, 192])
        for t in f.tensors { XCTAssertEqual(t.offset % 64, 0) }
        let d1 = try XCTUnwrap(f.tensor(named: "direction.1"))
        XCTAssertEqual(Array(f.tensorData(d1)), w1Bytes([1, 2, 3, 4, 5]))
        XCTAssertEqual(f.tensor(named: "four")?.dims, [1, 1, 1, 2])
        XCTAssertEqual(Array(f.tensorData(try XCTUnwrap(f.tensor(named: "q")))), [UInt8](repeating: 0x11, count: 36))
        XCTAssertEqual(bytes.count, f.dataOffset + 256)
        XCTAssertEqual(try GGUFWriter(copying: f).serialize(), bytes)

        // Re-adding a key replaces its value in place; general.alignment drives the alignment.
        var w2 = GGUFWriter()
        w2.add(key: "a", .uint8(1))
        w2.add(key: "general.alignment", .uint32(16))
        w2.add(key: "a", .uint8(2))
        XCTAssertEqual(w2.alignment, 16)
        let f2 = try GGUFFile(bytes: w2.serialize())
        XCTAssertEqual(f2.metadataKeys, ["a", "general.alignment"])
        XCTAssertEqual(f2.metadata["a"], .uint8(2))
        XCTAssertEqual(f2.alignment, 16)
    }

    private func w1Bytes(_ floats: [Float]) -> [UInt8] {
        var b = GGUFBytes()
        for f in floats { b.le(f.bitPattern) }
        return b.bytes
    }

    func testWriterRejectsWhatTheReaderWould() {
        func expect(_ w: GGUFWriter, _ error: GGUFError, line: UInt = #line) {
            XCTAssertThrowsError(try w.serialize(), line: line) { XCTAssertEqual($0 as? GGUFError, error, line: line) }
        }
        var w = GGUFWriter()
        w.addTensor(name: "t", dims: [4], type: .f32, data: [0, 0, 0])
        expect(w, .tensorSizeMismatch(tensor: "t", expected: 16, actual: 3))
        w = GGUFWriter()
        w.addTensor(name: "t", dims: [1], floats: [1])
        w.addTensor(name: "t", dims: [1], floats: [1])
        expect(w, .duplicateTensor("t"))
        w = GGUFWriter()
        w.addTensor(name: "t", dims: [33], type: .q4_0, data: [])
        expect(w, .partialBlock(tensor: "t", type: .q4_0, rowLength: 33))
        w = GGUFWriter()
        w.addTensor(name: "t", dims: [1, 1, 1, 1, 1], floats: [1])
        expect(w, .badDimensionCount(tensor: "t", n: 5))
        w = GGUFWriter()
        w.addTensor(name: "t", dims: [Int.max, 2], type: .f32, data: [])
        expect(w, .dimensionOverflow(tensor: "t"))
        w = GGUFWriter()
        w.addTensor(name: "", dims: [1], floats: [1])
        expect(w, .badTensorName("", reason: "empty name"))
        expect(GGUFWriter(alignment: 24), .badAlignment(24))
        expect(GGUFWriter(alignment: 0), .badAlignment(0))
        w = GGUFWriter()
        w.add(key: "", .uint8(0))
        expect(w, .emptyKey(index: 0))
        w = GGUFWriter()
        w.add(key: "general.alignment", .uint64(32))
        expect(w, .wrongType(key: "general.alignment", expected: "uint32"))
        var deep = GGUFArray(.uint8([1]))
        for _ in 0 ..< GGUFLimits.maxArrayNesting { deep = GGUFArray(.array([deep])) }
        w = GGUFWriter()
        w.add(key: "deep", .array(deep))
        expect(w, .nestingTooDeep(key: "deep"))
    }

    func testPathAndBytesAgree() throws {
        let bytes = try Self.everyValueWriter().serialize()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-reader-\(getpid()).gguf")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let f = try GGUFFile(path: url.path)
        XCTAssertEqual(f.path, url.path)
        XCTAssertEqual(f.metadata, try GGUFFile(bytes: bytes).metadata)
        XCTAssertEqual(Array(f.rawBytes), bytes)
    }

    func testIOErrors() {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/dir/model.gguf")) { error in
            guard case .io(let path, let code, _)? = error as? GGUFError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/dir/model.gguf")
            XCTAssertEqual(code, ENOENT)
        }
        XCTAssertThrowsError(try GGUFFile(path: FileManager.default.temporaryDirectory.path)) { error in
            guard case .io(_, _, let message)? = error as? GGUFError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("regular"))
        }
    }

    func testGGMLTypeNamesAndSizes() {
        XCTAssertEqual(GGMLType.q4_K.description, "Q4_K")
        XCTAssertEqual(GGMLType.iq2_XXS.description, "IQ2_XXS")
        XCTAssertEqual(GGMLType.f32.description, "F32")
        XCTAssertEqual(Set(GGMLType.allCases.map(\.description)).count, GGMLType.allCases.count)
        // ggml-common.h: block_q8_1 is two halves (d, s) and 32 int8 quants.
        XCTAssertEqual(GGMLType.q8_1.blockBytes, 36)
        XCTAssertEqual(GGMLType.q4_K.byteCount(elements: 512), 288)
        XCTAssertNil(GGMLType.q4_0.byteCount(elements: 33))
    }

    // MARK: real models

    func testSmolLM2() throws {
        let path = try TestSupport.modelPath(TestSupport.smolLM2File)
        let start = Date()
        let f = try GGUFFile(path: path)
        let elapsed = Date().timeIntervalSince(start)
        print("SmolLM2: version \(f.version), \(f.metadataKeys.count) keys, \(f.tensors.count) tensors, data at \(f.dataOffset), parsed in \(Int(elapsed * 1000)) ms")
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(try f.int("llama.block_count"), 30)
        XCTAssertEqual(try f.int("llama.embedding_length"), 576)
        XCTAssertEqual(try f.string("tokenizer.ggml.model"), "gpt2")
        XCTAssertEqual(try f.string("tokenizer.ggml.pre"), "smollm")
        XCTAssertEqual(f.tensors.count, 272)
        let tokens = try XCTUnwrap(f.array("tokenizer.ggml.tokens").strings)
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(f.tensor(named: "token_embd.weight")?.dims, [576, 49152])
        for t in f.tensors {
            XCTAssertEqual((f.dataOffset + t.offset) % f.alignment, 0)
            XCTAssertEqual(f.tensorData(t).count, t.byteCount)
        }
        // The writer reproduces the llama.cpp-written file byte for byte.
        let copy = try GGUFWriter(copying: f).serialize()
        XCTAssertEqual(copy.count, f.fileSize)
        XCTAssertTrue(Self.sameBytes(copy, f.rawBytes), "SmolLM2 round trip differs")
    }

    func testGemma3() throws {
        let path = try TestSupport.modelPath(TestSupport.gemma3File)
        let start = Date()
        let f = try GGUFFile(path: path)
        let elapsed = Date().timeIntervalSince(start)
        print("Gemma3: version \(f.version), \(f.metadataKeys.count) keys, \(f.tensors.count) tensors, data at \(f.dataOffset), parsed in \(Int(elapsed * 1000)) ms")
        XCTAssertEqual(try f.string("general.architecture"), "gemma3")
        XCTAssertEqual(try f.int("gemma3.block_count"), 18)
        XCTAssertEqual(try f.string("tokenizer.ggml.model"), "llama")
        let tokens = try f.array("tokenizer.ggml.tokens")
        XCTAssertEqual(try f.array("tokenizer.ggml.scores").floats?.count, tokens.count)
        XCTAssertEqual(try f.array("tokenizer.ggml.token_type").ints?.count, tokens.count)
        print("Gemma3: \(tokens.count) tokens; types: \(Set(f.tensors.map(\.type.description)).sorted())")
        for t in f.tensors { XCTAssertEqual(f.tensorData(t).count, t.byteCount) }
        let copy = try GGUFWriter(copying: f).serialize()
        XCTAssertTrue(Self.sameBytes(copy, f.rawBytes), "Gemma3 round trip differs")
    }

    private static func sameBytes(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in
            guard let x = pa.baseAddress, let y = b.baseAddress else { return pa.count == 0 }
            return memcmp(x, y, a.count) == 0
        }
    }
}
