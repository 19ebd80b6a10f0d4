// Hostile clients against the real daemon over its Unix socket: oversized training data, many
// streams, clients that never read, deadline storms, long prompts, descriptor exhaustion,
// oversized and forged values. Every loop is bounded in count and time; each test also checks
// that other clients keep being served and that memory stays flat.
import Foundation
import GRPCCore
import RepengDaemon
import RepengEngine
import RepengProtocol
import XCTest

/// Resident and peak memory of this process (the in-process daemon included), in MiB.
enum Memory {
    static func status(_ key: String) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
    static var residentMiB: Double { status("VmRSS") }
    static var peakMiB: Double { status("VmHWM") }
    /// Starts a new peak measurement (VmHWM back to the current RSS; see proc(5), clear_refs).
    static func resetPeak() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }
}

/// CPU seconds used by this process so far.
func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// What the misbehaving client printed (a JSON object).
struct H2Report: @unchecked Sendable {
    let raw: [String: Any]
    subscript(key: String) -> Any? { raw[key] }
}

/// The misbehaving HTTP/2 client (scripts/abuse/h2_abuse.py) run with Debian's python3.
func h2Abuse(_ socket: String, _ args: [String]) async throws -> H2Report {
    let python = "/usr/bin/python3"
    let script = DaemonFixtures.repoRoot.appendingPathComponent("scripts/abuse/h2_abuse.py").path
    let probe = try await runProcess(python, ["-c", "import h2"])
    guard probe.status == 0 else { throw XCTSkip("python3-h2 is not installed (scripts/bootstrap.sh installs it)") }
    let r = try await runProcess(python, [script, "--socket", socket] + args)
    guard r.status == 0, let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
        throw NSError(domain: "h2_abuse", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr + r.stdout])
    }
    return H2Report(raw: obj)
}

/// Call options with a deadline.
func quick(_ seconds: Int64 = 30) -> CallOptions {
    var o = CallOptions.defaults
    o.timeout = .seconds(seconds)
    return o
}

/// A short raw-prompt generation.
func smallRequest(_ prompt: String = "The capital of France is", maxTokens: UInt32 = 8) -> Repeng_V1_GenerateRequest {
    .with { $0.prompt = prompt; $0.maxTokens = maxTokens }
}

final class AbuseTests: XCTestCase {
    /// Two pairs of 1 MB texts: refused while encoding, before memory in proportion to their
    /// tokens is taken (this got the daemon OOM-killed at ~24 GB).
    func testHugeTrainingTextsAreRefusedBeforeAllocating() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        _ = try DaemonFixtures.model()
        try await withDaemon(try dirs.config()) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let big = String(repeating: "I am so happy today. ", count: 50_000)  // 1.05 MB
                let request = Repeng_V1_TrainRequest.with {
                    $0.name = "huge"
                    $0.dataset = [
                        .with { $0.positive = big; $0.negative = big + " sad" },
                        .with { $0.positive = big + " joy"; $0.negative = big + " grief" },
                    ]
                }
                let rss0 = Memory.residentMiB
                Memory.resetPeak()
                let t0 = monotonicSeconds()
                do {
                    try await client.train(request, options: quick(120)) { response in
                        for try await _ in response.messages {}
                    }
                    XCTFail("a 1 MB training text was accepted")
                } catch let e as RPCError {
                    XCTAssertEqual(e.code, .invalidArgument, e.message)
                    XCTAssertTrue(e.message.contains("tokens; the limit is 4096"), e.message)
                }
                let grew = Memory.peakMiB - rss0
                print("huge training texts: refused in \(String(format: "%.2f", monotonicSeconds() - t0)) s, peak RSS +\(Int(grew)) MiB")
                XCTAssertLessThan(grew, 400, "memory grew by \(grew) MiB before the texts were refused")
                XCTAssertFalse(FileManager.default.fileExists(atPath: dirs.vectors + "/huge.gguf"))

