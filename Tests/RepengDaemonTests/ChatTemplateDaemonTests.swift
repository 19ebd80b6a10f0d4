// Chat input through the daemon: the model's own template, named built-in layouts, a Hugging Face folder model without a template, and Tokenize --chat giving Generate's ids.
import Foundation
import GRPCCore
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

final class ChatTemplateDaemonTests: XCTestCase {
    /// SmolLM2 (GGUF, with a template) and the tiny Qwen2 Hugging Face folder (no template).
    private func config(_ dirs: TempDirs) throws -> DaemonConfig {
        var c = try dirs.config()
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("RepengEngineTests/Fixtures/hf/qwen2").path
        c.models.append(ModelSpec(name: "tiny", path: folder))
        return c
    }

    func testChatUsesTheModelsTemplateOrANamedFormat() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let model = try DaemonFixtures.model()
        let tok = try XCTUnwrap(model.tokenizer)
        let question = "What are you doing this weekend?"
        try await withDaemon(try config(dirs)) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                // Tokenize --chat: the template's layout (with SmolLM2's default system prompt), no extra specials.
                let viaTemplate = try await client.tokenize(.with { $0.text = question; $0.chat = true })
                XCTAssertEqual(viaTemplate.ids, tok.encode(try DaemonFixtures.templateChat(question), addSpecial: false))
                let chatML = try await client.tokenize(.with { $0.text = question; $0.chat = true; $0.chatFormat = "chatml" })
                XCTAssertEqual(chatML.ids, tok.encode(ChatFormat.chatML.wrap(instruction: question, reply: ""), addSpecial: true))
                XCTAssertNotEqual(viaTemplate.ids, chatML.ids)

                // Generate with chat input continues exactly those ids (greedy, as the library does).
                let (text, done) = try await generateText(client, chatRequest(maxTokens: 12))
                let expected = try ControlledModel(model: model).generate(prompt: try DaemonFixtures.templateChat(question), maxTokens: 12).text
                XCTAssertEqual(text, expected)
                XCTAssertEqual(Int(done.promptTokens), viaTemplate.ids.count)

                // Models: which ones bring a template; the folder model is served.
                let models = try await client.listModels(Repeng_V1_ListModelsRequest()).models
                XCTAssertEqual(models.map(\.name), ["smollm2", "tiny"])
                XCTAssertEqual(models.map(\.chatTemplatePresent), [true, false])
                XCTAssertEqual(models[1].architecture, "qwen2")

                // No template: a clear error unless a format is named; unknown formats refused.
                await assertRPCError(.invalidArgument, containing: "has no chat template") {
                    _ = try await client.tokenize(.with { $0.model = "tiny"; $0.text = "hi"; $0.chat = true })
                }
                let plain = try await client.tokenize(.with { $0.model = "tiny"; $0.text = "hi"; $0.chat = true; $0.chatFormat = "plain" })
                XCTAssertFalse(plain.ids.isEmpty)
                var r = chatRequest(maxTokens: 4)
                r.model = "tiny"
                await assertRPCError(.invalidArgument, containing: "has no chat template") { _ = try await generateText(client, r) }
                r.chatFormat = "plain"
                let (tinyText, _) = try await generateText(client, r)
                XCTAssertFalse(tinyText.isEmpty)
                await assertRPCError(.invalidArgument, containing: "unknown chat format") {
                    _ = try await client.tokenize(.with { $0.text = "hi"; $0.chat = true; $0.chatFormat = "llama9" })
                }
            }
        }
    }
}
