// repengd: serves resident models, control vectors and batched generation over gRPC on a
// Unix domain socket (see docs/protocol.md).
import ArgumentParser
import Dispatch
import Foundation
import Logging
import RepengDaemon
import RepengEngine

@main
struct Repengd: AsyncParsableCommand {
    static func main() async {
        // OpenBLAS picks its kernels when it loads: restart with the right ones for this CPU
        // first (same pid, same descriptors, so socket activation survives it).
        BLAS.reexecWithFasterKernelsIfNeeded()
        do {
            var command = try parseAsRoot()
            if var c = command as? any AsyncParsableCommand { try await c.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "repengd",
        abstract: "Serve control-vector steering and generation over a Unix socket.",
        discussion: """
            With no flags and no config it serves the bundled SmolLM2 model from .cache/models \
            (or $REPENG_CACHE/models, or /usr/share/repengd/models) on \
            $XDG_RUNTIME_DIR/repengd/repengd.sock (fallback /tmp/repengd-$UID/repengd.sock), with \
            vectors in $XDG_STATE_HOME/repengd/vectors (fallback ~/.local/state/repengd/vectors).
            Flags override the config file.
            """,
        version: Daemon.version)

    @Option(help: "Unix socket path to listen on.")
    var socket: String?

    @Option(help: "Directory of vector files (NAME.gguf / NAME.json).")
    var vectors: String?

    @Option(help: "Directory for the daemon's state (control.json).")
    var state: String?

    @Option(help: "Directory of SAE folders that training may read (default: STATE/saes).")
    var saes: String?

    @Option(help: "Model weights: native (their file encodings, the default) or exact (f32), for models the config gives none.")
    var precision: String?

    @Option(name: .customLong("model"), help: "NAME=PATH of a GGUF model; repeat for more (the first is the default).")
    var models: [String] = []

    @Option(help: "BLAS threads (default: one per core).")
    var threads: Int?

    @Option(help: "Group (name or number) for the socket (0660) and its directory (0750) when repengd creates them.")
    var socketGroup: String?

    @Option(name: .customLong("allow-uid"), help: "Only this uid (and repengd's own) may call; repeat for more.")
    var allowUids: [UInt32] = []

    @Option(help: "Also serve the HTTP API on this loopback TCP address (HOST:PORT, e.g. 127.0.0.1:8080; port 0 picks one); requests need the bearer token.")
    var httpListen: String?

    @Option(help: "TOML config file (same settings, plus [limits]).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "repengd")
        var p: WeightPrecision?
        if let precision {
            guard let v = WeightPrecision(rawValue: precision) else { throw ValidationError("--precision must be native or exact") }
            p = v
        }
        let cfg: DaemonConfig
        do {
            cfg = try DaemonConfig.resolve(socket: socket, vectors: vectors, state: state, modelFlags: models,
                                           threads: threads, socketGroup: socketGroup, allowedUids: allowUids,
                                           saes: saes, precision: p, httpListen: httpListen, configFile: config)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(2)
        }
        let daemon: Daemon
        let notifier = SystemdNotifier()
        do {
            daemon = try await Daemon.start(config: cfg, logger: logger, notifier: notifier)
        } catch {
            logger.critical("\(error)")
            notifier.status("failed: \(error)")
            throw ExitCode(1)
        }
        // SIGTERM / SIGINT: graceful shutdown.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { daemon.shutdown() }
            src.resume()
            sources.append(src)
        }
        try await daemon.wait()
        for s in sources { s.cancel() }
    }
}
