// repengd settings: paths, models and limits, from flags and an optional TOML file, with the
// defaults that let the daemon start with no configuration at all.
import Foundation
import RepengEngine
import RepengProtocol

/// Bounds on what one request or one client may ask of the daemon.
public struct DaemonLimits: Sendable, Equatable {
    /// Generate requests waiting for a decode slot, per model; more → RESOURCE_EXHAUSTED.
    public var maxQueue = 64
    /// Sequences decoded together in one batched step, per model.
    public var maxBatch = 8
    /// Largest `max_tokens` a request may ask for.
    public var maxTokens = 2048
    /// `max_tokens` used when a request leaves it at 0.
    public var defaultMaxTokens = 128
    /// Longest prompt, in tokens.
    public var maxPromptTokens = 4096
    /// Largest request message, in bytes (enforced by the transport).
    public var maxRequestBytes = 16 << 20
    /// Largest absolute control coefficient.
    public var maxCoefficient: Float = 1000
    /// Most terms in one control.
    public var maxControlTerms = 16
    /// Most stop strings, and the longest one in characters.
    public var maxStopStrings = 16
    public var maxStopLength = 256
    /// Most contrastive pairs in one Train request.
    public var maxTrainingPairs = 10_000
    /// Most tokens of all texts of one Train request together (each text is bounded by
    /// `maxPromptTokens`); checked while encoding, before any hidden-state memory is taken.
    public var maxTrainingTokens = 1 << 20
    /// Prompt tokens per prefill pass; decode steps of other requests run between chunks.
    public var prefillChunkTokens = GenerationRequest.defaultPrefillChunk
    /// Client connections served at once; streams of further connections are refused.
    public var maxConnections = 256
    /// Concurrent calls per connection, advertised as HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    public var maxConcurrentStreams = 64
    /// A connection with no call for this long is closed (HTTP/2 GOAWAY).
    public var connectionIdleSeconds: Double = 300
    /// Seconds without traffic after which the daemon pings a client (keepalive); a client
    /// that does not answer within 20 s is disconnected.
    public var keepaliveSeconds: Double = 60
    /// Trainings that may run at once (over all models).
    public var maxConcurrentTrainings = 1
    /// Seconds a graceful shutdown waits for running requests before cancelling them.
    public var drainSeconds: Double = 10
    /// Generated pieces a stream may hold for a client that does not read; past that its
    /// sequence waits (other clients are not slowed).
    public var maxBufferedPieces = 64
    /// Seconds a sequence may wait for a client that does not read before it is stopped.
    public var slowReaderSeconds: Double = 60

    public init() {}
}

/// One model to load: the name requests use, its GGUF file or Hugging Face folder, and how its
/// weights are kept (nil: the daemon's default, `DaemonConfig.precision`).
public struct ModelSpec: Sendable, Equatable {
    public var name: String
    public var path: String
    public var precision: WeightPrecision?
    public init(name: String, path: String, precision: WeightPrecision? = nil) {
        self.name = name
        self.path = path
        self.precision = precision
    }
}

/// Why the configuration is unusable.
public enum ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    case unreadable(path: String, reason: String)
    case toml(path: String, reason: String)
    case badValue(key: String, reason: String)
    case badModelFlag(String)
    case duplicateModel(String)
    case noModel(searched: [String])

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "cannot read config file \(p): \(r)"
        case let .toml(p, r): return "config file \(p) is not valid TOML: \(r)"
        case let .badValue(k, r): return "config key '\(k)': \(r)"
        case .badModelFlag(let f): return "--model takes NAME=PATH, got '\(f)'"
        case .duplicateModel(let n): return "model name '\(n)' is configured twice"
        case .noModel(let searched):
            return "no model configured and the bundled default was not found (looked in \(searched.joined(separator: ", "))); pass --model NAME=PATH or run scripts/bootstrap.sh"
        }
    }
}

