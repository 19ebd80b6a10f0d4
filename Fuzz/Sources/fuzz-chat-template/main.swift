// Fuzz target: chat templates (`ChatTemplate(source:)` and `render`): any template text parses
// or is refused, and renders within its limits or fails with a `ChatTemplateError`, never a trap
// or a hang (libFuzzer's -timeout catches the latter).
import RepengEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let template: ChatTemplate
    do {
        template = try ChatTemplate(source: source)
    } catch {
        _ = "\(error)"
        return 0
    }
    let conversations: [[ChatMessage]] = [
        [ChatMessage(role: "user", content: "Hi")],
        [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "2+2?"),
         ChatMessage(role: "assistant", content: "4"), ChatMessage(role: "user", content: "And 3+3? {{ x }} {% if %}")],
    ]
    for messages in conversations {
        for generation in [false, true] {
            do {
                let out = try template.render(messages: messages, addGenerationPrompt: generation, bosToken: "<s>", eosToken: "</s>")
                precondition(out.utf8.count <= ChatTemplate.Limits.maxOutputBytes, "output over the limit")
            } catch {
                _ = "\(error)"
            }
        }
    }
    return 0
}