                // Others are still served.
                let (text, done) = try await generateText(client, smallRequest())
                XCTAssertFalse(text.isEmpty)
                XCTAssertEqual(done.completionTokens, 8)
            }
        }
    }

    /// The dataset's total token bound is RESOURCE_EXHAUSTED.
    func testTrainingTokenTotalIsBounded() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxTrainingTokens = 300
        try await withDaemon(try dirs.config(limits: limits)) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let pairs = (0..<40).map { i in
                    Repeng_V1_DatasetEntry.with { $0.positive = "I feel great, number \(i)"; $0.negative = "I feel awful, number \(i)" }
                }
                await assertRPCError(.resourceExhausted) {
                    try await client.train(.with { $0.name = "many"; $0.dataset = pairs }, options: quick(60)) { r in
                        for try await _ in r.messages {}
                    }
                }
            }
        }
    }

    /// 101 calls at once on one connection: the limit on concurrent streams is advertised, so
    /// the client queues past it and every call is served; the connection survives.
    func testManyStreamsOnOneConnection() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxQueue = 128
        try await withDaemon(try dirs.config(limits: limits)) { _ in
            let codes = try await withRepengClient(socket: dirs.socket) { client, _ in
                try await withThrowingTaskGroup(of: String.self) { group in
                    for i in 0..<101 {
                        group.addTask {
                            do {
                                let (_, done) = try await generateText(client, smallRequest("Number \(i) is", maxTokens: 2))
                                return done.completionTokens == 2 ? "ok" : "short"
                            } catch let e as RPCError {
                                return "\(e.code)"
                            }
                        }
                    }
                    var out: [String: Int] = [:]
                    for try await c in group { out[c, default: 0] += 1 }
                    return out
                }
            }
            print("101 streams on one connection: \(codes)")
            XCTAssertEqual(codes["ok"], 101, "\(codes)")

            // A raw HTTP/2 client sees the advertised limit and gets every stream it opens served.
            let r = try await h2Abuse(dirs.socket, ["streams", "--count", "101", "--hold", "60"])
            XCTAssertEqual(r["peer_max_concurrent_streams"] as? Int, limits.maxConcurrentStreams)
            XCTAssertTrue(r["goaway"] is NSNull, "\(r["goaway"] ?? "")")
            let streams = r["streams"] as? [[String: Any]] ?? []
            XCTAssertEqual(streams.count, limits.maxConcurrentStreams)
            XCTAssertEqual(streams.filter { ($0["status"] as? Int) == 0 }.count, streams.count)
        }
    }

    /// Eight streams with a flow-control window of 0 that never read: they hold at most
    /// `max_buffered_pieces` pieces each, leave their batch slots, cost no CPU while parked,
    /// and are reset after `slow_reader_seconds`; a normal request meanwhile is served at once.
    func testClientsThatNeverReadDoNotStarveOthers() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.slowReaderSeconds = 8
        limits.maxBufferedPieces = 4
        try await withDaemon(try dirs.config(limits: limits)) { daemon in
            let scheduler = daemon.registry.hosts[0].scheduler
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let t0 = monotonicSeconds()
                _ = try await generateText(client, smallRequest())
                let alone = monotonicSeconds() - t0
                let rss0 = Memory.residentMiB

                let attack = Task { try await h2Abuse(dirs.socket, ["window0", "--streams", "8", "--max-tokens", "2048", "--hold", "16"]) }
                // All eight park once their backlog is full (a piece in the transport plus 4 here).
                let end = Date().addingTimeInterval(7)
                while scheduler.parked < 8 && Date() < end { try await Task.sleep(for: .milliseconds(20)) }
                XCTAssertEqual(scheduler.parked, 8, "the window-0 streams did not park (active \(scheduler.load.active))")

                // Parked sequences cost no CPU.
                let cpu0 = processCPUSeconds()
                try await Task.sleep(for: .milliseconds(500))
                let cpu = processCPUSeconds() - cpu0
                print("8 parked readers: \(String(format: "%.3f", cpu)) CPU s in 0.5 s")
                XCTAssertLessThan(cpu, 0.15, "the daemon spins while every sequence is parked")

                // A normal request is served as if alone.
                let t1 = monotonicSeconds()
                let (text, done) = try await generateText(client, smallRequest())
                let during = monotonicSeconds() - t1
                print("normal request: \(String(format: "%.2f", alone)) s alone, \(String(format: "%.2f", during)) s beside 8 parked readers")
                XCTAssertEqual(done.completionTokens, 8)
                XCTAssertFalse(text.isEmpty)
                XCTAssertLessThan(during, alone + 1.0)

                // After slow_reader_seconds the streams are reset; nothing stays parked.
                let r = try await attack.value
                let streams = r["streams"] as? [[String: Any]] ?? []
                XCTAssertEqual(streams.count, 8)
                for s in streams {
                    XCTAssertTrue(!(s["reset"] is NSNull) || (s["status"] as? Int) == 8, "stream not stopped: \(s)")
                }
                let gone = Date().addingTimeInterval(4)
                while scheduler.load.active > 0 && Date() < gone { try await Task.sleep(for: .milliseconds(20)) }
                XCTAssertEqual(scheduler.load.active, 0)
                let grew = Memory.residentMiB - rss0
                print("window-0 attack: RSS +\(Int(grew)) MiB")
                XCTAssertLessThan(grew, 100)
                _ = try await generateText(client, smallRequest())
            }
        }
    }

    /// 200 calls with 1 ms deadlines behind a full batch leave the queue at once: normal
    /// requests after them are all accepted.
    func testDeadlineStormLeavesNothingQueued() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxQueue = 16
        limits.maxBatch = 2
        try await withDaemon(try dirs.config(limits: limits)) { daemon in
            let scheduler = daemon.registry.hosts[0].scheduler
            try await withRepengClient(socket: dirs.socket) { client, _ in
                // Two long generations keep the batch full.
                let busy = (0..<2).map { i in
                    Task { try await generateText(client, smallRequest("Count: 1, 2, 3, \(i),", maxTokens: 120)) }
                }
                let busyLimit = Date().addingTimeInterval(60)
                while scheduler.load.active < 2 && Date() < busyLimit { try await Task.sleep(for: .milliseconds(10)) }
                var expired = 0
                for i in 0..<200 {
                    var o = CallOptions.defaults
                    o.timeout = .milliseconds(1)
                    do { _ = try await client.generate(smallRequest("Storm \(i)"), options: o) { r in for try await _ in r.messages {} } } catch let e as RPCError {
                        if e.code == .deadlineExceeded || e.code == .cancelled { expired += 1 }
                    }
                }
                XCTAssertEqual(expired, 200)
                let end = Date().addingTimeInterval(2)
                while scheduler.load.queued > 0 && Date() < end { try await Task.sleep(for: .milliseconds(10)) }
                XCTAssertEqual(scheduler.load.queued, 0, "expired requests stayed queued")
                // Ten normal requests are all accepted (queued behind the busy ones, then served).
                let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for i in 0..<10 {
                        group.addTask {
                            do {
                                _ = try await generateText(client, smallRequest("After \(i)", maxTokens: 2))
                                return true
                            } catch { return false }
                        }
                    }
                    var ok = 0
                    for try await r in group where r { ok += 1 }
                    return ok
                }
                XCTAssertEqual(results, 10)
                for t in busy { _ = try await t.value }
            }
        }
    }

    /// While a 2,000-token prompt prefills, an 8-token request is served about as fast as alone
    /// (prefill runs in chunks between decode steps: it waits for at most about one chunk), and
    /// the long prompt's text is the same as when it runs alone.
    func testLongPromptDoesNotBlockShortRequest() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try await withDaemon(try dirs.config()) { daemon in
            let scheduler = daemon.registry.hosts[0].scheduler
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let long = smallRequest(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 200), maxTokens: 4)
                let t0 = monotonicSeconds()
                let (soloLong, soloDone) = try await generateText(client, long)
                let longAlone = monotonicSeconds() - t0
                XCTAssertGreaterThan(soloDone.promptTokens, 1900)
                let t1 = monotonicSeconds()
                let (soloShort, _) = try await generateText(client, smallRequest())
                let shortAlone = monotonicSeconds() - t1

                let longTask = Task { try await generateText(client, long) }
                let startLimit = Date().addingTimeInterval(60)
                while scheduler.load.active == 0 && Date() < startLimit { try await Task.sleep(for: .milliseconds(5)) }
                try await Task.sleep(for: .milliseconds(200))
                let t2 = monotonicSeconds()
                let (short, _) = try await generateText(client, smallRequest())
                let shortDuring = monotonicSeconds() - t2
                let (longText, _) = try await longTask.value
                print("long prompt \(soloDone.promptTokens) tokens: \(String(format: "%.2f", longAlone)) s alone; short request \(String(format: "%.3f", shortAlone)) s alone, \(String(format: "%.3f", shortDuring)) s during the long prefill")
                XCTAssertEqual(short, soloShort)
                XCTAssertEqual(longText, soloLong)
                // Without chunks it would wait for the whole long prefill. The bound scales with the
                // machine's speed (a loaded machine slows the long prefill alone as much): a tenth of
                // the long prefill, and at most a few seconds more than the short request alone.
                XCTAssertLessThan(shortDuring, longAlone / 10 + shortAlone, "the short request waited for the long prefill")
                XCTAssertLessThan(shortDuring, shortAlone + 5.0, "the short request waited for the long prefill")
            }
        }
    }

    /// A request over max_request_bytes gets RESOURCE_EXHAUSTED (not a reset stream), read no
    /// further than its length prefix; the connection and other calls go on.
    func testOversizedRequestIsResourceExhausted() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxRequestBytes = 1 << 20
        try await withDaemon(try dirs.config(limits: limits)) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                await assertRPCError(.resourceExhausted) {
                    _ = try await generateText(client, smallRequest(String(repeating: "x", count: 2 << 20)))
                }
                let (text, _) = try await generateText(client, smallRequest())
                XCTAssertFalse(text.isEmpty)
            }
            let r = try await h2Abuse(dirs.socket, ["oversize", "--bytes", "\(17 << 20)"])
            let s = try XCTUnwrap((r["streams"] as? [[String: Any]])?.first)
            XCTAssertEqual(s["status"] as? Int, 8, "\(s)")
            XCTAssertTrue((s["message"] as? String ?? "").contains("max_request_bytes"), "\(s)")
        }
    }

    /// Temperatures too small to divide by are greedy.
    func testTinyTemperatureIsGreedy() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try await withDaemon(try dirs.config()) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let (greedy, _) = try await generateText(client, smallRequest(maxTokens: 12))
                for (t, k) in [(Float(1e-45), UInt32(0)), (1e-45, 1), (1e-7, 0), (Float.leastNormalMagnitude, 0)] {
                    var r = smallRequest(maxTokens: 12)
                    r.sampling = .with { $0.temperature = t; if k > 0 { $0.topK = k }; $0.seed = 7 }
                    let (text, _) = try await generateText(client, r)
                    XCTAssertEqual(text, greedy, "temperature \(t), top-k \(k)")
                }
            }
        }
    }

    /// Past max_connections a connection's calls are refused one by one with a clear message;
    /// idle connections are closed after connection_idle_seconds; the daemon then serves again.
    func testConnectionLimitAndIdleTimeout() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxConnections = 6
        limits.connectionIdleSeconds = 2
        try await withDaemon(try dirs.config(limits: limits)) { _ in
            // Hold six idle connections that have said hello (HTTP/2 preface + SETTINGS).
            var held: [Int32] = []
            for _ in 0..<6 { held.append(try rawConnect(dirs.socket, preface: true)) }
            defer { for fd in held { close(fd) } }
            try await Task.sleep(for: .milliseconds(200))
            do {
                _ = try await withRepengClient(socket: dirs.socket) { client, _ in
                    try await client.status(Repeng_V1_StatusRequest(), options: quick(5))
                }
                XCTFail("a seventh connection was served")
            } catch let e as RPCError {
                XCTAssertEqual(e.code, .resourceExhausted, e.message)
                XCTAssertTrue(e.message.contains("at most 6 connections"), e.message)
            }
            // The idle ones are closed by the daemon within the idle time (plus slack).
            let end = Date().addingTimeInterval(6)
            var closed = 0
            while closed < held.count && Date() < end {
                closed = held.filter { isClosedByPeer($0) }.count
                try await Task.sleep(for: .milliseconds(100))
            }
            XCTAssertEqual(closed, held.count, "idle connections were not closed")
            let s = try await withRepengClient(socket: dirs.socket) { client, _ in
                try await client.status(Repeng_V1_StatusRequest(), options: quick(5))
            }
            XCTAssertEqual(s.modelCount, 1)
        }
    }

    /// Bad values are quoted at most ~200 characters long and escaped in status messages and
    /// logs; cancelled streams are logged as cancelled.
    func testBadValuesAreQuotedShortAndEscaped() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let logs = LogCapture()
        try await withDaemon(try dirs.config(), logs: logs) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let long = String(repeating: "x", count: 10_000)
                do {
                    _ = try await client.setControl(.with { $0.control = control([(long, 1)]) }, options: quick())
                    XCTFail("accepted")
                } catch let e as RPCError {
                    XCTAssertEqual(e.code, .invalidArgument, e.message)
                    XCTAssertLessThan(e.message.count, 400, e.message)
                    XCTAssertTrue(e.message.contains("more characters"), e.message)
                }
                let forged = "evil\n2026-01-01 info repengd: forged line\u{1b}[31m"
                await assertRPCError(.invalidArgument) {
                    _ = try await client.setControl(.with { $0.control = control([(forged, 1)]) }, options: quick())
                }
                // A stream the client cancels.
                do {
                    _ = try await client.generate(smallRequest(maxTokens: 200)) { r in
                        for try await _ in r.messages { throw CancellationError() }
                    }
                } catch {}
                try await Task.sleep(for: .milliseconds(300))
            }
        }
        let lines = logs.lines
        XCTAssertFalse(lines.contains { $0.contains("forged line") && !$0.contains("\\n") }, "a forged log line got through")
        XCTAssertFalse(lines.contains { $0.contains("\u{1b}") }, "an escape byte was logged raw")
        XCTAssertTrue(lines.contains { $0.contains("Generate") && $0.contains("status=cancelled") }, lines.joined(separator: "\n"))
        XCTAssertFalse(lines.contains { $0.contains("I/O on closed channel") }, lines.joined(separator: "\n"))
    }
}

/// A raw connection to a Unix socket; with `preface`, the HTTP/2 client preface and an empty
/// SETTINGS frame are sent.
func rawConnect(_ path: String, preface: Bool) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { buf in
        let bytes = Array(path.utf8.prefix(buf.count - 1))
        buf.copyBytes(from: bytes)
        buf[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    if preface {
        let hello = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        _ = hello.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
    return fd
}

/// Whether the peer closed `fd` (reads what is waiting without blocking; EOF means closed).
func isClosedByPeer(_ fd: Int32) -> Bool {
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 { continue }
        if n == 0 { return true }
        return errno == ECONNRESET || errno == EPIPE
    }
}
