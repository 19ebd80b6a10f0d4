// Tensor decoding tests: gguf-py golden blocks, SIMD vs scalar reference on random blocks, IEEE half conversion, errors.
import Foundation
import XCTest
@testable import RepengEngine

/// One Fixtures/quant/<TYPE>.json file written by scripts/reference/make_quant_fixtures.py.
struct DequantFixtureFile: Decodable {
    struct Record: Decodable {
        let type: String
        let model: String
        let tensor: String
        let block_offset: Int
        let n_blocks: Int
        let n_elements: Int
        /// "model" (bytes from a model file), "quantized" (real values encoded by gguf-py) or "synthetic".
        let origin: String
        let raw: String
        let expected: [Double]

        var bytes: [UInt8] { Data(base64Encoded: raw).map { [UInt8]($0) } ?? [] }
        /// The expected values; each JSON number is the exact value of an f32, so the conversion is exact.
        var expectedFloats: [Float] { expected.map { Float($0) } }
    }

    let type: String
    let records: [Record]

    /// Types covered by the fixtures (every type `Dequant` decodes).
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

    static func load(_ type: GGMLType) throws -> DequantFixtureFile {
        try TestSupport.loadJSON(DequantFixtureFile.self, "quant/\(type.description).json")
    }
}

/// Deterministic SplitMix64 generator for reproducible random blocks.
struct DequantRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] {
        (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}

/// Decodes with the fast path or the reference path.
func dequantForTest(_ type: GGMLType, _ bytes: [UInt8], count: Int, reference: Bool) throws -> [Float] {
    var out = [Float](repeating: .nan, count: count)
    try bytes.withUnsafeBytes { src in
        try out.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            if reference {
                try Dequant.decodeReference(type, src, count: count, into: base)
            } else {
                try Dequant.decode(type, src, count: count, into: base)
            }
        }
    }
    return out
}

/// Same bits, or both NaN when `nanEquivalent` (NaN payloads may legitimately differ after arithmetic).
func sameFloat(_ a: Float, _ b: Float, nanEquivalent: Bool = false) -> Bool {
    a.bitPattern == b.bitPattern || (nanEquivalent && a.isNaN && b.isNaN)
}

