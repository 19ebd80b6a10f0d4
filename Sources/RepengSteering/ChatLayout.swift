// How chat input is laid out for a model: its own chat template (as transformers'
// apply_chat_template renders it) or one of the built-in formats. Generation prompts, chat
// datasets and the daemon's chat requests all go through `ChatLayout`.
import Foundation
import RepengEngine

/// Why chat input could not be laid out.
public enum ChatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The model has no chat template and no format was named.
    case noTemplate
    /// The model's chat template does not parse.
    case templateDoesNotParse(reason: String)
    /// The template raised, or ran past a bound, for these messages.
    case templateRefused(reason: String)
    /// A format name other than chatml, gemma or plain.
    case unknownFormat(String)
    /// No messages at all.
    case noMessages
    /// Every message's content is empty.
    case emptyChat
    /// A built-in format only knows system, user and assistant.
    case badRole(index: Int, role: String)

    public var description: String {
        switch self {
        case .noTemplate:
            return "has no chat template; name a chat format (chatml, gemma or plain)"
        case .templateDoesNotParse(let r): return "its chat template does not parse: \(r)"
        case .templateRefused(let r): return "its chat template refused the messages: \(r)"
        case .unknownFormat(let f):
            return "unknown chat format '\(quoted(f))'; use chatml, gemma or plain, or leave it empty for the model's template"
        case .noMessages: return "chat has no messages; send at least one user message"
        case .emptyChat: return "prompt is empty: every chat message has empty content"
        case let .badRole(i, role):
            return "chat message \(i) has role '\(quoted(role))'; use system, user or assistant"
        }
    }
}

/// A prompt laid out for a model: the text and whether the tokenizer adds its default special
/// tokens when encoding it (`false` for template output, which writes BOS itself).
public struct ChatPrompt: Sendable, Equatable {
    public var text: String
    public var addSpecialTokens: Bool

    public init(text: String, addSpecialTokens: Bool) {
        self.text = text
        self.addSpecialTokens = addSpecialTokens
    }

    /// The token ids of the prompt.
    public func encode(with tokenizer: any Tokenizer) -> [Int32] {
        tokenizer.encode(text, addSpecial: addSpecialTokens)
    }
}

/// How chat messages become model input: the model's own chat template, or a built-in format.
public struct ChatLayout: Sendable {
    enum Kind: Sendable {
        /// `tokenizerAddsBOS`: encoding with the default special tokens writes BOS.
        case template(ChatTemplate, bos: String, eos: String, tokenizerAddsBOS: Bool)
        case format(ChatFormat)
    }
    let kind: Kind

    /// A built-in format.
    public init(format: ChatFormat) {
        kind = .format(format)
    }

    /// A parsed template, rendered with these BOS and EOS pieces. `tokenizerAddsBOS` says whether
    /// the tokenizer writes BOS when encoding with its default special tokens (see `datasetText`).
    public init(template: ChatTemplate, bosToken: String, eosToken: String, tokenizerAddsBOS: Bool = false) {
        kind = .template(template, bos: bosToken, eos: eosToken, tokenizerAddsBOS: tokenizerAddsBOS)
    }

    /// The tokenizer's own chat template (GGUF `tokenizer.chat_template`, `chat_template.jinja`
    /// or `tokenizer_config.json`), with its BOS and EOS tokens as the template's `bos_token`
    /// and `eos_token`. Throws `ChatError.noTemplate` or `.templateDoesNotParse`.
    public init(modelTemplateOf tokenizer: any Tokenizer) throws {
        guard let source = tokenizer.chatTemplate else { throw ChatError.noTemplate }
        let template: ChatTemplate
        do { template = try ChatTemplate(source: source) } catch {
            throw ChatError.templateDoesNotParse(reason: "\(error)")
        }
        func piece(_ id: Int32?) -> String {
            guard let id else { return "" }
            return String(decoding: tokenizer.tokenBytes(id), as: UTF8.self)
        }
        let addsBOS = tokenizer.bosID.map { tokenizer.encode("", addSpecial: true).first == $0 } ?? false
        self.init(template: template, bosToken: piece(tokenizer.bosID), eosToken: piece(tokenizer.eosID),
                  tokenizerAddsBOS: addsBOS)
    }

