// Runs the built repengctl binary against an in-process daemon for the documented command forms.
import Foundation
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

final class CLITests: XCTestCase {
    /// The repengctl executable built next to the test bundle.
    func repengctl() throws -> String { try DaemonFixtures.executable("repengctl") }

    /// Runs repengctl (REPENG_SOCKET cleared unless given).
    func run(_ args: [String], env: [String: String] = [:]) async throws -> CLIResult {
        var environment = env
        if environment["REPENG_SOCKET"] == nil { environment["REPENG_SOCKET"] = "" }
        return try await runProcess(try repengctl(), args, env: environment)
    }

    func json(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    /// `repengctl help SUB` (the form the root help advertises) prints SUB's help and calls nobody.
    func testHelpForSubcommands() async throws {
        for sub in ["generate", "train", "set-control"] {
            let r = try await run(["--socket", "/nonexistent/d.sock", "help", sub])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("USAGE: repengctl \(sub)"), r.stdout)
        }
        let r = try await run(["generate", "--help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("(default: the daemon's)"), r.stdout)
        XCTAssertFalse(r.stdout.contains("(default: the daemon's). (default: 0)"), r.stdout)
    }

    func testCommandLineForms() async throws {
        _ = try repengctl()
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let datasetFile = dirs.root + "/happy.json"
        try encodeDataset(try DaemonFixtures.dataset()).write(to: URL(fileURLWithPath: datasetFile))
        let model = try DaemonFixtures.model()
        let S = dirs.socket
        try await withDaemon(try dirs.config()) { _ in
            var r = try await run(["--socket", S, "status"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("repengd"), r.stdout)

            r = try await run(["status", "--json"], env: ["REPENG_SOCKET": S])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try json(r.stdout)["default_model"] as? String, "smollm2")

            r = try await run(["--socket", S, "tokenize", "--json", "Hello, world"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let ids = try XCTUnwrap(try json(r.stdout)["ids"] as? [Int])
            XCTAssertEqual(ids.map(Int32.init), model.tokenizer?.encode("Hello, world", addSpecial: true))

            r = try await run(["--socket", S, "train", "happy", "--dataset", datasetFile, "--method", "pca_center",
                               "--layers", "-1..-29"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dirs.vectors + "/happy.gguf"))
            let trained = try ControlVector.load(path: dirs.vectors + "/happy.gguf")
            XCTAssertEqual(trained.layers, Array(1...29))

            r = try await run(["--socket", S, "train", "happy", "--dataset", datasetFile])
            XCTAssertEqual(r.status, 73, "existing vector: \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

            r = try await run(["--socket", S, "vectors", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let vectors = try XCTUnwrap(try json(r.stdout)["vectors"] as? [[String: Any]])
            XCTAssertEqual(vectors.count, 1)
            XCTAssertEqual(vectors[0]["name"] as? String, "happy")
            XCTAssertEqual(vectors[0]["file"] as? String, "happy.gguf")
            XCTAssertEqual((vectors[0]["layers"] as? [Int])?.count, 29)
            XCTAssertEqual(vectors[0]["hidden_size"] as? Int, 576)
            XCTAssertEqual(vectors[0]["model_hint"] as? String, "llama")
            XCTAssertEqual(vectors[0]["status"] as? String, "ok")

            let prompt = "What are you doing this weekend?"
            let baseline = try await run(["--socket", S, "generate", "--max-tokens", "16", "--chat", prompt])
            XCTAssertEqual(baseline.status, 0, baseline.stderr)
            XCTAssertFalse(baseline.stdout.isEmpty)

            r = try await run(["--socket", S, "set-control", "happy", "8", "--layers", "-5..-20"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let steered = try await run(["--socket", S, "generate", "--max-tokens", "16", "--chat", prompt])
            XCTAssertEqual(steered.status, 0, steered.stderr)
            XCTAssertNotEqual(steered.stdout, baseline.stdout)

            // The library's output for the same control.
            let cm = ControlledModel(model: model)
            try cm.setControl(trained, coefficient: 8, layers: Array((-20)...(-5)))
            let expected = try cm.generate(prompt: try DaemonFixtures.templateChat(prompt), maxTokens: 16).text
            XCTAssertEqual(steered.stdout, expected)

            // Per-request control equals the same model control.
            r = try await run(["--socket", S, "generate", "--max-tokens", "16", "--control", "happy:8", "--layers", "-5..-20",
                               "--chat", prompt])
            XCTAssertEqual(r.stdout, expected)

            r = try await run(["--socket", S, "get-control", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual((try json(r.stdout)["controlled_layers"] as? [Int])?.count, 16)

            r = try await run(["--socket", S, "set-control", "happy", "-4", "happy", "1.5", "--normalize"])
            XCTAssertEqual(r.status, 0, r.stderr)

            r = try await run(["--socket", S, "reset"])
            XCTAssertEqual(r.status, 0, r.stderr)
            r = try await run(["--socket", S, "generate", "--max-tokens", "16", "--chat", prompt])
            XCTAssertEqual(r.stdout, baseline.stdout)

            r = try await run(["--socket", S, "generate", "--max-tokens", "8", "--temperature", "0.8", "--repetition-penalty",
                               "1.1", "--seed", "7", "Once upon a time"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let again = try await run(["--socket", S, "generate", "--max-tokens", "8", "--temperature", "0.8",
                                       "--repetition-penalty", "1.1", "--seed", "7", "Once upon a time"])
            XCTAssertEqual(again.stdout, r.stdout, "seeded sampling is reproducible")

            // Errors: one line on stderr, distinct exit codes.
            r = try await run(["--socket", S, "set-control", "nosuch", "1"])
            XCTAssertEqual(r.status, 66)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("nosuch"), r.stderr)
            r = try await run(["--socket", S, "set-control", "happy", "nan"])
            XCTAssertEqual(r.status, 65, r.stderr)
            r = try await run(["--socket", S, "set-control", "happy", "1", "--layers", "40"])
            XCTAssertEqual(r.status, 65, r.stderr)
            r = try await run(["--socket", S, "generate", ""])
            XCTAssertEqual(r.status, 65, r.stderr)
            // A chat dataset: persona messages and replies, laid out by the model's template.
            let chatFile = dirs.root + "/chat.json"
            try Data(#"[{"positive": "Act as if you're extremely happy.", "negative": "Act as if you're extremely sad.", "reply": "I think"}, {"positive": "Act as if you're extremely joyful.", "negative": "Act as if you're extremely depressed.", "reply": "Today"}]"#.utf8)
                .write(to: URL(fileURLWithPath: chatFile))
            r = try await run(["--socket", S, "train", "chat-happy", "--chat", "--dataset", chatFile, "--layers", "-1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try ControlVector.load(path: dirs.vectors + "/chat-happy.gguf").layers, [29])
            r = try await run(["--socket", S, "train", "chat-happy2", "--dataset", chatFile, "--layers", "-1"])
            XCTAssertEqual(r.status, 65, r.stderr)
            XCTAssertTrue(r.stderr.contains("--chat"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            r = try await run(["--socket", dirs.root + "/none.sock", "status"])
            XCTAssertEqual(r.status, 69, r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

            // models and health.
            r = try await run(["--socket", S, "models"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("smollm2"), r.stdout)
            r = try await run(["--socket", S, "models", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let models = try XCTUnwrap(try json(r.stdout)["models"] as? [[String: Any]], r.stdout)
            XCTAssertEqual(models.count, 1)
            XCTAssertEqual(models[0]["name"] as? String, "smollm2")
            XCTAssertEqual(models[0]["block_count"] as? Int, 30)
            XCTAssertEqual(models[0]["hidden_size"] as? Int, 576)
            XCTAssertEqual(models[0]["default"] as? Bool, true)
            r = try await run(["--socket", S, "health"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, "SERVING\n")
            r = try await run(["--socket", S, "health", "--json"])
            XCTAssertEqual(try json(r.stdout)["serving"] as? Bool, true)

            // Deadlines: a generation longer than --timeout ends with a one-line error and code 75,
            // and the daemon stops its work.
            let t0 = Date()
            r = try await run(["--socket", S, "--timeout", "0.5", "generate", "--max-tokens", "2000", "Once upon a time"])
            XCTAssertEqual(r.status, 75, r.stderr)
            XCTAssertTrue(r.stderr.contains("timed out"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
            r = try await run(["--socket", S, "--timeout", "-1", "status"])
            XCTAssertEqual(r.status, 64, r.stderr)
        }
    }
}
