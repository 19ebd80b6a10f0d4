// repeng-load: drives a running repengd over its socket. `decode` measures aggregate decode
// throughput with 1, 4, 8… concurrent streaming clients, `latency` the time from set-control to
// its effect, `mixed` is the load test (many clients mixing generate, set-control, vector file
// churn and cancellations while the daemon's memory is sampled).
import ArgumentParser
import Foundation
import GRPCCore
import RepengProtocol

@main
struct RepengLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repeng-load",
        abstract: "Benchmark and load-test a running repengd.",
        subcommands: [Decode.self, Latency.self, Mixed.self])
}

struct Common: ParsableArguments {
    @Option(help: "repengd's socket (default: $REPENG_SOCKET or the daemon's default).")
    var socket: String?

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    var socketPath: String { socket ?? RepengSocket.defaultPath() }
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func printJSON(_ value: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
}

let prompts = [
    "Once upon a time, in a small village by the sea,",
    "The history of the printing press begins",
    "Here is a recipe for a simple tomato soup:",
    "The three most important things about learning to program are",
    "Dear diary, today was",
    "In the year 2050, cities will",
    "The best way to spend a rainy afternoon is",
    "A short guide to growing tomatoes:",
]

/// Result of one streamed generation.
struct GenResult: Sendable {
    var text = ""
    var completionTokens = 0
    var firstChunkAt: Double?
    var decodeSeconds = 0.0
}

/// Streams one generation; stops reading after `stopAfterChunks` chunks when given.
func generate(_ client: RepengClient, _ request: Repeng_V1_GenerateRequest, stopAfterChunks: Int? = nil) async throws -> GenResult {
    try await client.generate(request) { response in
        var r = GenResult()
        var chunks = 0
        for try await ev in response.messages {
            switch ev.event {
            case .chunk(let c)?:
                if r.firstChunkAt == nil { r.firstChunkAt = now() }
                r.text += c.text
                chunks += 1
                if let n = stopAfterChunks, chunks >= n { return r }
            case .done(let d)?:
                r.completionTokens = Int(d.completionTokens)
                r.decodeSeconds = d.decodeSeconds
            case nil: break
            }
        }
        return r
    }
}

// MARK: decode

struct Decode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Aggregate decode tokens/s with N concurrent greedy streams (each on its own connection).")
    @OptionGroup var common: Common
    @Option(help: "Comma list of client counts.")
    var clients = "1,4,8"
    @Option(help: "Tokens each client generates.")
    var tokens = 64
    @Option(help: "Runs per client count (the best is reported).")
    var repeats = 2

    func run() async throws {
        let counts = clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= 256 }) else { throw ValidationError("--clients takes a comma list of 1...256") }
        let socket = common.socketPath, tokens = self.tokens
        var rows: [[String: Any]] = []
        var base: Double?
        for n in counts {
            var best: (agg: Double, wall: Double, total: Int) = (0, 0, 0)
            for _ in 0..<max(1, repeats) {
                let t0 = now()
                let results = try await withThrowingTaskGroup(of: GenResult.self) { group in
                    for i in 0..<n {
                        group.addTask {
                            try await withRepengClient(socket: socket) { client, _ in
                                try await generate(client, .with {
                                    $0.prompt = prompts[i % prompts.count]
                                    $0.maxTokens = UInt32(tokens)
                                })
                            }
                        }
                    }
                    var all: [GenResult] = []
                    for try await r in group { all.append(r) }
                    return all
                }
                let wall = now() - t0
                let total = results.reduce(0) { $0 + $1.completionTokens }
                let agg = Double(total) / wall
                if agg > best.agg { best = (agg, wall, total) }
            }
            if base == nil { base = best.agg }
            let speedup = best.agg / (base ?? best.agg)
            rows.append(["clients": n, "tokens": best.total, "wall_seconds": best.wall, "aggregate_tokens_per_second": best.agg,
                         "per_client_tokens_per_second": best.agg / Double(n), "speedup_vs_first": speedup])
            if !common.json {
                print(String(format: "clients %3d  tokens %5d  wall %6.2f s  aggregate %7.1f tok/s  per client %6.1f tok/s  ×%.2f vs %d",
                             n, best.total, best.wall, best.agg, best.agg / Double(n), speedup, counts[0]))
            }
        }
        if common.json { try printJSON(["decode": rows]) }
    }
}

// MARK: latency

struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time from SetControl to its effect: the SetControl round trip, and until the first token of the next Generate.")
    @OptionGroup var common: Common
    @Option(help: "Vector to set (must exist in the daemon's vector directory).")
    var vector: String
    @Option(help: "Coefficient (its sign alternates between samples).")
    var coefficient: Float = 8
    @Option(help: "Samples.")
    var samples = 30

    func run() async throws {
        let socket = common.socketPath, vector = self.vector, coefficient = self.coefficient, samples = self.samples
        let (rtt, effect, plain) = try await withRepengClient(socket: socket) { client, _ in
            var rtt: [Double] = [], effect: [Double] = [], plain: [Double] = []
            let request = Repeng_V1_GenerateRequest.with { $0.prompt = prompts[0]; $0.maxTokens = 1 }
            _ = try await generate(client, request)  // warm-up
            for i in 0..<samples {
                // Without a preceding SetControl: the Generate's own time to first token.
                let g0 = now()
                let g = try await generate(client, request)
                plain.append((g.firstChunkAt ?? now()) - g0)

                let t0 = now()
                _ = try await client.setControl(.with {
                    $0.control.terms = [.with { $0.vector = vector; $0.coefficient = i % 2 == 0 ? coefficient : -coefficient }]
                })
                let t1 = now()
                let r = try await generate(client, request)
                rtt.append(t1 - t0)
                effect.append((r.firstChunkAt ?? now()) - t0)
            }
            _ = try await client.reset(Repeng_V1_ResetRequest())
            return (rtt, effect, plain)
        }
        let ms = { (xs: [Double], p: Double) in percentile(xs, p) * 1000 }
        if common.json {
            try printJSON(["set_control_ms_p50": ms(rtt, 0.5), "set_control_ms_p95": ms(rtt, 0.95),
                           "set_control_to_first_token_ms_p50": ms(effect, 0.5), "set_control_to_first_token_ms_p95": ms(effect, 0.95),
                           "generate_first_token_ms_p50": ms(plain, 0.5), "samples": samples])
        } else {
            print(String(format: "SetControl round trip        p50 %7.2f ms  p95 %7.2f ms", ms(rtt, 0.5), ms(rtt, 0.95)))
            print(String(format: "SetControl → first token    p50 %7.2f ms  p95 %7.2f ms", ms(effect, 0.5), ms(effect, 0.95)))
            print(String(format: "Generate alone → first token p50 %7.2f ms  p95 %7.2f ms", ms(plain, 0.5), ms(plain, 0.95)))
        }
    }
}

// MARK: mixed

/// Outcome counts per action, shared by the client tasks.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: [String: Int]] = [:]
    private var examples: [String: String] = [:]

    func record(_ action: String, _ outcome: String, message: String = "") {
        lock.withLock {
            counts[action, default: [:]][outcome, default: 0] += 1
            if !message.isEmpty, examples[action + " " + outcome] == nil { examples[action + " " + outcome] = message }
        }
    }

    var snapshot: ([String: [String: Int]], [String: String]) { lock.withLock { (counts, examples) } }
}

/// The daemon's resident memory in KiB, from /proc.
func residentKiB(pid: Int32) -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