    /// The tokenizer's own template when it has one, else the built-in format its special
    /// tokens suggest (`ChatFormat.detect`; plain for base models).
    public static func preferred(for tokenizer: any Tokenizer) throws -> ChatLayout {
        tokenizer.chatTemplate != nil ? try ChatLayout(modelTemplateOf: tokenizer) : ChatLayout(format: ChatFormat.detect(tokenizer: tokenizer))
    }

    /// The layout a request names: `format` empty for the model's own template, else a built-in
    /// format by name ("chatml", "gemma", "plain").
    public init(tokenizer: any Tokenizer, format: String) throws {
        if format.isEmpty {
            try self.init(modelTemplateOf: tokenizer)
        } else {
            guard let f = ChatFormat(rawValue: format) else { throw ChatError.unknownFormat(format) }
            self.init(format: f)
        }
    }

    /// True when this is a model's template rather than a built-in format.
    public var isTemplate: Bool {
        if case .template = kind { return true }
        return false
    }

    /// The messages followed by an open assistant turn (the generation prompt). Template output
    /// is encoded without the tokenizer's default special tokens (the template writes BOS, as
    /// `apply_chat_template(..., tokenize=True)` does); a built-in format's text with them.
    public func prompt(_ messages: [ChatMessage]) throws -> ChatPrompt {
        guard !messages.isEmpty else { throw ChatError.noMessages }
        guard messages.contains(where: { !$0.content.isEmpty }) else { throw ChatError.emptyChat }
        switch kind {
        case let .template(t, bos, eos, _):
            do {
                let text = try t.render(messages: messages, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
                return ChatPrompt(text: text, addSpecialTokens: false)
            } catch {
                throw ChatError.templateRefused(reason: quoted("\(error)", limit: 300))
            }
        case .format(let f):
            return ChatPrompt(text: try f.render(messages), addSpecialTokens: true)
        }
    }

    /// One dataset text: `instruction` as the only user message, then the start of the
    /// assistant's reply (`reply`) after the generation prompt. Training encodes dataset texts
    /// with the tokenizer's default special tokens (as repeng's `tokenizer(batch)` call does):
    /// when those include BOS, a BOS the template writes at the start is left out here, so it is
    /// written once.
    public func datasetText(instruction: String, reply: String) throws -> String {
        switch kind {
        case let .template(_, bos, _, tokenizerAddsBOS):
            var text = try prompt([ChatMessage(role: "user", content: instruction)]).text
            if tokenizerAddsBOS, !bos.isEmpty, text.hasPrefix(bos) { text.removeFirst(bos.count) }
            return text + reply
        case .format(let f):
            return f.wrap(instruction: instruction, reply: reply)
        }
    }
}

extension ChatFormat {
    /// Chat messages in this format, ending with an open assistant turn. A single user message
    /// gives exactly `wrap(instruction:reply: "")`.
    public func render(_ messages: [ChatMessage]) throws -> String {
        guard !messages.isEmpty else { throw ChatError.noMessages }
        for (i, m) in messages.enumerated() where !["system", "user", "assistant"].contains(m.role) {
            throw ChatError.badRole(index: i, role: m.role)
        }
        guard messages.contains(where: { !$0.content.isEmpty }) else { throw ChatError.emptyChat }
        switch self {
        case .chatML:
            var s = ""
            for m in messages { s += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            return s + "<|im_start|>assistant\n"
        case .gemma:
            var s = ""
            var system: String?
            for m in messages {
                if m.role == "system" { system = (system.map { $0 + "\n\n" } ?? "") + m.content; continue }
                var content = m.content
                if m.role == "user", let sys = system { content = sys + "\n\n" + content; system = nil }
                s += "<start_of_turn>\(m.role == "assistant" ? "model" : "user")\n\(content)<end_of_turn>\n"
            }
            return s + "<start_of_turn>model\n"
        case .plain:
            return wrap(instruction: messages.map(\.content).joined(separator: "\n"), reply: "")
        }
    }
}
