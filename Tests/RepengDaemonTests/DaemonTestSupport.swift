// Shared set-up for the daemon tests: the bundled model, a trained vector, temp directories,
// starting a daemon in-process with Daemon.start (as repengd's main does) and log capture.
import Foundation
import GRPCCore
import Logging
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

enum DaemonFixtures {
    static let modelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The repository root (the folder holding Package.swift above this file).
    static var repoRoot: URL {
        var d = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: d.appendingPathComponent("Package.swift").path) { return d }
            d = d.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// The bundled SmolLM2 file, or a skip when it has not been fetched (scripts/bootstrap.sh).
    static func modelPath() throws -> String {
        var dirs: [String] = []
        if let c = ProcessInfo.processInfo.environment["REPENG_CACHE"] { dirs.append(c + "/models") }
        dirs.append(repoRoot.appendingPathComponent(".cache/models").path)
        for d in dirs where FileManager.default.fileExists(atPath: d + "/" + modelFile) { return d + "/" + modelFile }
        throw XCTSkip("\(modelFile) not found; run scripts/bootstrap.sh")
    }

    /// The model, loaded once.
    nonisolated(unsafe) private static var cachedModel: (any LanguageModel)?
    private static let lock = NSLock()
    static func model() throws -> any LanguageModel {
        try lock.withLock {
            if let m = cachedModel { return m }
            let m = try loadModel(path: try modelPath())
            cachedModel = m
            return m
        }
    }

    /// A small happy/sad dataset in the model's chat format.
    static func dataset() throws -> [DatasetEntry] {
        try makeChatDataset(template: "Act as if you're extremely {persona}.",
                            positivePersonas: ["happy", "joyful"], negativePersonas: ["sad", "depressed"],
                            suffixes: Array(defaultSuffixes.prefix(12)), format: .chatML)
    }

    /// A happy/sad vector trained once with the library, as GGUF bytes.
    nonisolated(unsafe) private static var cachedVector: [UInt8]?
    static func happyVectorBytes() throws -> [UInt8] {
        let m = try model()
        return try lock.withLock {
            if let v = cachedVector { return v }
            let v = try ControlVector.train(model: m, dataset: try dataset(), method: .pcaCenter).ggufBytes()
            cachedVector = v
            return v
        }
    }

    /// One user message laid out by SmolLM2's own chat template, as the daemon lays out chat input
    /// (the template adds its default system prompt).
    static func templateChat(_ instruction: String) throws -> String {
        let source = try XCTUnwrap(try model().tokenizer?.chatTemplate)
        return try ChatTemplate(source: source).render(messages: [ChatMessage(role: "user", content: instruction)],
                                                       addGenerationPrompt: true)
    }

    static var chatPrompt: String { get throws { try templateChat("What are you doing this weekend?") } }
}

/// Temp directories for one daemon (removed by `remove()`).
struct TempDirs {
    let root: String
    var socket: String { root + "/d.sock" }
    var vectors: String { root + "/vectors" }
    var state: String { root + "/state" }

    init() throws {
        root = "/tmp/repengd-test-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: root + "/vectors", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    func config(limits: DaemonLimits = DaemonLimits()) throws -> DaemonConfig {
        DaemonConfig(socketPath: socket, vectorsDir: vectors, stateDir: state,
                     models: [ModelSpec(name: "smollm2", path: try DaemonFixtures.modelPath())], limits: limits)
    }

    func installHappyVector(as name: String = "happy") throws {
        try Data(try DaemonFixtures.happyVectorBytes()).write(to: URL(fileURLWithPath: vectors + "/" + name + ".gguf"))
    }
}

/// Collects log lines.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    var lines: [String] { lock.withLock { storage } }
    func append(_ s: String) { lock.withLock { storage.append(s) } }

    var logger: Logger {
        Logger(label: "repengd-test") { _ in CaptureHandler(capture: self) }
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.append("\(event.level) \(event.message)")
        }
    }
}

/// Starts a daemon with `Daemon.start`, runs `body`, then shuts it down and waits for it.
func withDaemon<T: Sendable>(_ config: DaemonConfig, logs: LogCapture = LogCapture(),
                             _ body: (Daemon) async throws -> T) async throws -> T {
    let daemon = try await Daemon.start(config: config, logger: logs.logger)
    do {
        let r = try await body(daemon)
        daemon.shutdown()
        try await daemon.wait()
        return r
    } catch {
        daemon.shutdown()
        try? await daemon.wait()
        throw error
    }
}

