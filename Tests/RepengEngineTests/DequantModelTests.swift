// Decodes every tensor of the two bundled models: values finite, golden blocks reproduced, rough throughput printed.
import Foundation
import XCTest
@testable import RepengEngine

/// Run with `-c release` to decode every element of every tensor (about 400 M values, a few seconds).
/// Debug builds run the SIMD code unoptimized (~3 M values/s), so there each tensor is decoded in
/// three windows (start, middle, end) unless REPENG_FULL_DEQUANT=1 is set.
final class DequantModelTests: XCTestCase {
    #if DEBUG
    static let fullDecode = ProcessInfo.processInfo.environment["REPENG_FULL_DEQUANT"] == "1"
    #else
    static let fullDecode = true
    #endif
    /// Elements decoded per call (a multiple of every block size).
    static let chunk = 1 << 20
    /// Elements per window when not decoding fully.
    static let window = 1 << 13

    func testSmolLM2AllTensors() throws {
        try decodeAllTensors(TestSupport.smolLM2File, expectTypes: [.f32, .q8_0, .q4_1])
    }

    func testGemma3AllTensors() throws {
        try decodeAllTensors(TestSupport.gemma3File, expectTypes: [.f32, .q8_0, .q5_0, .q4_K, .q6_K])
    }

    /// Decodes each tensor with the fast path (fully in release builds), checks that every value is
    /// finite, that the fixture blocks taken from this model decode to gguf-py's values, and that
    /// the first blocks of every tensor agree with the reference path. Prints elements/s per type.
    private func decodeAllTensors(_ file: String, expectTypes: Set<GGMLType>) throws {
        let gguf = try GGUFFile(path: try TestSupport.modelPath(file))
        var fixtures: [String: [DequantFixtureFile.Record]] = [:]
        for type in DequantFixtureFile.types {
            for record in try DequantFixtureFile.load(type).records where record.origin == "model" && record.model == file {
                fixtures[record.tensor, default: []].append(record)
            }
        }
        var seenTypes = Set<GGMLType>()
        var elementsByType: [GGMLType: Int] = [:]
        var secondsByType: [GGMLType: Double] = [:]
        var fixtureRecordsChecked = 0
        var buffer = [Float](repeating: 0, count: Self.chunk)
        for info in gguf.tensors {
            guard info.type.isDecodable else {
                XCTFail("\(file): tensor \(info.name) has undecodable type \(info.type)")
                continue
            }
            seenTypes.insert(info.type)
            let type = info.type
            let data = gguf.tensorData(info)
            XCTAssertEqual(data.count, info.byteCount, info.name)
            XCTAssertEqual(type.byteCount(elements: info.elementCount), info.byteCount, info.name)

            // Element ranges to decode, in whole blocks.
            var ranges: [Range<Int>] = []
            if Self.fullDecode || info.elementCount <= 3 * Self.window {
                ranges = [0..<info.elementCount]
            } else {
                let w = Self.window
                let mid = (info.elementCount / 2) / w * w
                ranges = [0..<w, mid..<(mid + w), (info.elementCount - w)..<info.elementCount]
            }
            var nonFinite = 0
            try buffer.withUnsafeMutableBufferPointer { out in
                guard let base = out.baseAddress else { return }
                for range in ranges {
                    var start = range.lowerBound
                    while start < range.upperBound {
                        let n = min(Self.chunk, range.upperBound - start)
                        let first = start / type.blockSize * type.blockBytes
                        let bytes = UnsafeRawBufferPointer(rebasing: data[first..<(first + (type.byteCount(elements: n) ?? 0))])
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        try Dequant.decode(type, bytes, count: n, into: base)
                        secondsByType[type, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                        elementsByType[type, default: 0] += n
                        for i in 0..<n where !base[i].isFinite { nonFinite += 1 }
                        start += n
                    }
                }
            }
            XCTAssertEqual(nonFinite, 0, "\(file): \(info.name) has \(nonFinite) non-finite values")

            // The first blocks through both paths.
            let n = min(info.elementCount, 8 * max(type.blockSize, 32)) / type.blockSize * type.blockSize
            let prefix = UnsafeRawBufferPointer(rebasing: data[0..<(type.byteCount(elements: n) ?? 0)])
            let fast = try Dequant.decode(type, prefix, count: n)
            var ref = [Float](repeating: 0, count: n)
            try ref.withUnsafeMutableBufferPointer { try Dequant.decodeReference(type, prefix, count: n, into: $0.baseAddress!) }
            XCTAssertEqual(ref.map(\.bitPattern), fast.map(\.bitPattern), "\(info.name): fast and reference differ")

            // Golden blocks from gguf-py, re-read from the model file.
            for record in fixtures[info.name] ?? [] {
                XCTAssertEqual(record.type, type.description)
                let first = record.block_offset * type.blockBytes
                let raw = UnsafeRawBufferPointer(rebasing: data[first..<(first + record.n_blocks * type.blockBytes)])
                XCTAssertEqual([UInt8](raw), record.bytes, "\(info.name) block \(record.block_offset): bytes differ")
                let decoded = try Dequant.decode(type, raw, count: record.n_elements)
                XCTAssertEqual(decoded.map(\.bitPattern), record.expectedFloats.map(\.bitPattern),
                               "\(info.name) block \(record.block_offset): differs from gguf-py")
                fixtureRecordsChecked += 1
            }
        }
        XCTAssertEqual(seenTypes, expectTypes, file)
        XCTAssertEqual(fixtureRecordsChecked, fixtures.values.reduce(0) { $0 + $1.count }, "fixture tensors missing from \(file)")
        XCTAssertGreaterThan(fixtureRecordsChecked, 0, file)
        let mode = Self.fullDecode ? "every element" : "3 windows per tensor (debug build)"
        for type in elementsByType.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            let n = elementsByType[type] ?? 0
            let s = secondsByType[type] ?? 0
            let rate = s > 0 ? String(format: "%.0f M elements/s", Double(n) / s / 1e6) : "n/a"
            print("dequant \(file) \(type): \(n) elements (\(mode)) in \(String(format: "%.3f", s)) s, \(rate)")
        }
    }
}