/// Everything the daemon needs to start.
public struct DaemonConfig: Sendable, Equatable {
    /// Unix domain socket path to listen on.
    public var socketPath: String
    /// Directory of vector files (NAME.gguf / NAME.json).
    public var vectorsDir: String
    /// Directory of the daemon's own state (control.json).
    public var stateDir: String
    /// Directory of SAE folders that Train may read (`TrainRequest.sae` names a folder in it).
    public var saesDir: String
    /// How model weights are kept when a model names none: `native` (the file's own encodings
    /// where the engine multiplies them directly; the serving default) or `exact` (f32).
    public var precision: WeightPrecision
    /// Models to load; the first is the default.
    public var models: [ModelSpec]
    /// BLAS threads (nil: one per core).
    public var threads: Int?
    /// Group (name or number) that owns the socket and its directory when the daemon creates
    /// them (nil: the daemon's own group).
    public var socketGroup: String?
    /// When set, only these uids (and the daemon's own) may call; others get PERMISSION_DENIED.
    public var allowedUids: [UInt32]?
    public var limits: DaemonLimits
    /// The HTTP API's Unix socket (nil: beside `socketPath`, see `httpSocket`).
    public var httpSocketPath: String?
    /// Loopback TCP address the HTTP API also listens on ("127.0.0.1:8080"; port 0 picks a free
    /// one); nil: the Unix socket only.
    public var httpListen: HTTPAddress?
    /// Whether `httpListen` may be a non-loopback address (config key `http_allow_remote`).
    public var httpAllowRemote = false
    /// File holding the bearer token TCP requests must send (nil: `STATE/http-token`, created
    /// with a random token, mode 0600, when missing).
    public var httpTokenFile: String?

    /// The HTTP API's Unix socket: `httpSocketPath`, else `NAME-http.sock` beside the gRPC
    /// socket `NAME.sock` (same directory, group and permissions).
    public var httpSocket: String {
        if let httpSocketPath { return httpSocketPath }
        let url = URL(fileURLWithPath: socketPath)
        var base = url.lastPathComponent
        if base.hasSuffix(".sock") { base.removeLast(5) }
        return url.deletingLastPathComponent().appendingPathComponent(base + "-http.sock").path
    }

    /// The token file TCP clients' tokens are checked against.
    public var httpTokenPath: String { httpTokenFile ?? stateDir + "/http-token" }

    public init(socketPath: String, vectorsDir: String, stateDir: String, models: [ModelSpec],
                threads: Int? = nil, socketGroup: String? = nil, allowedUids: [UInt32]? = nil,
                limits: DaemonLimits = DaemonLimits(), saesDir: String? = nil, precision: WeightPrecision = .native) {
        self.saesDir = saesDir ?? stateDir + "/saes"
        self.precision = precision
        self.socketGroup = socketGroup
        self.allowedUids = allowedUids
        self.socketPath = socketPath
        self.vectorsDir = vectorsDir
        self.stateDir = stateDir
        self.models = models
        self.threads = threads
        self.limits = limits
    }

    /// The bundled default model's file name and the name it is served under.
    public static let bundledModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let bundledModelName = "smollm2"

    /// `$XDG_STATE_HOME/repengd`, else `~/.local/state/repengd`.
    public static func defaultStateDir(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let s = env["XDG_STATE_HOME"], s.hasPrefix("/") { return s + "/repengd" }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/state/repengd"
    }

