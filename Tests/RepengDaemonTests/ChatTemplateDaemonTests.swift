// Chat input through the daemon: the model's own template, named built-in layouts, a Hugging Face folder model without a template, Tokenize --chat giving Generate's ids, and chat datasets for Train.
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
                // Served natively by default; a folder's weights are f32 whatever was asked.
                XCTAssertEqual(models.map(\.precision), ["native", "exact"])
                XCTAssertLessThan(models[0].residentBytes, 100 << 20)

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

    func testChatTrainingUsesTheModelsTemplate() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let model = try DaemonFixtures.model()
        let suffixes = Array(defaultSuffixes.prefix(6))
        let pairs: [Repeng_V1_DatasetEntry] = suffixes.map { suffix in
            .with {
                $0.positive = "Act as if you're extremely happy."
                $0.negative = "Act as if you're extremely sad."
                $0.reply = suffix
            }
        }
        let layers: [Int32] = [-1, -2, -3]
        // The library's chat dataset from the same parts, laid out by the model's template.
        let dataset = try makeChatDataset(template: "Act as if you're extremely {persona}.", positivePersonas: ["happy"],
                                          negativePersonas: ["sad"], suffixes: suffixes, model: model)
        XCTAssertEqual(dataset.first?.positive, try DaemonFixtures.templateChat("Act as if you're extremely happy.") + suffixes[0])
        let expected = try ControlVector.train(model: model, dataset: dataset, layers: layers.map(Int.init), method: .pcaCenter)
        try await withDaemon(try config(dirs)) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let request = Repeng_V1_TrainRequest.with {
                    $0.name = "chat-happy"
                    $0.dataset = pairs
                    $0.chat = true
                    $0.method = .pcaCenter
                    $0.layers = layers
                }
                try await client.train(request) { r in for try await _ in r.messages {} }
                let trained = try ControlVector.importGGUF(path: dirs.vectors + "/chat-happy.gguf")
                XCTAssertEqual(Set(trained.directions.keys), Set(expected.directions.keys))
                var worst = 0.0
                for (layer, d) in expected.directions {
                    let t = try XCTUnwrap(trained.directions[layer])
                    for (a, b) in zip(d, t) { worst = max(worst, Double(abs(a - b))) }
                }
                // The daemon serves native weights, the library model here is exact (hidden states within ~2e-6).
                print("chat training through the daemon (native weights) vs the library (exact): max |difference| \(worst)")
                XCTAssertLessThan(worst, 1e-5)

                // A named format lays the pairs out without the template's system prompt.
                var chatML = request
                chatML.name = "chatml-happy"
                chatML.chatFormat = "chatml"
                try await client.train(chatML) { r in for try await _ in r.messages {} }
                let viaChatML = try ControlVector.importGGUF(path: dirs.vectors + "/chatml-happy.gguf")
                let chatMLDataset = try makeChatDataset(template: "Act as if you're extremely {persona}.", positivePersonas: ["happy"],
                                                        negativePersonas: ["sad"], suffixes: suffixes, format: .chatML)
                let expectedChatML = try ControlVector.train(model: model, dataset: chatMLDataset, layers: layers.map(Int.init),
                                                             method: .pcaCenter)
                let top = try XCTUnwrap(expectedChatML.directions.keys.max())
                XCTAssertEqual(viaChatML.directions[top]?.first ?? 0, expectedChatML.directions[top]?.first ?? 1, accuracy: 1e-5)
                XCTAssertNotEqual(viaChatML.directions[top]?.first, trained.directions[top]?.first)

                // Without a template, unless a format is named; replies and formats need chat.
                var tiny = request
                tiny.model = "tiny"
                tiny.name = "tiny-happy"
                tiny.layers = [-1]
                await assertRPCError(.invalidArgument, containing: "has no chat template") {
                    try await client.train(tiny) { r in for try await _ in r.messages {} }
                }
                var noChat = request
                noChat.chat = false
                noChat.name = "no-chat"
                await assertRPCError(.invalidArgument, containing: "has a reply but chat is not set") {
                    try await client.train(noChat) { r in for try await _ in r.messages {} }
                }
                noChat.chatFormat = "chatml"
                await assertRPCError(.invalidArgument, containing: "chat_format is set but chat is not") {
                    try await client.train(noChat) { r in for try await _ in r.messages {} }
                }
            }
        }
    }
}
