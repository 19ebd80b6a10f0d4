// Shared helpers for the engine tests: locating the bundled models and the golden fixtures.
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
