// repengctl: command-line client of repengd (gRPC over its Unix socket). Text results go to
// stdout, errors to stderr as one line; exit codes tell failures apart (see ExitStatus).
import ArgumentParser
import Foundation
import GRPCCore
import RepengProtocol

/// Exit codes (sysexits-style).
enum ExitStatus {
    static let invalidArgument: Int32 = 65   // EX_DATAERR: the daemon refused an argument
    static let notFound: Int32 = 66          // EX_NOINPUT: unknown model or vector, missing file
    static let unavailable: Int32 = 69       // EX_UNAVAILABLE: daemon not reachable / shutting down
    static let internalError: Int32 = 70     // EX_SOFTWARE: the daemon failed
    static let alreadyExists: Int32 = 73     // EX_CANTCREAT: vector exists (use --force)
    static let busy: Int32 = 75              // EX_TEMPFAIL: a limit was reached; retry later
    static let permissionDenied: Int32 = 77  // EX_NOPERM: this uid is not allowed to use the daemon
    static let failedPrecondition: Int32 = 78 // EX_CONFIG: a vector file is unusable, no tokenizer
    static let other: Int32 = 1
}

/// A failure with its message and exit code.
struct CLIFailure: Error {
    let message: String
    let code: Int32
}

func fail(_ message: String, _ code: Int32) -> CLIFailure { CLIFailure(message: message, code: code) }

/// Turns an RPC status into a one-line message and exit code.
func failure(from error: any Error, socket: String) -> CLIFailure {
    if let f = error as? CLIFailure { return f }
    if let e = error as? RPCError {
        let code: Int32
        switch e.code {
        case .invalidArgument, .outOfRange: code = ExitStatus.invalidArgument
        case .notFound: code = ExitStatus.notFound
        case .alreadyExists: code = ExitStatus.alreadyExists
        case .resourceExhausted: code = ExitStatus.busy
        case .failedPrecondition: code = ExitStatus.failedPrecondition
        case .permissionDenied: code = ExitStatus.permissionDenied
        case .deadlineExceeded:
            return fail("timed out: \(e.message) (raise --timeout)", ExitStatus.busy)
        case .unavailable:
            return fail("cannot reach repengd at \(socket): \(e.message) (is it running? set --socket or REPENG_SOCKET)", ExitStatus.unavailable)
        default: code = ExitStatus.internalError
        }
        return fail(e.message, code)
    }
    return fail("\(error)", ExitStatus.other)
}

func writeErr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

/// Prints a JSON value (objects with sorted keys) and a newline.
func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
    writeOut(String(decoding: data, as: UTF8.self) + "\n")
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "repengd's socket (default: $REPENG_SOCKET, else $XDG_RUNTIME_DIR/repengd/repengd.sock, else /tmp/repengd-$UID/repengd.sock).")
    var socket: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "Model name (default: the daemon's default model).")
    var model: String?

    @Option(help: "Deadline in seconds for the call (default: 30 for quick calls, none for generate and train).")
    var timeout: Double?

    var socketPath: String { socket ?? RepengSocket.defaultPath() }

    /// Call options of quick calls: `--timeout`, else 30 s.
    var unaryOptions: CallOptions { Self.options(timeout ?? 30) }
    /// Call options of streaming calls: `--timeout` if given.
    var streamOptions: CallOptions { timeout.map(Self.options) ?? .defaults }

    static func options(_ seconds: Double) -> CallOptions {
        var o = CallOptions.defaults
        o.timeout = .milliseconds(Int64((max(0.001, min(seconds, 1e7)) * 1000).rounded()))
        return o
    }

    func validate() throws {
        if let t = timeout, !(t > 0 && t.isFinite) { throw ValidationError("--timeout must be a positive number of seconds") }
    }
}

/// Runs `body` with a connected client, mapping every failure to a message and exit code.
func withClient(_ g: GlobalOptions, _ body: @Sendable @escaping (RepengClient) async throws -> Void) async throws {
    let path = g.socketPath
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw fail("cannot reach repengd at \(path): no such socket (is it running? set --socket or REPENG_SOCKET)", ExitStatus.unavailable)
    }
    do {
        try await withRepengClient(socket: path) { client, _ in try await body(client) }
    } catch {
        throw failure(from: error, socket: path)
    }
}