    /// Folders searched for the bundled model, in order: `$REPENG_CACHE/models`, the
    /// `.cache/models` of a source checkout holding the executable or the working directory,
    /// then the install locations.
    public static func modelSearchDirs(environment env: [String: String] = ProcessInfo.processInfo.environment,
                                       executable: String = CommandLine.arguments.first ?? "") -> [String] {
        var dirs: [String] = []
        if let c = env["REPENG_CACHE"], !c.isEmpty { dirs.append(c + "/models") }
        var starts: [URL] = []
        if !executable.isEmpty { starts.append(URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()) }
        starts.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        for start in starts {
            var d = start
            for _ in 0..<8 {
                if FileManager.default.fileExists(atPath: d.appendingPathComponent("Package.swift").path) {
                    dirs.append(d.appendingPathComponent(".cache/models").path)
                    break
                }
                let up = d.deletingLastPathComponent()
                if up.path == d.path { break }
                d = up
            }
        }
        dirs += ["/usr/local/share/repengd/models", "/usr/share/repengd/models"]
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    /// The bundled model, if one of `modelSearchDirs` has it.
    public static func bundledModel(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> ModelSpec {
        let dirs = modelSearchDirs(environment: env)
        for d in dirs where FileManager.default.fileExists(atPath: d + "/" + bundledModelFile) {
            return ModelSpec(name: bundledModelName, path: d + "/" + bundledModelFile)
        }
        throw ConfigError.noModel(searched: dirs)
    }

    /// Parses `NAME=PATH`.
    public static func parseModelFlag(_ flag: String) throws -> ModelSpec {
        guard let eq = flag.firstIndex(of: "=") else { throw ConfigError.badModelFlag(flag) }
        let name = String(flag[..<eq]), path = String(flag[flag.index(after: eq)...])
        guard VectorName.isValid(name), !path.isEmpty else { throw ConfigError.badModelFlag(flag) }
        return ModelSpec(name: name, path: path)
    }

    /// Settings read from a TOML file; every key is optional.
    ///
    /// ```toml
    /// socket = "/run/repengd/repengd.sock"
    /// vectors = "/var/lib/repengd/vectors"
    /// saes = "/var/lib/repengd/saes"  # SAE folders Train may read (default: STATE/saes)
    /// precision = "native"         # weights in their file encodings (default) or "exact" (f32)
    /// state = "/var/lib/repengd"
    /// threads = 2
    /// socket_group = "repeng"      # group of the socket (0660) and its directory (0750)
    /// allowed_uids = [1000, 1001]  # only these uids (and the daemon's) may call
    /// http_socket = "/run/repengd/repengd-http.sock"  # HTTP API (default: beside socket)
    /// http_listen = "127.0.0.1:8080"  # also on loopback TCP, with a bearer token
    /// http_allow_remote = false    # true: http_listen may be a non-loopback address
    /// http_token_file = "/etc/repengd/http-token"  # default: STATE/http-token (generated)
    /// [[model]]
    /// name = "smollm2"
    /// path = "/usr/share/repengd/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// precision = "exact"          # this model only
    /// [limits]
    /// max_queue = 64
    /// max_batch = 8
    /// max_tokens = 2048
    /// default_max_tokens = 128
    /// max_prompt_tokens = 4096
    /// max_request_bytes = 16777216
    /// max_coefficient = 1000.0
    /// max_training_pairs = 10000
    /// max_concurrent_trainings = 1
    /// drain_seconds = 10.0
    /// max_buffered_pieces = 64
    /// slow_reader_seconds = 60.0
    /// max_training_tokens = 1048576
    /// prefill_chunk_tokens = 128
    /// max_connections = 256
    /// max_concurrent_streams = 64
    /// connection_idle_seconds = 300.0
    /// keepalive_seconds = 60.0
    /// ```
    public struct FileSettings: Sendable, Equatable {
        public var socket: String?
        public var vectors: String?
        public var saes: String?
        public var precision: WeightPrecision?
        public var state: String?
        public var threads: Int?
        public var socketGroup: String?
        public var allowedUids: [UInt32]?
        public var httpSocket: String?
        public var httpListen: HTTPAddress?
        public var httpAllowRemote: Bool?
        public var httpTokenFile: String?
        public var models: [ModelSpec] = []
        public var limits = DaemonLimits()
        public init() {}
    }

    /// Largest config file read, in bytes.
    public static let maxFileBytes = 1 << 20
    /// Most `[[model]]` tables in a config file.
    public static let maxModels = 64

    /// Reads and checks a TOML config file (at most `maxFileBytes`, a regular file).
    public static func readFile(_ path: String) throws -> FileSettings {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw ConfigError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ConfigError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError.unreadable(path: path, reason: "not a regular file")
        }
        guard st.st_size <= maxFileBytes else {
            throw ConfigError.unreadable(path: path, reason: "the file has \(st.st_size) bytes; a config file may have at most \(maxFileBytes)")
        }
        var bytes = [UInt8](repeating: 0, count: maxFileBytes + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigError.unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maxFileBytes else {
            throw ConfigError.unreadable(path: path, reason: "the file grew past \(maxFileBytes) bytes while being read")
        }
        guard let text = String(validating: bytes[..<total], as: UTF8.self) else {
            throw ConfigError.unreadable(path: path, reason: "the file is not UTF-8 text")
        }
        return try parseTOML(text, path: path)
    }

    /// Parses TOML config text (see `FileSettings`); unknown keys are errors.
    public static func parseTOML(_ text: String, path: String = "<config>") throws -> FileSettings {
        guard text.utf8.count <= maxFileBytes else {
            throw ConfigError.toml(path: path, reason: "the text has \(text.utf8.count) bytes; at most \(maxFileBytes) are read")
        }
        let table: TOMLTable
        do { table = try TOML.parse(text) } catch { throw ConfigError.toml(path: path, reason: error.description) }
        var out = FileSettings()
        func string(_ t: TOMLTable, _ key: String, _ label: String) throws -> String? {
            guard let v = t[key] else { return nil }
            guard let s = v.string else { throw ConfigError.badValue(key: label, reason: "must be a string") }
            return s
        }
        func int(_ t: TOMLTable, _ key: String, _ label: String, min: Int = 1, max: Int = Int(Int32.max)) throws -> Int? {
            guard let v = t[key] else { return nil }
            guard let i = v.int else { throw ConfigError.badValue(key: label, reason: "must be an integer") }
            guard i >= min, i <= max else { throw ConfigError.badValue(key: label, reason: "must be in \(min)...\(max), got \(i)") }
            return i
        }
        func double(_ t: TOMLTable, _ key: String, _ label: String, min: Double, max: Double) throws -> Double? {
            guard let v = t[key] else { return nil }
            guard let d = v.double ?? v.int.map(Double.init) else { throw ConfigError.badValue(key: label, reason: "must be a number") }
            guard d.isFinite, d >= min, d <= max else { throw ConfigError.badValue(key: label, reason: "must be in \(min)...\(max), got \(d)") }
            return d
        }
        let topKeys = ["socket", "vectors", "saes", "precision", "state", "threads", "socket_group", "allowed_uids",
                       "http_socket", "http_listen", "http_allow_remote", "http_token_file", "model", "limits"]
        for key in table.keys where !topKeys.contains(key) {
            throw ConfigError.badValue(key: key, reason: "unknown key (known: \(topKeys.joined(separator: ", ")))")
        }
        out.socketGroup = try string(table, "socket_group", "socket_group")
        if let g = out.socketGroup, g.isEmpty { throw ConfigError.badValue(key: "socket_group", reason: "must be a group name or number") }
        if let a = table["allowed_uids"] {
            guard let arr = a.array else { throw ConfigError.badValue(key: "allowed_uids", reason: "must be an array of uids") }
            guard arr.count <= 4096 else {
                throw ConfigError.badValue(key: "allowed_uids", reason: "\(arr.count) uids listed; at most 4096 (use socket_group for more)")
            }
            out.allowedUids = try arr.enumerated().map { i, item in
                guard let v = item.int, v >= 0, v < Int(UInt32.max) else {
                    throw ConfigError.badValue(key: "allowed_uids[\(i)]", reason: "must be a uid (a non-negative integer)")
                }
                return UInt32(v)
            }
        }
        out.socket = try string(table, "socket", "socket")
        out.httpSocket = try string(table, "http_socket", "http_socket")
        out.httpTokenFile = try string(table, "http_token_file", "http_token_file")
        if let l = try string(table, "http_listen", "http_listen") {
            do { out.httpListen = try HTTPAddress(parsing: l) } catch { throw ConfigError.badValue(key: "http_listen", reason: "\(error)") }
        }
        if let v = table["http_allow_remote"] {
            guard let b = v.bool else { throw ConfigError.badValue(key: "http_allow_remote", reason: "must be true or false") }
            out.httpAllowRemote = b
        }
        out.vectors = try string(table, "vectors", "vectors")
        out.saes = try string(table, "saes", "saes")
        func precision(_ t: TOMLTable, _ label: String) throws -> WeightPrecision? {
            guard let s = try string(t, "precision", label) else { return nil }
            guard let p = WeightPrecision(rawValue: s) else { throw ConfigError.badValue(key: label, reason: "must be \"native\" or \"exact\", got '\(quoted(s))'") }
            return p
        }
        out.precision = try precision(table, "precision")
        out.state = try string(table, "state", "state")
        out.threads = try int(table, "threads", "threads", max: 1024)
        if let m = table["model"] {
            guard let arr = m.array else { throw ConfigError.badValue(key: "model", reason: "must be an array of tables ([[model]])") }
            guard arr.count <= maxModels else {
                throw ConfigError.badValue(key: "model", reason: "\(arr.count) models configured; at most \(maxModels)")
            }
            for (i, item) in arr.enumerated() {
                guard let t = item.table else { throw ConfigError.badValue(key: "model[\(i)]", reason: "must be a table with name and path") }
                guard let name = try string(t, "name", "model[\(i)].name"), VectorName.isValid(name) else {
                    throw ConfigError.badValue(key: "model[\(i)].name", reason: "must be a name of 1-64 characters from [A-Za-z0-9_.-]")
                }
                guard let p = try string(t, "path", "model[\(i)].path"), !p.isEmpty else {
                    throw ConfigError.badValue(key: "model[\(i)].path", reason: "must be the path of a GGUF file")
                }
                for key in t.keys where !["name", "path", "precision"].contains(key) {
                    throw ConfigError.badValue(key: "model[\(i)].\(key)", reason: "unknown key (known: name, path, precision)")
                }
                out.models.append(ModelSpec(name: name, path: p, precision: try precision(t, "model[\(i)].precision")))
            }
        }
        if let l = table["limits"] {
            guard let t = l.table else { throw ConfigError.badValue(key: "limits", reason: "must be a table") }
            var lim = DaemonLimits()
            let known = ["max_queue", "max_batch", "max_tokens", "default_max_tokens", "max_prompt_tokens", "max_request_bytes",
                         "max_coefficient", "max_control_terms", "max_training_pairs", "max_concurrent_trainings", "drain_seconds",
                         "max_buffered_pieces", "slow_reader_seconds", "max_training_tokens", "prefill_chunk_tokens",
                         "max_connections", "max_concurrent_streams", "connection_idle_seconds", "keepalive_seconds"]
            for key in t.keys where !known.contains(key) {
                throw ConfigError.badValue(key: "limits.\(key)", reason: "unknown key (known: \(known.joined(separator: ", ")))")
            }
            if let v = try int(t, "max_queue", "limits.max_queue", min: 0) { lim.maxQueue = v }
            if let v = try int(t, "max_batch", "limits.max_batch", max: 256) { lim.maxBatch = v }
            if let v = try int(t, "max_tokens", "limits.max_tokens") { lim.maxTokens = v }
            if let v = try int(t, "default_max_tokens", "limits.default_max_tokens") { lim.defaultMaxTokens = v }
            if let v = try int(t, "max_prompt_tokens", "limits.max_prompt_tokens") { lim.maxPromptTokens = v }
            if let v = try int(t, "max_request_bytes", "limits.max_request_bytes", min: 1024) { lim.maxRequestBytes = v }
            if let v = try double(t, "max_coefficient", "limits.max_coefficient", min: 0, max: 1e6) { lim.maxCoefficient = Float(v) }
            if let v = try int(t, "max_control_terms", "limits.max_control_terms", max: 1024) { lim.maxControlTerms = v }
            if let v = try int(t, "max_training_pairs", "limits.max_training_pairs") { lim.maxTrainingPairs = v }
            if let v = try int(t, "max_concurrent_trainings", "limits.max_concurrent_trainings", min: 0, max: 64) { lim.maxConcurrentTrainings = v }
            if let v = try double(t, "drain_seconds", "limits.drain_seconds", min: 0, max: 3600) { lim.drainSeconds = v }
            if let v = try int(t, "max_buffered_pieces", "limits.max_buffered_pieces", max: 1 << 20) { lim.maxBufferedPieces = v }
            if let v = try double(t, "slow_reader_seconds", "limits.slow_reader_seconds", min: 0.1, max: 86400) { lim.slowReaderSeconds = v }
            if let v = try int(t, "max_training_tokens", "limits.max_training_tokens") { lim.maxTrainingTokens = v }
            if let v = try int(t, "prefill_chunk_tokens", "limits.prefill_chunk_tokens", min: 0, max: 1 << 20) { lim.prefillChunkTokens = v }
            if let v = try int(t, "max_connections", "limits.max_connections", max: 1 << 20) { lim.maxConnections = v }
            if let v = try int(t, "max_concurrent_streams", "limits.max_concurrent_streams", max: 1 << 16) { lim.maxConcurrentStreams = v }
            if let v = try double(t, "connection_idle_seconds", "limits.connection_idle_seconds", min: 1, max: 86400 * 30) { lim.connectionIdleSeconds = v }
            if let v = try double(t, "keepalive_seconds", "limits.keepalive_seconds", min: 1, max: 86400) { lim.keepaliveSeconds = v }
            lim.defaultMaxTokens = Swift.min(lim.defaultMaxTokens, lim.maxTokens)
            out.limits = lim
        }
        return out
    }

    /// Combines flags (which win), a config file and the defaults.
    public static func resolve(socket: String?, vectors: String?, state: String?, modelFlags: [String], threads: Int?,
                               socketGroup: String? = nil, allowedUids: [UInt32] = [], saes: String? = nil,
                               precision: WeightPrecision? = nil, httpListen: String? = nil, configFile: String?, environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> DaemonConfig {
        let file = try configFile.map(readFile) ?? FileSettings()
        var models = try modelFlags.map(parseModelFlag)
        if models.isEmpty { models = file.models }
        if models.isEmpty { models = [try bundledModel(environment: env)] }
        var names = Set<String>()
        for m in models where !names.insert(m.name).inserted { throw ConfigError.duplicateModel(m.name) }
        let stateDir = state ?? file.state ?? defaultStateDir(environment: env)
        var listen = file.httpListen
        if let httpListen {
            do { listen = try HTTPAddress(parsing: httpListen) } catch { throw ConfigError.badValue(key: "--http-listen", reason: "\(error)") }
        }
        let allowRemote = file.httpAllowRemote ?? false
        if let listen, !listen.isLoopback, !allowRemote {
            throw ConfigError.badValue(key: httpListen == nil ? "http_listen" : "--http-listen",
                                       reason: "\(listen) is not a loopback address; the HTTP API listens on 127.0.0.1 or ::1 unless the config file sets http_allow_remote = true")
        }
        var config = DaemonConfig(
            socketPath: socket ?? file.socket ?? RepengSocket.daemonDefaultPath(environment: env),
            vectorsDir: vectors ?? file.vectors ?? (defaultStateDir(environment: env) + "/vectors"),
            stateDir: stateDir,
            models: models,
            threads: threads ?? file.threads,
            socketGroup: socketGroup ?? file.socketGroup,
            allowedUids: allowedUids.isEmpty ? file.allowedUids : allowedUids,
            limits: file.limits,
            saesDir: saes ?? file.saes,
            precision: precision ?? file.precision ?? .native)
        config.httpSocketPath = file.httpSocket
        config.httpListen = listen
        config.httpAllowRemote = allowRemote
        config.httpTokenFile = file.httpTokenFile
        return config
    }
}

/// A TCP address for the HTTP API: `HOST:PORT`, `[IPV6]:PORT` or `localhost:PORT`.
public struct HTTPAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; the host is a numeric IPv4 or bracketed IPv6 address, or `localhost`.
    public init(parsing text: String) throws {
        guard text.utf8.count <= 300, let colon = text.lastIndex(of: ":") else {
            throw DaemonError.invalidArgument("'\(quoted(text))' is not HOST:PORT (e.g. 127.0.0.1:8080)")
        }
        var h = String(text[..<colon])
        let p = String(text[text.index(after: colon)...])
        guard let port = Int(p), (0...65535).contains(port) else {
            throw DaemonError.invalidArgument("port '\(quoted(p))' in '\(quoted(text))' must be 0 to 65535")
        }
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h == "localhost" { h = "127.0.0.1" }
        var v4 = in_addr(), v6 = in6_addr()
        guard inet_pton(AF_INET, h, &v4) == 1 || inet_pton(AF_INET6, h, &v6) == 1 else {
            throw DaemonError.invalidArgument("host '\(quoted(h))' in '\(quoted(text))' must be a numeric IPv4 or [IPv6] address, or localhost")
        }
        host = h
        self.port = port
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        return host == "::1"
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