final class DequantTests: XCTestCase {
    /// Every fixture block decodes to gguf-py's values, bit for bit, on both paths.
    func testFixturesMatchGGUFPy() throws {
        for type in DequantFixtureFile.types {
            let file = try DequantFixtureFile.load(type)
            XCTAssertEqual(file.type, type.description)
            XCTAssertFalse(file.records.isEmpty, "\(type): no fixture records")
            var maxDiff: Float = 0
            var mismatches = 0
            var elements = 0
            for record in file.records {
                let bytes = record.bytes
                XCTAssertEqual(bytes.count, type.byteCount(elements: record.n_elements), "\(type) \(record.tensor)")
                XCTAssertEqual(record.expected.count, record.n_elements)
                let expected = record.expectedFloats
                let fast = try dequantForTest(type, bytes, count: record.n_elements, reference: false)
                let ref = try dequantForTest(type, bytes, count: record.n_elements, reference: true)
                for i in 0..<expected.count {
                    maxDiff = max(maxDiff, abs(fast[i] - expected[i]), abs(ref[i] - expected[i]))
                    if !sameFloat(fast[i], expected[i]) || !sameFloat(ref[i], expected[i]) { mismatches += 1 }
                }
                XCTAssertEqual(fast.map(\.bitPattern), ref.map(\.bitPattern), "\(type) \(record.tensor): fast != reference")
                elements += expected.count
            }
            print("dequant fixture \(type): \(file.records.count) records, \(elements) values, "
                + "max |decoded - gguf-py| = \(maxDiff), bit mismatches = \(mismatches)")
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) values differ from gguf-py (max abs diff \(maxDiff))")
        }
    }

    /// The SIMD kernels and the scalar reference agree bit for bit on random bytes.
    func testFastMatchesReferenceOnRandomBlocks() throws {
        var rng = DequantRNG(state: 0x5EED_0001)
        for type in DequantFixtureFile.types {
            // Plain types: odd counts exercise the scalar tail of the 16-wide loops.
            let blocks = type.blockSize == 1 ? 4099 : 3000
            let count = blocks * type.blockSize
            var bytes = rng.bytes(blocks * type.blockBytes)
            let f16Fields = Self.halfFieldOffsets(type)
            // Give most blocks realistic finite scales (half in [2^-14, 2^-2)); leave every 8th raw
            // so zero/subnormal/inf/NaN scales are covered too.
            if !f16Fields.isEmpty {
                for b in 0..<blocks where b % 8 != 0 {
                    for field in f16Fields {
                        let h = UInt16(0x0400 + Int(rng.next() % 0x3000))
                        bytes[b * type.blockBytes + field] = UInt8(h & 0xFF)
                        bytes[b * type.blockBytes + field + 1] = UInt8(h >> 8)
                    }
                }
            }
            let fast = try dequantForTest(type, bytes, count: count, reference: false)
            let ref = try dequantForTest(type, bytes, count: count, reference: true)
            var mismatches = 0
            var nanPairs = 0
            for i in 0..<count {
                if fast[i].isNaN && ref[i].isNaN { nanPairs += 1 }
                // Pure bit conversions keep NaN payloads; arithmetic may not.
                if !sameFloat(fast[i], ref[i], nanEquivalent: type.blockSize != 1) { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) of \(count) random values differ between paths")
            print("dequant random \(type): \(blocks) blocks, \(count) values, fast == reference "
                + "(\(nanPairs) values NaN on both paths)")
        }
    }

    /// Byte offsets of the f16 scale fields in one block.
    static func halfFieldOffsets(_ type: GGMLType) -> [Int] {
        switch type {
        case .q4_0, .q5_0, .q8_0: return [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q6_K: return [208]
        default: return []
        }
    }

    /// Binary16 → binary32 is exact for all 65536 patterns: scalar, SIMD and reference agree bit
    /// for bit, and match Swift's Float16 conversion (NaNs: NaN with the same sign).
    func testHalfConversionAllPatterns() {
        var patterns = [UInt16](repeating: 0, count: 65536)
        for i in 0..<65536 { patterns[i] = UInt16(i) }
        var simd = [Float](repeating: 0, count: 65536)
        for i in stride(from: 0, to: 65536, by: 16) {
            var v = SIMD16<UInt16>()
            for k in 0..<16 { v[k] = patterns[i + k] }
            let f = Dequant.halfToFloat(v)
            for k in 0..<16 { simd[i + k] = f[k] }
        }
        var bad = 0
        var subnormals = 0
        for i in 0..<65536 {
            let h = UInt16(i)
            let scalar = Dequant.halfToFloat(h)
            let ref = Dequant.halfToFloatReference(h)
            if scalar.bitPattern != ref.bitPattern || simd[i].bitPattern != ref.bitPattern { bad += 1 }
            #if !(os(macOS) && arch(x86_64))
            let swift = Float(Float16(bitPattern: h))
            if swift.isNaN {
                if !ref.isNaN || ref.sign != swift.sign { bad += 1 }
            } else if swift.bitPattern != ref.bitPattern {
                bad += 1
            }
            #endif
            if h & 0x7C00 == 0 && h & 0x03FF != 0 { subnormals += 1 }
        }
        XCTAssertEqual(bad, 0, "\(bad) binary16 patterns convert inconsistently")
        XCTAssertEqual(subnormals, 2046)
        // Spot checks from the IEEE 754 definition.
        XCTAssertEqual(Dequant.halfToFloat(0x0001), 0x1p-24)
        XCTAssertEqual(Dequant.halfToFloat(0x03FF), 1023 * 0x1p-24)
        XCTAssertEqual(Dequant.halfToFloat(0x0400), 0x1p-14)
        XCTAssertEqual(Dequant.halfToFloat(0x7BFF), 65504)
        XCTAssertEqual(Dequant.halfToFloat(0x7C00), .infinity)
        XCTAssertEqual(Dequant.halfToFloat(0xFC00), -.infinity)
        XCTAssertEqual(Dequant.halfToFloat(0x8000).bitPattern, (-Float(0)).bitPattern)
        XCTAssertEqual(Dequant.halfToFloat(0x7E00).bitPattern, 0x7FC0_0000)   // quiet NaN
        XCTAssertEqual(Dequant.halfToFloat(0x7C01).bitPattern, 0x7F80_2000)   // signaling NaN kept as is
        XCTAssertEqual(Dequant.bfloat16ToFloat(0x3F80), 1)
        XCTAssertEqual(Dequant.bfloat16ToFloat(0xFF80), -.infinity)
    }

    /// F16 / BF16 / F32 decoding through the public API, with a count that is not a multiple of 16.
    func testPlainTypesWithTail() throws {
        let halves: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x8400, 0x7C00, 0x7BFF, 0x0000, 0x3555] + (0..<29).map { UInt16($0 * 1000) }
        let f16 = try halves.withUnsafeBytes { try Dequant.decode(.f16, $0, count: halves.count) }
        XCTAssertEqual(f16.count, 37)
        for (h, f) in zip(halves, f16) { XCTAssertEqual(f.bitPattern, Dequant.halfToFloatReference(h).bitPattern) }
        XCTAssertEqual(Array(f16[0..<6]), [1, -2, 0x1p-24, -0x1p-14, .infinity, 65504])
        let bf16 = try halves.withUnsafeBytes { try Dequant.decode(.bf16, $0, count: halves.count) }
        for (h, f) in zip(halves, bf16) { XCTAssertEqual(f.bitPattern, UInt32(h) << 16) }
        let floats: [Float] = (0..<19).map { Float($0) * 0.37 - 3 }
        let f32 = try floats.withUnsafeBytes { try Dequant.decode(.f32, $0, count: floats.count) }
        XCTAssertEqual(f32, floats)
        let empty = try [UInt8]().withUnsafeBytes { try Dequant.decode(.q4_K, $0, count: 0) }
        XCTAssertEqual(empty, [])
    }

    /// A hand-built Q4_0 block, Q8_0 block and Q6_K block decode to values worked out by hand.
    func testHandBuiltBlocks() throws {
        // Q4_0: d = 0.5 (0x3800); byte j = (j+1 & 15) | (15 - j) << 4.
        var q40: [UInt8] = [0x00, 0x38]
        for j in 0..<16 { q40.append(UInt8((j + 1) & 15) | UInt8(15 - j) << 4) }
        let y40 = try q40.withUnsafeBytes { try Dequant.decode(.q4_0, $0, count: 32) }
        for j in 0..<16 {
            XCTAssertEqual(y40[j], Float(((j + 1) & 15) - 8) * 0.5)
            XCTAssertEqual(y40[j + 16], Float(15 - j - 8) * 0.5)
        }
        // Q8_0: d = 2 (0x4000); qs = -16 ... 15.
        let q80: [UInt8] = [0x00, 0x40] + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        let y80 = try q80.withUnsafeBytes { try Dequant.decode(.q8_0, $0, count: 32) }
        XCTAssertEqual(y80, (0..<32).map { Float(($0 - 16) * 2) })
        // Q6_K: all quants 33 (ql nibble 1, qh bits 2 -> q - 32 = 1), scales k - 8, d = 1.
        var q6 = [UInt8](repeating: 0x11, count: 128) + [UInt8](repeating: 0xAA, count: 64)
        q6 += (0..<16).map { UInt8(bitPattern: Int8($0 - 8)) }
        q6 += [0x00, 0x3C]
        let y6 = try q6.withUnsafeBytes { try Dequant.decode(.q6_K, $0, count: 256) }
        XCTAssertEqual(y6, (0..<256).map { Float($0 / 16 - 8) })
    }

    /// Runs one decode into a scratch buffer (the calls under test fail before writing) and returns its error.
    private func decodeError(_ type: GGMLType, _ src: [UInt8], count: Int, reference: Bool) -> Error? {
        var out = [Float](repeating: 0, count: 256)
        do {
            try src.withUnsafeBytes { raw in
                try out.withUnsafeMutableBufferPointer { dst in
                    guard let base = dst.baseAddress else { return }
                    if reference {
                        try Dequant.decodeReference(type, raw, count: count, into: base)
                    } else {
                        try Dequant.decode(type, raw, count: count, into: base)
                    }
                }
            }
        } catch {
            return error
        }
        return nil
    }

    func testErrors() throws {
        func check(_ type: GGMLType, _ n: Int, count: Int, _ expected: DequantError, line: UInt = #line) {
            let src = [UInt8](repeating: 0, count: n)
            for reference in [false, true] {
                guard let error = decodeError(type, src, count: count, reference: reference) else {
                    XCTFail("\(type): \(count) elements in \(n) bytes decoded", line: line)
                    continue
                }
                XCTAssertEqual(error as? DequantError, expected, line: line)
                XCTAssertTrue("\(error)".contains(type.description), "\(error)", line: line)
            }
            XCTAssertThrowsError(try src.withUnsafeBytes { try Dequant.decode(type, $0, count: count) }, line: line)
        }
        check(.q2_K, 0, count: 0, .unsupportedType(.q2_K))
        check(.q8_1, 36, count: 32, .unsupportedType(.q8_1))
        check(.i8, 8, count: 8, .unsupportedType(.i8))
        check(.iq4_NL, 18, count: 32, .unsupportedType(.iq4_NL))
        check(.q4_0, 18, count: 31, .partialBlock(type: .q4_0, elements: 31))
        check(.q4_K, 0, count: -256, .partialBlock(type: .q4_K, elements: -256))
        check(.f16, 8, count: -1, .partialBlock(type: .f16, elements: -1))
        check(.q4_0, 17, count: 32, .sizeMismatch(type: .q4_0, elements: 32, bytes: 17))
        check(.q4_0, 19, count: 32, .sizeMismatch(type: .q4_0, elements: 32, bytes: 19))
        check(.q6_K, 64, count: 256, .sizeMismatch(type: .q6_K, elements: 256, bytes: 64))
        check(.f32, 8, count: 1, .sizeMismatch(type: .f32, elements: 1, bytes: 8))
        check(.f32, 0, count: Int.max, .sizeMismatch(type: .f32, elements: Int.max, bytes: 0))
        XCTAssertTrue(DequantError.unsupportedType(.q2_K).description.contains("Q6_K"))
        XCTAssertTrue(DequantError.sizeMismatch(type: .f32, elements: Int.max, bytes: 0).description.contains("unrepresentable"))
    }
}