/// Reports a failure on stderr and exits with its code.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let f as CLIFailure {
        writeErr("repengctl: error: \(f.message)\n")
        throw ExitCode(f.code)
    }
}

func parseLayers(_ spec: String?) throws -> [Int32] {
    guard let spec else { return [] }
    do { return try LayerSpec.parse(spec) } catch { throw ValidationError("\(error)") }
}

func parseCoefficient(_ s: String, for name: String) throws -> Float {
    guard let c = Float(s) else { throw ValidationError("coefficient '\(s)' for '\(name)' is not a number") }
    return c
}

@main
struct RepengCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repengctl",
        abstract: "Control repengd: vectors, control state, generation.",
        discussion: "Exit codes: 64 usage, 65 invalid argument, 66 not found, 69 daemon unreachable, 70 daemon error, 73 vector exists, 75 busy (retry) or timed out, 77 permission denied, 78 unusable vector file.",
        version: "0.1.0",
        subcommands: [Status.self, Models.self, Vectors.self, Tokenize.self, Train.self, SetControl.self, GetControl.self,
                      Reset.self, Generate.self, Health.self, HTTPURL.self])

    /// Lets global options come before the subcommand (`repengctl --socket S status`).
    /// `repengctl help SUB` is left alone (it prints SUB's help).
    static func reorderedArguments(_ args: [String]) -> [String] {
        let names = Set(configuration.subcommands.map { $0._commandName })
        guard let i = args.firstIndex(where: { names.contains($0) || $0 == "help" }) else { return args }
        if args[i] == "help" { return Array(args[i...]) }
        guard i > 0 else { return args }
        return [args[i]] + args[..<i] + args[(i + 1)...]
    }

    static func main() async {
        let args = reorderedArguments(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(args)
            if var c = command as? any AsyncParsableCommand {
                try await c.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's state.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            try await withClient(g) { client in
                let s = try await client.status(Repeng_V1_StatusRequest(), options: g.unaryOptions)
                if g.json {
                    try printJSON([
                        "version": s.version, "uptime_seconds": s.uptimeSeconds, "pid": s.pid, "socket": s.socket,
                        "vectors_dir": s.vectorsDir, "state_dir": s.stateDir, "default_model": s.defaultModel,
                        "model_count": s.modelCount, "active_generations": s.activeGenerations,
                        "queued_generations": s.queuedGenerations, "active_trainings": s.activeTrainings,
                        "generations_served": s.generationsServed, "vector_count": s.vectorCount,
                        "vector_errors": s.vectorErrors, "http_socket": s.httpSocket, "http_url": s.httpURL,
                    ])
                } else {
                    writeOut("""
                        repengd \(s.version) (pid \(s.pid)), up \(String(format: "%.0f", s.uptimeSeconds)) s
                        socket:        \(s.socket)
                        vectors:       \(s.vectorsDir)
                        state:         \(s.stateDir)
                        default model: \(s.defaultModel) (\(s.modelCount) model(s))
                        generations:   \(s.activeGenerations) active, \(s.queuedGenerations) queued, \(s.generationsServed) served
                        trainings:     \(s.activeTrainings) active
                        vectors:       \(s.vectorCount) (\(s.vectorErrors) with errors: see `repengctl vectors`)
                        http:          \(s.httpSocket)\(s.httpURL.isEmpty ? "" : " and \(s.httpURL)")

                        """)
                }
            }
        }
    }
}