struct Mixed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load test: clients mixing generate (some cancelled), set-control/reset, vector file churn and queries.",
        discussion: """
            Expected outcomes are OK, CANCELLED (the test's own cancellations), RESOURCE_EXHAUSTED \
            (queue limit), NOT_FOUND / FAILED_PRECONDITION for the churned vector files (deleted \
            or never valid). Anything else counts as an error; the exit status is 1 when one \
            happened or the daemon died.
            """)
    @OptionGroup var common: Common
    @Option(help: "Concurrent clients.")
    var clients = 32
    @Option(help: "Seconds to run.")
    var duration: Double = 120
    @Option(help: "An existing, valid vector: used for control and copied to make churn files.")
    var vector: String
    @Option(help: "Seconds between memory samples.")
    var sampleEvery: Double = 2

    func run() async throws {
        let socket = common.socketPath, vector = self.vector, clients = self.clients, duration = self.duration
        let status = try await withRepengClient(socket: socket) { c, _ in try await c.status(Repeng_V1_StatusRequest()) }
        let pid = status.pid, dir = status.vectorsDir
        let sourcePath = dir + "/" + vector + ".gguf"
        guard let source = FileManager.default.contents(atPath: sourcePath) else {
            throw ValidationError("cannot read \(sourcePath): train or copy the vector '\(vector)' first")
        }
        let tally = Tally()
        let start = now(), end = start + duration
        let expected: Set<String> = ["ok", "cancelled", "resourceExhausted", "notFound", "failedPrecondition"]
        var rss: [(Double, Int)] = []
        if let r = residentKiB(pid: pid) { rss.append((0, r)) }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                group.addTask {
                    try await withRepengClient(socket: socket) { client, _ in
                        var rng = SystemRandomNumberGenerator()
                        while now() < end {
                            let roll = Int.random(in: 0..<100, using: &rng)
                            let action: String
                            do {
                                if roll < 55 {
                                    let cancel = Int.random(in: 0..<100, using: &rng) < 15
                                    action = cancel ? "generate-cancelled" : "generate"
                                    var request = Repeng_V1_GenerateRequest.with {
                                        $0.prompt = prompts[Int.random(in: 0..<prompts.count, using: &rng)]
                                        $0.maxTokens = UInt32.random(in: 4...32, using: &rng)
                                        if Bool.random(using: &rng) {
                                            $0.sampling.temperature = 0.8
                                            $0.sampling.seed = UInt64.random(in: 0...1000, using: &rng)
                                        }
                                    }
                                    let churn = Int.random(in: 0..<10, using: &rng) == 0
                                    if Bool.random(using: &rng) {
                                        request.control.terms = [.with {
                                            $0.vector = churn ? "churn-\(c % 4)" : vector
                                            $0.coefficient = Float.random(in: -8...8, using: &rng)
                                        }]
                                    }
                                    _ = try await generate(client, request, stopAfterChunks: cancel ? 2 : nil)
                                } else if roll < 70 {
                                    if Bool.random(using: &rng) {
                                        action = "set-control"
                                        _ = try await client.setControl(.with {
                                            $0.control.terms = [.with { $0.vector = vector; $0.coefficient = Float.random(in: -8...8, using: &rng) }]
                                        })
                                    } else {
                                        action = "reset"
                                        _ = try await client.reset(Repeng_V1_ResetRequest())
                                    }
                                } else if roll < 85 {
                                    action = "file-churn"
                                    try churnFile(dir: dir, name: "churn-\(Int.random(in: 0..<4, using: &rng))", source: source, rng: &rng)
                                } else {
                                    switch Int.random(in: 0..<3, using: &rng) {
                                    case 0: action = "list-vectors"; _ = try await client.listVectors(Repeng_V1_ListVectorsRequest())
                                    case 1: action = "status"; _ = try await client.status(Repeng_V1_StatusRequest())
                                    default: action = "tokenize"; _ = try await client.tokenize(.with { $0.text = prompts[c % prompts.count] })
                                    }
                                }
                                tally.record(action, "ok")
                            } catch let e as RPCError {
                                tally.record(roll < 55 ? "generate" : roll < 70 ? "control" : "query", "\(e.code)", message: e.message)
                            }
                        }
                    }
                }
            }
            group.addTask {
                while now() < end {
                    try await Task.sleep(for: .milliseconds(Int(sampleEvery * 1000)))
                    if residentKiB(pid: pid) == nil { return }
                }
            }
            // Memory samples on this task.
            while now() < end {
                try await Task.sleep(for: .milliseconds(Int(sampleEvery * 1000)))
                if let r = residentKiB(pid: pid) { rss.append((now() - start, r)) }
            }
            try await group.waitForAll()
        }
        for i in 0..<4 { unlink(dir + "/churn-\(i).gguf") }
        let alive = kill(pid, 0) == 0
        let (counts, examples) = tally.snapshot
        var unexpected = 0
        for (_, outcomes) in counts { for (o, n) in outcomes where !expected.contains(o) { unexpected += n } }
        let total = counts.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        // Memory: after warm-up (first fifth) versus the end.
        let warm = rss.first { $0.0 >= duration / 5 }?.1 ?? rss.first?.1 ?? 0
        let last = rss.last?.1 ?? 0, peak = rss.map(\.1).max() ?? 0
        if common.json {
            try printJSON(["clients": clients, "seconds": now() - start, "requests": total, "outcomes": counts,
                           "unexpected": unexpected, "daemon_alive": alive, "rss_kib_after_warmup": warm, "rss_kib_end": last,
                           "rss_kib_peak": peak, "rss_samples": rss.map { [$0.0, Double($0.1)] }, "examples": examples])
        } else {
            print(String(format: "%d clients, %.0f s, %d requests (%.1f/s)", clients, now() - start, total, Double(total) / (now() - start)))
            for (action, outcomes) in counts.sorted(by: { $0.key < $1.key }) {
                print("  \(action): " + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
            for (k, m) in examples.sorted(by: { $0.key < $1.key }) { print("  e.g. \(k): \(m)") }
            print("daemon RSS: \(warm / 1024) MiB after warm-up, \(last / 1024) MiB at the end, peak \(peak / 1024) MiB; alive: \(alive)")
            print("unexpected outcomes: \(unexpected)")
        }
        if unexpected > 0 || !alive { throw ExitCode(1) }
    }
}

/// One change to a churn vector file: an atomic replace with a valid copy, a delete, an
/// invalid file, or a slow in-place write.
func churnFile(dir: String, name: String, source: Data, rng: inout SystemRandomNumberGenerator) throws {
    let path = dir + "/" + name + ".gguf"
    switch Int.random(in: 0..<4, using: &rng) {
    case 0:
        let tmp = dir + "/." + name + ".tmp-\(UInt32.random(in: 0...UInt32.max, using: &rng))"
        try source.write(to: URL(fileURLWithPath: tmp))
        rename(tmp, path)
    case 1:
        unlink(path)
    case 2:
        try Data("not a vector".utf8).write(to: URL(fileURLWithPath: path))
    default:
        // In place, in two halves (a reader may see the first half: it must never be used).
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        source.withUnsafeBytes { buf in
            let half = buf.count / 2
            _ = write(fd, buf.baseAddress!, half)
            usleep(2000)
            _ = write(fd, buf.baseAddress! + half, buf.count - half)
        }
    }
}
