// Shared helpers for the steering tests: bundled models and committed fixtures.
import Foundation
import XCTest

enum SteeringTestSupport {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var modelsDir: URL {
        if let env = ProcessInfo.processInfo.environment["REPENG_MODELS"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.appendingPathComponent(".cache/models")
    }

    static let smolLM2File = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// Path of a bundled model; skips the test when it is absent outside CI, fails in CI.
    static func modelPath(_ file: String = smolLM2File) throws -> String {
        let url = modelsDir.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: url.path) { return url.path }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("model \(file) missing from \(modelsDir.path); run scripts/bootstrap.sh")
        }
        throw XCTSkip("model \(file) missing; run scripts/bootstrap.sh")
    }

    static func fixture(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/RepengSteeringTests/Fixtures").appendingPathComponent(name)
    }
}