struct HTTPURL: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-url",
        abstract: "Print the playground's URL with its token (repengd --http-listen).",
        discussion: "Open it in a browser on this machine. Without --http-listen the HTTP API is only on its Unix socket; --socket-path prints that.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the HTTP API's Unix socket instead.")
    var socketPath = false

    func run() async throws {
        let g = global, socketOnly = socketPath
        try await runReporting {
            try await withClient(g) { client in
                let s = try await client.status(Repeng_V1_StatusRequest(), options: g.unaryOptions)
                if socketOnly {
                    writeOut(s.httpSocket + "\n")
                    return
                }
                guard !s.httpURL.isEmpty else {
                    throw fail("repengd serves HTTP only on its Unix socket \(s.httpSocket) (curl --unix-socket \(s.httpSocket) http://localhost/); start it with --http-listen 127.0.0.1:PORT for the playground", ExitStatus.failedPrecondition)
                }
                writeOut(s.httpURL + "\n")
            }
        }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the standard gRPC health service (exit 0 when serving).")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            let path = g.socketPath
            do {
                let serving = try await withRepengClient(socket: path) { _, health in
                    try await health.check(.with { $0.service = "repeng.v1.Repeng" }, options: g.unaryOptions).status == .serving
                }
                if g.json { try printJSON(["serving": serving]) } else { writeOut(serving ? "SERVING\n" : "NOT_SERVING\n") }
                if !serving { throw fail("the daemon is not serving", ExitStatus.unavailable) }
            } catch {
                throw failure(from: error, socket: path)
            }
        }
    }
}

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the resident models.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.listModels(Repeng_V1_ListModelsRequest(), options: g.unaryOptions)
                if g.json {
                    try printJSON(["models": r.models.map { m in
                        ["name": m.name, "path": m.path, "architecture": m.architecture, "display_name": m.displayName,
                         "block_count": m.blockCount, "hidden_size": m.hiddenSize, "vocab_size": m.vocabSize,
                         "context_length": m.contextLength, "default": m.isDefault, "controlled": m.controlled,
                         "weight_types": m.weightTypes, "resident_bytes": m.residentBytes, "precision": m.precision,
                         "chat_template_present": m.chatTemplatePresent] as [String: Any]
                    }])
                } else {
                    for m in r.models {
                        let types = m.weightTypes.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                            .map { "\($0.key)×\($0.value)" }.joined(separator: ",")
                        writeOut("\(m.name)\(m.isDefault ? " (default)" : "")\t\(m.architecture)\t\(m.blockCount) blocks\thidden \(m.hiddenSize)"
                            + "\tvocab \(m.vocabSize)\tcontext \(m.contextLength)\t\(types.isEmpty ? "-" : types)"
                            + "\t\(m.precision.isEmpty ? "" : m.precision + " ")\(String(format: "%.0f", Double(m.residentBytes) / 1048576)) MiB"
                            + "\t\(m.chatTemplatePresent ? "chat template" : "no chat template")"
                            + "\t\(m.controlled ? "controlled" : "no control")\t\(m.path)\n")
                    }
                }
            }
        }
    }
}

struct Vectors: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the vectors in the daemon's vector directory.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.listVectors(Repeng_V1_ListVectorsRequest(), options: g.unaryOptions)
                if g.json {
                    try printJSON(["vectors": r.vectors.map { v in
                        var o: [String: Any] = [
                            "name": v.name, "file": v.file, "layers": v.layers.map(Int.init), "hidden_size": v.hiddenSize,
                            "model_hint": v.modelHint, "status": Self.statusName(v.status), "size_bytes": v.sizeBytes,
                            "version": v.version,
                        ]
                        if !v.method.isEmpty { o["method"] = v.method }
                        if !v.saeFeatures.isEmpty { o["sae_features"] = v.saeFeatures }
                        if !v.error.isEmpty { o["error"] = v.error }
                        return o
                    }])
                } else {
                    for v in r.vectors {
                        if v.status == .error {
                            writeOut("\(v.name)\t\(v.file)\tERROR: \(v.error)\n")
                        } else {
                            let layers = v.layers.isEmpty ? "-" : "\(v.layers.first!)..\(v.layers.last!) (\(v.layers.count))"
                            var line = "\(v.name)\t\(v.file)\tv\(v.version)\tlayers \(layers)\thidden \(v.hiddenSize)\t\(v.modelHint)"
                            if !v.saeFeatures.isEmpty { line += "\tSAE features (\(v.saeFeatures))" }
                            if v.status == .stale { line += "\tSTALE (newest file: \(v.error))" }
                            writeOut(line + "\n")
                        }
                    }
                }
            }
        }
    }
}

