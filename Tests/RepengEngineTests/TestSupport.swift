// Shared helpers for the engine tests: locating the bundled models and the golden fixtures, random encoded weights.
import Foundation
import RepengEngine
import XCTest

/// The bundled models, each loaded once and shared by the tests that use it.
actor BundledModels {
    static let shared = BundledModels()
    private var models: [String: any LanguageModel] = [:]

    func model(_ file: String) throws -> any LanguageModel {
        if let m = models[file] { return m }
        let m = try loadModel(path: TestSupport.modelPath(file))
        models[file] = m
        return m
    }
}

/// Max |a − b| over a vector divided by max |b| (the golden tests' relative error).
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    XCTAssertEqual(a.count, b.count)
    var num: Float = 0, den: Float = 0
    for i in 0..<min(a.count, b.count) { num = max(num, abs(a[i] - b[i])); den = max(den, abs(b[i])) }
    return num / max(den, 1e-20)
}

enum TestSupport {
    /// Random bytes for `rows` rows of `cols` values in `type`, with small finite scales.
    static func encodedRows(_ type: GGMLType, rows: Int, cols: Int, seed: inout UInt64) -> [UInt8] {
        func next() -> UInt64 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return seed >> 24
        }
        func half(_ f: Float) -> [UInt8] {
            let h = Float16(f).bitPattern
            return [UInt8(h & 0xFF), UInt8(h >> 8)]
        }
        var out: [UInt8] = []
        for _ in 0..<(rows * cols / type.blockSize) {
            switch type {
            case .f16: out += half(Float(Int(next() % 2001) - 1000) / 1000)
            case .bf16:
                let b = Float(Int(next() % 2001) - 1000) / 1000
                let bits = b.bitPattern >> 16
                out += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            case .q4_0, .q8_0:
                out += half(Float(next() % 1000 + 1) / 20_000)
                out += (0..<(type == .q4_0 ? 16 : 32)).map { _ in UInt8(truncatingIfNeeded: next()) }
            case .q4_1:
                out += half(Float(next() % 1000 + 1) / 20_000)
                out += half(-Float(next() % 1000) / 10_000)
                out += (0..<16).map { _ in UInt8(truncatingIfNeeded: next()) }
            case .q5_0, .q5_1, .q4_K, .q5_K, .q6_K:
                // Random bytes with finite, small f16 scales (and mins) where the block keeps them.
                var block = (0..<type.blockBytes).map { _ in UInt8(truncatingIfNeeded: next()) }
                let halves = type == .q6_K ? [208] : type == .q5_0 ? [0] : [0, 2]
                for (k, at) in halves.enumerated() {
                    let h = half(k == 0 ? Float(next() % 1000 + 1) / 20_000 : Float(next() % 1000) / 20_000)
                    block[at] = h[0]
                    block[at + 1] = h[1]
                }
                out += block
            default: fatalError("no encoder for \(type)")
            }
        }
        return out
    }

    /// The package root, found from this file's path (Tests/RepengEngineTests/TestSupport.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Folder holding the models fetched by scripts/bootstrap.sh (override with REPENG_MODELS).
    static var modelsDir: URL {
        if let env = ProcessInfo.processInfo.environment["REPENG_MODELS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        if let cache = ProcessInfo.processInfo.environment["REPENG_CACHE"], !cache.isEmpty {
            return URL(fileURLWithPath: cache).appendingPathComponent("models")
        }
        return packageRoot.appendingPathComponent(".cache/models")
    }

    static let smolLM2File = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let gemma3File = "gemma-3-270m-q4_k_m.gguf"

    /// Path of a bundled model; skips the test when it is absent outside CI, fails in CI.
    static func modelPath(_ file: String) throws -> String {
        let url = modelsDir.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: url.path) { return url.path }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("model \(file) missing from \(modelsDir.path); run scripts/bootstrap.sh")
        }
        throw XCTSkip("model \(file) missing; run scripts/bootstrap.sh")
    }

    /// URL of a committed fixture file under Tests/RepengEngineTests/Fixtures.
    static func fixture(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/RepengEngineTests/Fixtures").appendingPathComponent(name)
    }

    /// Decodes a committed JSON fixture.
    static func loadJSON<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let data = try Data(contentsOf: fixture(name))
        return try JSONDecoder().decode(T.self, from: data)
    }
}