/// The text of one streamed generation.
func generateText(_ client: RepengClient, _ request: Repeng_V1_GenerateRequest) async throws -> (String, Repeng_V1_GenerateDone) {
    try await client.generate(request) { response in
        var text = ""
        var done = Repeng_V1_GenerateDone()
        for try await ev in response.messages {
            switch ev.event {
            case .chunk(let c)?: text += c.text
            case .done(let d)?: done = d
            case nil: break
            }
        }
        return (text, done)
    }
}

/// A chat request for `DaemonFixtures.chatPrompt`'s question.
func chatRequest(maxTokens: UInt32 = 24, control: Repeng_V1_Control? = nil) -> Repeng_V1_GenerateRequest {
    .with {
        $0.chat = .with { $0.messages = [.with { $0.role = "user"; $0.content = "What are you doing this weekend?" }] }
        $0.maxTokens = maxTokens
        if let control { $0.control = control }
    }
}

func control(_ terms: [(String, Float)], layers: [Int32] = [], normalize: Bool = false) -> Repeng_V1_Control {
    .with {
        $0.terms = terms.map { t in .with { $0.vector = t.0; $0.coefficient = t.1 } }
        $0.layers = layers
        $0.normalize = normalize
    }
}

/// Asserts that `body` fails with the RPC status `code`.
func assertRPCError(_ code: RPCError.Code, containing needle: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                    _ body: () async throws -> Void) async {
    do {
        try await body()
        XCTFail("expected \(code), got success", file: file, line: line)
    } catch let e as RPCError {
        XCTAssertEqual(e.code, code, "message: \(e.message)", file: file, line: line)
        XCTAssertFalse(e.message.isEmpty, file: file, line: line)
        if let needle { XCTAssertTrue(e.message.contains(needle), "message: \(e.message)", file: file, line: line) }
    } catch {
        XCTFail("expected RPCError \(code), got \(error)", file: file, line: line)
    }
}

/// Result of one child process run.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs an executable off the cooperative pool (an in-process daemon needs those threads) with
/// the test's environment plus `env` (an empty value removes a variable).
func runProcess(_ path: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil) async throws -> CLIResult {
    try await withCheckedThrowingContinuation { cont in
        DispatchQueue.global().async {
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = args
                var environment = ProcessInfo.processInfo.environment
                for (k, v) in env { environment[k] = v.isEmpty ? nil : v }
                p.environment = environment
                if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                try p.run()
                // Read stderr on another thread so neither pipe can fill up and block the child.
                final class Box: @unchecked Sendable { var data = Data() }
                let e = Box()
                let errDone = DispatchSemaphore(value: 0)
                DispatchQueue.global().async {
                    e.data = err.fileHandleForReading.readDataToEndOfFile()
                    errDone.signal()
                }
                let o = out.fileHandleForReading.readDataToEndOfFile()
                errDone.wait()
                p.waitUntilExit()
                cont.resume(returning: CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                                 stderr: String(decoding: e.data, as: UTF8.self)))
            } catch {
                cont.resume(throwing: error)
            }
        }
    }
}

extension DaemonFixtures {
    /// An executable built next to the test bundle (repengd, repengctl), or a skip.
    static func executable(_ name: String) throws -> String {
        var candidates: [URL] = []
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var d = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(d.appendingPathComponent(name))
            d = d.deletingLastPathComponent()
        }
        candidates.append(Bundle.main.bundleURL.appendingPathComponent(name))
        for c in candidates where FileManager.default.isExecutableFile(atPath: c.path) { return c.path }
        throw XCTSkip("\(name) binary not found next to \(exe.path); build it with swift build --product \(name)")
    }
}

/// The real repengd binary run as a child process (stderr kept in a file).
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    /// Starts `executable` (default: repengd) with `args`; `env` is added to the test's environment
    /// (an empty value removes a variable).
    init(_ args: [String], env: [String: String] = [:], executable: String? = nil, logPath: String) throws {
        self.logPath = logPath
        process.executableURL = URL(fileURLWithPath: try executable ?? DaemonFixtures.executable("repengd"))
        process.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v.isEmpty ? nil : v }
        process.environment = environment
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the exit (at most `seconds`); returns the status, nil on timeout.
    func waitForExit(_ seconds: Double = 30) async -> Int32? {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < end { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Waits until the daemon answers Status on `socket` (at most `seconds`).
    func waitUntilServing(_ socket: String, _ seconds: Double = 120) async throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            guard process.isRunning else { throw DaemonProcessError.exited(log) }
            var st = stat()
            if stat(socket, &st) == 0,
               (try? await withRepengClient(socket: socket, { c, _ in
                   try await c.status(Repeng_V1_StatusRequest(), options: { var o = CallOptions.defaults; o.timeout = .seconds(2); return o }())
               })) != nil {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw DaemonProcessError.timeout(log)
    }
}

enum DaemonProcessError: Error {
    case exited(String)
    case timeout(String)
}
