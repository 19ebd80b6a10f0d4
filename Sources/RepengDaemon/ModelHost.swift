// A resident model as the daemon serves it: the loaded weights, its control state and its
// batched scheduler.
import Foundation
import RepengEngine
import RepengSteering

/// One configured model.
public final class ModelHost: @unchecked Sendable {
    public let name: String
    public let path: String
    public let model: any LanguageModel
    public let scheduler: Scheduler
    public let isDefault: Bool
    /// The model's own chat template, parsed once: nil when it has none, the parse error when
    /// it does not parse (reported on use).
    let chatTemplate: Result<ChatTemplate, any Error>?
    private let lock = NSLock()
    private var control: ResolvedControl?

    init(spec: ModelSpec, model: any LanguageModel, limits: DaemonLimits, isDefault: Bool) {
        name = spec.name
        path = spec.path
        self.model = model
        self.isDefault = isDefault
        chatTemplate = model.tokenizer?.chatTemplate.map { source in
            do { return .success(try ChatTemplate(source: source)) } catch { return .failure(error) }
        }
        scheduler = Scheduler(model: model, maxQueue: limits.maxQueue, maxBatch: limits.maxBatch,
                              maxBacklog: limits.maxBufferedPieces, slowReaderSeconds: limits.slowReaderSeconds, name: spec.name)
    }

    /// The control in force (a snapshot: later changes do not affect it).
    public var currentControl: ResolvedControl? { lock.withLock { control } }

    /// The control in force, resolved again first when a vector file it uses has a newer
    /// version on disk (so a changed file takes effect at the next Generate, including through
    /// saved control). When the new resolution fails (the file was removed, or no longer fits
    /// the model) the previous control stays in force.
    func currentControl(refreshedWith resolver: ControlResolver) -> ResolvedControl? {
        lock.withLock {
            guard let c = control else { return nil }
            guard c.versions.contains(where: { resolver.store.version(of: $0.key) != $0.value }) else { return c }
            guard let fresh = try? resolver.resolve(c.spec, model: model) else { return c }
            control = fresh
            return fresh
        }
    }

    /// Replaces the control; `persist` runs first, under the same lock, so the durable copy
    /// and memory change in the same order.
    func setControl(_ c: ResolvedControl?, persist: () throws -> Void) throws {
        try lock.withLock {
            try persist()
            control = c
        }
    }
}

/// The configured models by name.
public final class ModelRegistry: Sendable {
    public let hosts: [ModelHost]
    public var defaultHost: ModelHost { hosts[0] }

    init(hosts: [ModelHost]) {
        precondition(!hosts.isEmpty, "at least one model is configured")
        self.hosts = hosts
    }

    /// The host named `name`; the default model for an empty name.
    public func host(_ name: String) throws -> ModelHost {
        if name.isEmpty { return defaultHost }
        guard let h = hosts.first(where: { $0.name == name }) else {
            throw DaemonError.unknownModel(name: name, known: hosts.map(\.name))
        }
        return h
    }
}

extension ModelHost {
    /// Chat messages as the text to encode and whether the tokenizer adds its default special
    /// tokens: laid out by the model's own template (`format` empty; the template writes BOS
    /// itself, as transformers' `apply_chat_template` does, so none are added), or by a built-in
    /// layout ("chatml", "gemma", "plain"; the tokenizer's defaults added). Always ends with the
    /// generation prompt.
    func chatPrompt(_ messages: [(role: String, content: String)], format: String) throws -> (text: String, addSpecial: Bool) {
        guard format.isEmpty else {
            guard let f = ChatFormat(rawValue: format) else {
                throw DaemonError.invalidArgument("unknown chat format '\(quoted(format))'; use chatml, gemma or plain, or leave it empty for the model's template")
            }
            return (try renderChat(messages, format: f), true)
        }
        guard let chatTemplate else {
            throw DaemonError.invalidArgument("model '\(name)' has no chat template; name a chat format (chatml, gemma or plain)")
        }
        let template: ChatTemplate
        switch chatTemplate {
        case .success(let t): template = t
        case .failure(let e): throw DaemonError.invalidArgument("model '\(name)': its chat template does not parse: \(e)")
        }
        guard !messages.isEmpty else { throw DaemonError.invalidArgument("chat has no messages; send at least one user message") }
        guard messages.contains(where: { !$0.content.isEmpty }) else {
            throw DaemonError.invalidArgument("prompt is empty: every chat message has empty content")
        }
        let tok = model.tokenizer
        func piece(_ id: Int32?) -> String {
            guard let id, let tok else { return "" }
            return String(decoding: tok.tokenBytes(id), as: UTF8.self)
        }
        do {
            let text = try template.render(messages: messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                           addGenerationPrompt: true, bosToken: piece(tok?.bosID), eosToken: piece(tok?.eosID))
            return (text, false)
        } catch {
            throw DaemonError.invalidArgument("model '\(name)': its chat template refused the messages: \(quoted("\(error)", limit: 300))")
        }
    }
}

/// Lays chat messages out in a built-in chat format, ending with an open assistant turn. A
/// single user message gives exactly `ChatFormat.wrap(instruction:reply: "")`.
public func renderChat(_ messages: [(role: String, content: String)], format: ChatFormat) throws -> String {
    guard !messages.isEmpty else { throw DaemonError.invalidArgument("chat has no messages; send at least one user message") }
    for (i, m) in messages.enumerated() where !["system", "user", "assistant"].contains(m.role) {
        throw DaemonError.invalidArgument("chat message \(i) has role '\(m.role)'; use system, user or assistant")
    }
    guard messages.contains(where: { !$0.content.isEmpty }) else {
        throw DaemonError.invalidArgument("prompt is empty: every chat message has empty content")
    }
    switch format {
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
        return format.wrap(instruction: messages.map(\.content).joined(separator: "\n"), reply: "")
    }
}