extension Vectors {
    static func statusName(_ s: Repeng_V1_VectorStatus) -> String {
        switch s {
        case .ok: return "ok"
        case .stale: return "stale"
        default: return "error"
        }
    }
}

struct Tokenize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the token ids of a text.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Leave out the BOS/EOS tokens added by default.")
    var noSpecial = false
    @Flag(help: "Lay the text out as one user message with the generation prompt (the ids generate --chat uses).")
    var chat = false
    @Option(help: "With --chat: chatml, gemma or plain instead of the model's own chat template.")
    var chatFormat: String?
    @Argument(help: "Text to tokenize.")
    var text: String

    func run() async throws {
        let g = global, text = self.text, noSpecial = self.noSpecial, chat = self.chat, chatFormat = self.chatFormat
        if chatFormat != nil && !chat { throw ValidationError("--chat-format applies to --chat") }
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.tokenize(.with {
                    $0.model = g.model ?? ""
                    $0.text = text
                    $0.noSpecial = noSpecial
                    $0.chat = chat
                    $0.chatFormat = chatFormat ?? ""
                }, options: g.unaryOptions)
                if g.json {
                    try printJSON(["ids": r.ids.map(Int.init), "pieces": r.pieces])
                } else {
                    writeOut(r.ids.map(String.init).joined(separator: " ") + "\n")
                }
            }
        }
    }
}

struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a control vector and save it as NAME.gguf in the daemon's vector directory.",
        discussion: """
            FILE.json holds an array of {"positive": …, "negative": …} pairs. With --chat, positive and \
            negative are the user messages and each entry's "reply" the start of the assistant's answer; \
            the daemon lays them out with the model's own chat template. With --sae DIR the daemon \
            trains through the sparse autoencoders of DIR (EleutherAI or SAELens layout), a folder \
            in its SAE directory: by default on the layers DIR covers, with pca_center, decoded \
            back to hidden states; --keep-features keeps the SAE feature weights instead.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Name of the vector to write.")
    var name: String
    @Option(help: "Dataset file (JSON array of {positive, negative}).")
    var dataset: String
    @Option(help: "pca_diff (default; pca_center with --sae), pca_center or mean_diff.")
    var method: String?
    @Option(parsing: .unconditional, help: "Layers to train: ids and ranges, e.g. '-1..-29' or '13..25'.")
    var layers: String?
    @Option(help: "Texts per forward pass.")
    var batchSize: UInt32 = 0
    @Flag(help: "Replace an existing vector of that name.")
    var force = false
    @Flag(help: "Lay each pair out as a chat (user message, then \"reply\" after the generation prompt).")
    var chat = false
    @Option(help: "With --chat: chatml, gemma or plain instead of the model's own chat template.")
    var chatFormat: String?
    @Option(help: "Train through the SAEs of this folder (relative to the daemon's SAE directory, or an absolute path inside it).")
    var sae: String?
    @Flag(help: "With --sae: keep the direction as SAE feature weights (not usable for steering) and print its top features.")
    var keepFeatures = false
    @Flag(help: "With --sae: pair layer N with EleutherAI's layers.N-1, as repeng 0.4's from_eleuther does.")
    var saeRepengPairing = false

    func run() async throws {
        let g = global
        if chatFormat != nil && !chat { throw ValidationError("--chat-format applies to --chat") }
        let chat = self.chat, chatFormat = self.chatFormat ?? ""
        if self.sae == nil && (self.keepFeatures || self.saeRepengPairing) {
            throw ValidationError(self.keepFeatures ? "--keep-features applies to --sae" : "--sae-repeng-pairing applies to --sae")
        }
        let sae = self.sae ?? "", keepFeatures = self.keepFeatures, repengPairing = self.saeRepengPairing
        let m: Repeng_V1_TrainingMethod
        switch method {
        case nil: m = .unspecified
        case "pca_diff": m = .pcaDiff
        case "pca_center": m = .pcaCenter
        case "mean_diff": m = .meanDiff
        default: throw ValidationError("--method must be pca_diff, pca_center or mean_diff")
        }
        let layerList = try parseLayers(layers)
        let (name, path, force, batch) = (self.name, self.dataset, self.force, self.batchSize)
        try await runReporting {
            let entries = try Self.readDataset(path, chat: chat)
            let showBar = !g.json && isatty(2) != 0
            try await withClient(g) { client in
                let request = Repeng_V1_TrainRequest.with {
                    $0.model = g.model ?? ""
                    $0.name = name
                    $0.dataset = entries
                    $0.method = m
                    $0.layers = layerList
                    $0.overwrite = force
                    $0.batchSize = batch
                    $0.chat = chat
                    $0.chatFormat = chatFormat
                    $0.sae = sae
                    $0.keepFeatures = keepFeatures
                    $0.saeRepengPairing = repengPairing
                }
                let result = try await client.train(request, options: g.streamOptions) { response in
                    var result: Repeng_V1_TrainResult?
                    for try await ev in response.messages {
                        switch ev.event {
                        case .progress(let p)?:
                            if showBar { writeErr("\r" + Self.bar(done: Int(p.done), total: Int(p.total)) + (p.stage.isEmpty ? "" : " \(p.stage)    ")) }
                        case .result(let r)?: result = r
                        case nil: break
                        }
                    }
                    if showBar { writeErr("\n") }
                    guard let result else { throw fail("training ended without a result", ExitStatus.internalError) }
                    return result
                }
                let v = result.vector
                if g.json {
                    var out: [String: Any] = [
                        "name": v.name, "file": v.file, "layers": v.layers.map(Int.init), "hidden_size": v.hiddenSize,
                        "model_hint": v.modelHint, "method": v.method, "seconds": result.seconds, "warnings": result.warnings]
                    if !result.topFeatures.isEmpty {
                        out["top_features"] = result.topFeatures.map { f -> [String: Any] in
                            ["layer": Int(f.layer), "features": zip(f.index, f.weight).map { [Int($0), Double($1)] }]
                        }
                    }
                    try printJSON(out)
                } else {
                    let size = result.topFeatures.isEmpty ? "hidden \(v.hiddenSize)" : "\(v.hiddenSize) SAE features"
                    writeOut("trained \(v.name) → \(v.file) (\(v.layers.count) layers, \(size)) in \(String(format: "%.1f", result.seconds)) s\n")
                    for f in result.topFeatures {
                        let list = zip(f.index, f.weight).map { "\($0):\(String(format: "%+.4f", $1))" }.joined(separator: " ")
                        writeOut("  layer \(f.layer) top features: \(list)\n")
                    }
                    for w in result.warnings { writeErr("repengctl: warning: \(w)\n") }
                }
            }
        }
    }

    static func bar(done: Int, total: Int) -> String {
        let width = 30
        let frac = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let filled = Int(frac * Double(width))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total)"
    }

    /// Reads a dataset file: a JSON array of {"positive": string, "negative": string}, with
    /// `chat` also an optional "reply" string per entry.
    static func readDataset(_ path: String, chat: Bool) throws -> [Repeng_V1_DatasetEntry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw fail("cannot read dataset \(path)", ExitStatus.notFound)
        }
        guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw fail("dataset \(path) must be a JSON array of {\"positive\", \"negative\"} objects", ExitStatus.invalidArgument)
        }
        return try array.enumerated().map { i, item in
            guard let o = item as? [String: Any], let p = o["positive"] as? String, let n = o["negative"] as? String else {
                throw fail("dataset \(path), element \(i): expected {\"positive\": string, \"negative\": string}", ExitStatus.invalidArgument)
            }
            var reply = ""
            if let r = o["reply"] {
                guard chat else {
                    throw fail("dataset \(path), element \(i) has a \"reply\"; pass --chat to lay the pairs out as chats", ExitStatus.invalidArgument)
                }
                guard let r = r as? String else {
                    throw fail("dataset \(path), element \(i): \"reply\" must be a string", ExitStatus.invalidArgument)
                }
                reply = r
            }
            return .with { $0.positive = p; $0.negative = n; $0.reply = reply }
        }
    }
}

/// Pairs of NAME COEFF arguments.
func parseTerms(_ args: [String]) throws -> [Repeng_V1_ControlTerm] {
    guard !args.isEmpty, args.count % 2 == 0 else { throw ValidationError("give NAME COEFF pairs, e.g. 'happy 4 calm -1.5'") }
    return try stride(from: 0, to: args.count, by: 2).map { i in
        let name = args[i]
        let c = try parseCoefficient(args[i + 1], for: name)
        return .with { $0.vector = name; $0.coefficient = c }
    }
}

func describe(_ c: Repeng_V1_Control) -> String {
    guard !c.terms.isEmpty else { return "no control" }
    var s = c.terms.map { "\($0.vector) × \($0.coefficient)" }.joined(separator: " + ")
    if !c.layers.isEmpty { s += " on layers \(c.layers.map(String.init).joined(separator: ","))" }
    if c.normalize { s += " (normalized)" }
    return s
}

func controlJSON(_ model: String, _ c: Repeng_V1_Control, _ blocks: [Int32]) -> [String: Any] {
    ["model": model, "terms": c.terms.map { ["vector": $0.vector, "coefficient": Double($0.coefficient)] as [String: Any] },
     "layers": c.layers.map(Int.init), "normalize": c.normalize, "controlled_layers": blocks.map(Int.init)]
}

struct SetControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the model's control: the sum of the NAME × COEFF terms (used by later generations).",
        discussion: """
            A useful coefficient depends on the size of the model's residual stream: a few units on \
            SmolLM2 and most Llama-family models, hundreds on Gemma-3, whose hidden states have norms \
            in the thousands.
            """)
    @OptionGroup var global: GlobalOptions
    @Option(parsing: .unconditional, help: "Layers to control: ids and ranges, e.g. '-5..-18'.")
    var layers: String?
    @Flag(help: "Rescale each controlled position back to its norm.")
    var normalize = false
    @Argument(parsing: .allUnrecognized, help: "NAME COEFF [NAME COEFF …]")
    var terms: [String] = []

    func run() async throws {
        let g = global
        let t = try parseTerms(terms)
        let layerList = try parseLayers(layers)
        let normalize = self.normalize
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.setControl(.with {
                    $0.model = g.model ?? ""
                    $0.control.terms = t
                    $0.control.layers = layerList
                    $0.control.normalize = normalize
                }, options: g.unaryOptions)
                if g.json {
                    var o = controlJSON(g.model ?? "", r.control, r.controlledLayers)
                    o["warnings"] = r.warnings
                    try printJSON(o)
                } else {
                    writeOut("control: \(describe(r.control)) (\(r.controlledLayers.count) layers)\n")
                    for w in r.warnings { writeErr("repengctl: warning: \(w)\n") }
                }
            }
        }
    }
}

struct GetControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the model's control.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.getControl(.with { $0.model = g.model ?? "" }, options: g.unaryOptions)
                if g.json {
                    try printJSON(controlJSON(r.model, r.control, r.controlledLayers))
                } else {
                    writeOut("\(r.model): \(describe(r.control))\n")
                }
            }
        }
    }
}

struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove the model's control.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let g = global
        try await runReporting {
            try await withClient(g) { client in
                let r = try await client.reset(.with { $0.model = g.model ?? "" }, options: g.unaryOptions)
                if g.json { try printJSON(["model": r.model]) } else { writeOut("\(r.model): control removed\n") }
            }
        }
    }
}

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text (streamed to stdout; only the generated text is printed).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Most tokens to generate (default: the daemon's).")
    var maxTokens: UInt32?
    @Option(help: "Sampling temperature (0 = greedy, the default).")
    var temperature: Float?
    @Option(help: "Top-k (0 = off).")
    var topK: UInt32?
    @Option(help: "Top-p in (0, 1].")
    var topP: Float?
    @Option(help: "Min-p in [0, 1].")
    var minP: Float?
    @Option(help: "Repetition penalty (1 = off).")
    var repetitionPenalty: Float?
    @Option(help: "Random seed.")
    var seed: UInt64?
    @Option(help: "Stop string (repeatable).")
    var stop: [String] = []
    @Option(parsing: .unconditionalSingleValue, help: "NAME:COEFF control for this request only (repeatable); replaces the model's control.")
    var control: [String] = []
    @Option(parsing: .unconditional, help: "Layers for --control: ids and ranges, e.g. '-5..-18'.")
    var layers: String?
    @Flag(help: "Normalize --control.")
    var normalize = false
    @Flag(help: "Send the prompt as a user chat message (laid out by the model's own chat template).")
    var chat = false
    @Option(help: "With --chat: chatml, gemma or plain instead of the model's own chat template.")
    var chatFormat: String?
    @Flag(help: "Print token counts and timings on stderr.")
    var verbose = false
    @Argument(help: "The prompt.")
    var prompt: String

    func run() async throws {
        let g = global
        var terms: [Repeng_V1_ControlTerm] = []
        for c in control {
            guard let colon = c.lastIndex(of: ":") else { throw ValidationError("--control takes NAME:COEFF, got '\(c)'") }
            let name = String(c[..<colon])
            let k = try parseCoefficient(String(c[c.index(after: colon)...]), for: name)
            terms.append(.with { $0.vector = name; $0.coefficient = k })
        }
        let layerList = try parseLayers(layers)
        if terms.isEmpty && (!layerList.isEmpty || normalize) {
            throw ValidationError("--layers and --normalize apply to --control; use set-control for the model's control")
        }
        if chatFormat != nil && !chat { throw ValidationError("--chat-format applies to --chat") }
        var req = Repeng_V1_GenerateRequest()
        req.model = g.model ?? ""
        req.chatFormat = chatFormat ?? ""
        if chat { req.chat = .with { $0.messages = [.with { $0.role = "user"; $0.content = prompt }] } } else { req.prompt = prompt }
        req.maxTokens = maxTokens ?? 0
        req.stop = stop
        if temperature != nil || topK != nil || topP != nil || minP != nil || repetitionPenalty != nil || seed != nil {
            req.sampling = .with { s in
                if let v = temperature { s.temperature = v }
                if let v = topK { s.topK = v }
                if let v = topP { s.topP = v }
                if let v = minP { s.minP = v }
                if let v = repetitionPenalty { s.repetitionPenalty = v }
                if let v = seed { s.seed = v }
            }
        }
        if !terms.isEmpty {
            req.control = .with { $0.terms = terms; $0.layers = layerList; $0.normalize = normalize }
        }
        let request = req, verbose = self.verbose
        try await runReporting {
            try await withClient(g) { client in
                let tty = isatty(1) != 0
                let (text, done) = try await client.generate(request, options: g.streamOptions) { response in
                    var text = ""
                    var done: Repeng_V1_GenerateDone?
                    for try await ev in response.messages {
                        switch ev.event {
                        case .chunk(let c)?:
                            text += c.text
                            if !g.json { writeOut(c.text) }
                        case .done(let d)?: done = d
                        case nil: break
                        }
                    }
                    return (text, done)
                }
                guard let done else { throw fail("generation ended without a result", ExitStatus.internalError) }
                if g.json {
                    try printJSON(["text": text, "finish_reason": Self.reason(done.finishReason),
                                   "prompt_tokens": done.promptTokens, "completion_tokens": done.completionTokens,
                                   "queue_seconds": done.queueSeconds, "prefill_seconds": done.prefillSeconds,
                                   "decode_seconds": done.decodeSeconds, "total_seconds": done.totalSeconds])
                } else if tty {
                    writeOut("\n")
                }
                if verbose {
                    writeErr("[\(Self.reason(done.finishReason)); \(done.promptTokens) prompt + \(done.completionTokens) generated tokens; prefill \(String(format: "%.3f", done.prefillSeconds)) s, decode \(String(format: "%.3f", done.decodeSeconds)) s, total \(String(format: "%.3f", done.totalSeconds)) s]\n")
                }
            }
        }
    }

    static func reason(_ r: Repeng_V1_FinishReason) -> String {
        switch r {
        case .eos: return "eos"
        case .length: return "length"
        case .stop: return "stop"
        case .contextFull: return "context_full"
        case .cancelled: return "cancelled"
        default: return "unknown"
        }
    }
}
