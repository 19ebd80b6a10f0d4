// Tests of the safetensors reader (valid files, sharded folders, one malformed file per case, mutation fuzzing) and the JSON reader under it.
import Foundation
import XCTest
@testable import RepengEngine

/// Builds safetensors bytes: a header from `entries` (JSON text of each tensor entry, by name) and `data`.
private func safetensors(_ header: String, data: [UInt8], pad: Bool = true) -> [UInt8] {
    var h = Array(header.utf8)
    if pad { while (8 + h.count) % 8 != 0 { h.append(0x20) } }
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    return out + h + data
}

private func floatBytes(_ v: [Float]) -> [UInt8] { v.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } } }

final class SafeTensorsTests: XCTestCase {
    /// Two F32 tensors, one F16 and one BF16, and metadata.
    private func validFile() -> [UInt8] {
        let a = floatBytes([1, 2, 3, 4, 5, 6])                      // [2, 3] F32
        let b = floatBytes([-0.5, 0.25])                             // [2] F32
        let c: [UInt8] = [0x00, 0x3C, 0x00, 0xC0]                   // F16 1.0, -2.0
        let d: [UInt8] = [0x80, 0x3F, 0x40, 0x40]                   // BF16 1.0, 3.0
        let header = """
        {"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},\
        "b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},"c":{"dtype":"F16","shape":[2],"data_offsets":[32,36]},\
        "d":{"dtype":"BF16","shape":[1,2],"data_offsets":[36,40]}}
        """
        return safetensors(header, data: a + b + c + d)
    }

    private func expect(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line, _ matches: (SafeTensorsError) -> Bool) {
        XCTAssertThrowsError(try SafeTensorsFile(bytes: bytes), file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else { return XCTFail("not a SafeTensorsError: \(error)", file: file, line: line) }
            XCTAssertTrue(matches(e), "unexpected error: \(e)", file: file, line: line)
            XCTAssertFalse(e.description.isEmpty, file: file, line: line)
        }
    }

    /// A one-tensor header with `entry` as the tensor's JSON and `data` bytes.
    private func one(_ entry: String, data: Int) -> [UInt8] {
        safetensors("{\"t\":\(entry)}", data: [UInt8](repeating: 0, count: data))
    }

