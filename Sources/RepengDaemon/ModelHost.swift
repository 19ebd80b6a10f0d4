// A resident model as the daemon serves it: the loaded weights, its control state and its
// batched scheduler.
import Foundation
import RepengEngine
import RepengSteering

/// One configured model.
public final class ModelHost: @unchecked Sendable {
    public let name: String
    public let path: String
    /// How its weights are kept.
    public let precision: WeightPrecision
    public let model: any LanguageModel
    public let scheduler: Scheduler
    public let isDefault: Bool
    /// The model's own chat template, parsed once: `ChatError.noTemplate` when it has none, the
    /// parse error when it does not parse (reported on use).
    let chatTemplate: Result<ChatLayout, ChatError>
    private let lock = NSLock()
    private var control: ResolvedControl?

    init(spec: ModelSpec, model: any LanguageModel, limits: DaemonLimits, isDefault: Bool) {
        name = spec.name
        path = spec.path
        precision = spec.precision ?? .exact
        self.model = model
        self.isDefault = isDefault
        if let tok = model.tokenizer {
            do { chatTemplate = .success(try ChatLayout(modelTemplateOf: tok)) } catch let e as ChatError {
                chatTemplate = .failure(e)
            } catch {
                chatTemplate = .failure(.templateDoesNotParse(reason: "\(error)"))
            }
        } else {
            chatTemplate = .failure(.noTemplate)
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
    /// True when the model has a chat template (parsed or not).
    var hasChatTemplate: Bool {
        if case .failure(.noTemplate) = chatTemplate { return false }
        return true
    }

    /// How chat input is laid out: the model's own template (`format` empty), or a built-in
    /// format by name ("chatml", "gemma", "plain").
    func chatLayout(format: String) throws -> ChatLayout {
        do {
            if format.isEmpty { return try chatTemplate.get() }
            guard let f = ChatFormat(rawValue: format) else { throw ChatError.unknownFormat(format) }
            return ChatLayout(format: f)
        } catch let e as ChatError {
            throw chatFailure(e)
        }
    }

    /// A chat error as the client sees it: naming this model when the error is about its template.
    private func chatFailure(_ e: ChatError) -> DaemonError {
        switch e {
        case .noTemplate: return .invalidArgument("model '\(name)' \(e)")
        case .templateDoesNotParse, .templateRefused: return .invalidArgument("model '\(name)': \(e)")
        default: return .invalidArgument(e.description)
        }
    }

    /// Chat messages laid out for the model (see `chatLayout(format:)`), ending with the
    /// generation prompt.
    func chatPrompt(_ messages: [(role: String, content: String)], format: String) throws -> ChatPrompt {
        let layout = try chatLayout(format: format)
        do {
            return try layout.prompt(messages.map { ChatMessage(role: $0.role, content: $0.content) })
        } catch let e as ChatError {
            throw chatFailure(e)
        }
    }
}