    func testValidFileReadsEveryDType() throws {
        let f = try SafeTensorsFile(bytes: validFile())
        XCTAssertEqual(f.tensors.map(\.name), ["a", "b", "c", "d"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        let a = try XCTUnwrap(f.tensor(named: "a"))
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.dtype, .f32)
        let inPlace = try XCTUnwrap(f.f32InPlace(a), "an aligned F32 tensor is served from the file")
        XCTAssertEqual(Array(UnsafeBufferPointer(start: inPlace, count: 6)), [1, 2, 3, 4, 5, 6])
        var out = [Float](repeating: 0, count: 2)
        try f.decode(f.tensor(named: "c")!, into: &out)
        XCTAssertEqual(out, [1, -2])
        try f.decode(f.tensor(named: "d")!, into: &out)
        XCTAssertEqual(out, [1, 3])
        XCTAssertNil(f.f32InPlace(f.tensor(named: "c")!))
    }

    func testEmptyTensorAndEmptyHeader() throws {
        XCTAssertEqual(try SafeTensorsFile(bytes: safetensors("{}", data: [])).tensors.count, 0)
        let f = try SafeTensorsFile(bytes: one(#"{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}"#, data: 0))
        XCTAssertEqual(f.tensors.first?.byteCount, 0)
    }

    func testTruncatedAndBadHeaderLengths() {
        expect([1, 2, 3]) { if case .truncated(3) = $0 { return true }; return false }
        var b = validFile()
        b.replaceSubrange(0..<8, with: [1, 0, 0, 0, 0, 0, 0, 0])
        expect(b) { if case .headerLength(1, _) = $0 { return true }; return false }
        b.replaceSubrange(0..<8, with: [0, 0, 0, 0, 1, 0, 0, 0])          // 2^32, past the end
        expect(b) { if case .headerLength(1 << 32, _) = $0 { return true }; return false }
        b.replaceSubrange(0..<8, with: [0, 0xE2, 0xF5, 0x05, 0, 0, 0, 0])  // 100,000,256 > the limit
        expect(b) { if case .headerLength(100_000_256, _) = $0 { return true }; return false }
        b.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        expect(b) { if case .headerLength(UInt64.max, _) = $0 { return true }; return false }
    }

    func testHeaderNotJSONOrNotAnObject() {
        expect(safetensors("{\"a\":", data: [])) { if case .headerJSON = $0 { return true }; return false }
        expect(safetensors("[1,2]", data: [])) { $0 == .headerNotObject(found: "an array") }
        expect(safetensors("{} x", data: [])) { if case .headerJSON = $0 { return true }; return false }
        expect(safetensors("{\"t\":\"x\"}", data: [])) { if case .badEntry("t", _) = $0 { return true }; return false }
        var bad = safetensors("{\"\u{e9}\":1}", data: [])
        bad[10] = 0xFF                                                     // invalid UTF-8 inside the key
        expect(bad) { if case .headerJSON = $0 { return true }; return false }
    }

    func testBadEntries() {
        expect(one(#"{"shape":[1],"data_offsets":[0,4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F17","shape":[1],"data_offsets":[0,4]}"#, data: 4)) { $0 == .unknownDType(tensor: "t", dtype: "F17") }
        expect(one(#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":"1","data_offsets":[0,4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1],"data_offsets":[0]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}"#, data: 4)) { if case .badEntry("t", _) = $0 { return true }; return false }
    }

    func testSizesAndOffsets() {
        // Shape × dtype ≠ the offsets' span; an overflowing shape.
        expect(one(#"{"dtype":"F32","shape":[2],"data_offsets":[0,4]}"#, data: 4)) { $0 == .sizeMismatch(tensor: "t", expected: 8, found: 4) }
        expect(one(#"{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}"#, data: 4)) {
            $0 == .sizeMismatch(tensor: "t", expected: nil, found: 4)
        }
        expect(one(#"{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}"#, data: 0)) {
            $0 == .sizeMismatch(tensor: "t", expected: nil, found: 0)
        }
        expect(one(#"{"dtype":"F32","shape":[1],"data_offsets":[8,4]}"#, data: 8)) { if case .badOffsets("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#, data: 4)) { if case .badOffsets("t", _) = $0 { return true }; return false }
        expect(one(#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, data: 12)) { $0 == .trailingBytes(count: 8) }
        // A hole before the second tensor, an overlap, and offsets huge enough to overflow.
        let hole = safetensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                               data: [UInt8](repeating: 0, count: 12))
        expect(hole) { if case .badOffsets("b", let r) = $0 { return r.contains("hole") }; return false }
        let overlap = safetensors(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                  data: [UInt8](repeating: 0, count: 8))
        expect(overlap) { if case .badOffsets(_, let r) = $0 { return r.contains("overlaps") }; return false }
        expect(one(#"{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775807,9223372036854775807]}"#, data: 0)) {
            if case .badOffsets("t", _) = $0 { return true }; return false
        }
    }

    func testDuplicateNamesAndMetadata() {
        let dup = safetensors(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
                              data: [0, 0])
        expect(dup) { $0 == .duplicateTensor("a") }
        expect(safetensors(#"{"__metadata__":[1]}"#, data: [])) { if case .badMetadata = $0 { return true }; return false }
        expect(safetensors(#"{"__metadata__":{"k":1}}"#, data: [])) { if case .badMetadata = $0 { return true }; return false }
    }

    func testMessagesQuoteAtMost200CharactersOfAName() {
        let long = String(repeating: "x", count: 10_000)
        let bytes = safetensors("{\"\(long)\":{\"dtype\":\"F99\",\"shape\":[],\"data_offsets\":[0,0]}}", data: [])
        XCTAssertThrowsError(try SafeTensorsFile(bytes: bytes)) { e in
            XCTAssertLessThan("\(e)".count, 400, "\(e)")
        }
    }

    func testNotARegularFileOrMissing() {
        XCTAssertThrowsError(try SafeTensorsFile(path: NSTemporaryDirectory())) { e in
            guard case .io(_, EINVAL, _)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: "/nonexistent/model.safetensors")) { e in
            guard case .io(_, ENOENT, _)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
        }
    }

    /// Random byte flips, truncations and header-length changes of a valid file: always a
    /// SafeTensorsError or a file whose tensors lie inside it.
    func testMutationsNeverCrash() {
        let valid = validFile()
        var rng = SeededGenerator(seed: 11)
        var refused = 0
        for _ in 0..<4_000 {
            var b = valid
            switch rng.next() % 4 {
            case 0: for _ in 0..<(1 + Int(rng.next() % 4)) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            case 2: b[Int(rng.next() % 8)] = UInt8(truncatingIfNeeded: rng.next())
            default:
                let i = 8 + Int(rng.next() % UInt64(b.count - 8))
                b.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
            }
            do {
                let f = try SafeTensorsFile(bytes: b)
                for t in f.tensors { XCTAssertLessThanOrEqual(t.offset + t.byteCount, b.count) }
            } catch {
                refused += 1
            }
        }
        print("safetensors mutations: \(refused) of 4000 refused, none crashed")
    }

    // MARK: Sharded folders

    private func folder(_ files: [String: [UInt8]]) throws -> String {
        let dir = NSTemporaryDirectory() + "st-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        return dir
    }

    func testShardedCheckpoint() throws {
        let s1 = safetensors(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: floatBytes([1, 2]))
        let s2 = safetensors(#"{"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: floatBytes([3]))
        let index = #"{"metadata":{"total_size":12},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}}"#
        let dir = try folder(["a.safetensors": s1, "b.safetensors": s2, SafeTensorsCheckpoint.indexName: Array(index.utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try SafeTensorsCheckpoint(folder: dir)
        XCTAssertEqual(c.files.count, 2)
        XCTAssertEqual(Set(c.tensorNames), ["x", "y"])
        XCTAssertEqual(c.tensor(named: "y")?.shape, [1])
        XCTAssertTrue(c.file(of: "y") === c.files[1])
    }

    func testBadIndexes() throws {
        let s1 = safetensors(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: floatBytes([1, 2]))
        for (index, needle) in [(#"{"weight_map":{"x":"../a.safetensors"}}"#, "not a file name"),
                                (#"{"weight_map":{"x":"a.safetensors","z":"a.safetensors"}}"#, "'z' is not in its shard"),
                                (#"{"weight_map":{"x":1}}"#, "not a file name"),
                                (#"{"weight_map":{}}"#, "empty"),
                                (#"{"weight_map":{"x":"a.safetensors","x":"a.safetensors"}}"#, "twice"),
                                (#"{"metadata":{}}"#, "no weight_map"),
                                ("{", "not valid JSON")] {
            let dir = try folder(["a.safetensors": s1, SafeTensorsCheckpoint.indexName: Array(index.utf8)])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            XCTAssertThrowsError(try SafeTensorsCheckpoint(folder: dir), index) { e in
                guard case .badIndex(_, let reason)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
                XCTAssertTrue(reason.contains(needle), "\(index): \(reason)")
            }
        }
        let dir = try folder(["a.safetensors": s1, SafeTensorsCheckpoint.indexName: Array(#"{"weight_map":{"x":"gone.safetensors"}}"#.utf8)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try SafeTensorsCheckpoint(folder: dir)) { e in
            guard case .io(_, ENOENT, _)? = e as? SafeTensorsError else { return XCTFail("\(e)") }
        }
    }

    // MARK: JSON

    func testJSONValues() throws {
        let v = try JSONReader.parse(#" {"a": [1, -2, 3.5, 1e3, true, false, null, "\u00e9\ud83d\ude00\n\"\\\/"], "b": {}, "a": NaN} "#)
        let o = try XCTUnwrap(v.object)
        XCTAssertEqual(o.keys, ["a", "b", "a"])
        XCTAssertEqual(o.firstDuplicateKey, "a")
        XCTAssertTrue(o["a"]?.double?.isNaN ?? false, "the last value of a repeated key wins, as in Python")
        let a = try XCTUnwrap(o.values[0].array)
        XCTAssertEqual(a[0], .int(1))
        XCTAssertEqual(a[1], .int(-2))
        XCTAssertEqual(a[2], .double(3.5))
        XCTAssertEqual(a[3], .double(1000))
        XCTAssertEqual(a[3].int, 1000)
        XCTAssertEqual(Array(a[4...6]), [.bool(true), .bool(false), .null])
        XCTAssertEqual(a[7], .string("é😀\n\"\\/"))
        XCTAssertEqual(try JSONReader.parse(#""\ud800x""#), .string("\u{FFFD}x"), "a lone surrogate becomes U+FFFD")
        XCTAssertEqual(try JSONReader.parse("-Infinity"), .double(-.infinity))
        XCTAssertEqual(try JSONReader.parse("123456789012345678901234567890"), .double(1.2345678901234568e29))
    }

    func testJSONRefusals() {
        for bad in ["", "01", "1.", "-", "[1,]", "{\"a\":1,}", "{a:1}", "[1 2]", "\"\u{01}\"", "\"\\x\"", "\"\\u12\"",
                    "tru", "[", "{\"a\"", "\"abc", "1 2", "//", "'a'"] {
            XCTAssertThrowsError(try JSONReader.parse(bad), bad.debugDescription)
        }
        XCTAssertThrowsError(try JSONReader.parse([0x22, 0xC3, 0x28, 0x22]), "invalid UTF-8")
        let deep = String(repeating: "[", count: JSONReader.maxDepth + 1) + String(repeating: "]", count: JSONReader.maxDepth + 1)
        XCTAssertThrowsError(try JSONReader.parse(deep)) { e in XCTAssertTrue("\(e)".contains("nested deeper"), "\(e)") }
        let ok = String(repeating: "[", count: JSONReader.maxDepth) + String(repeating: "]", count: JSONReader.maxDepth)
        XCTAssertNoThrow(try JSONReader.parse(ok))
        let hugeDeep = String(repeating: "[", count: 1_000_000)
        XCTAssertThrowsError(try JSONReader.parse(hugeDeep))
    }
}
