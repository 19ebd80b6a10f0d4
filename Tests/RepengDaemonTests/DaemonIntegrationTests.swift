// End-to-end tests of repengd: a daemon started in-process with Daemon.start on a temp socket
// and temp directories, the real SmolLM2 model, driven through the generated gRPC client.
import Foundation
import GRPCCore
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

final class DaemonIntegrationTests: XCTestCase {
    let layers: [Int32] = Array((-20)...(-5)).map(Int32.init)

    /// The library's output for the chat prompt under `coefficient × happy` (nil: no control).
    func libraryText(coefficient: Float?, vectorPath: String, layers: [Int]? = nil, maxTokens: Int = 24) throws -> String {
        let cm = ControlledModel(model: try DaemonFixtures.model())
        if let k = coefficient {
            try cm.setControl(try ControlVector.load(path: vectorPath), coefficient: k, layers: layers)
        }
        return try cm.generate(prompt: try DaemonFixtures.chatPrompt, maxTokens: maxTokens).text
    }

    func testTrainSetControlGenerateReset() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let logs = LogCapture()
        let layers = self.layers
        let dataset = try DaemonFixtures.dataset()
        let result: (String, String, String, Int) = try await withDaemon(try dirs.config(), logs: logs) { daemon in
            try await withRepengClient(socket: dirs.socket) { client, health in
                let h = try await health.check(.with { $0.service = "" })
                XCTAssertEqual(h.status, .serving)

                let (baseline, done0) = try await generateText(client, chatRequest())
                XCTAssertEqual(done0.finishReason, .length)
                XCTAssertEqual(done0.completionTokens, 24)

                // Train → the file appears, with progress on the way.
                let trainRequest = Repeng_V1_TrainRequest.with {
                    $0.name = "happy"
                    $0.dataset = dataset.map { e in .with { $0.positive = e.positive; $0.negative = e.negative } }
                    $0.method = .pcaCenter
                }
                let (progressEvents, trained) = try await client.train(trainRequest) { response in
                    var n = 0
                    var result: Repeng_V1_TrainResult?
                    for try await ev in response.messages {
                        switch ev.event {
                        case .progress?: n += 1
                        case .result(let r)?: result = r
                        case nil: break
                        }
                    }
                    return (n, result)
                }
                XCTAssertGreaterThan(progressEvents, 0)
                XCTAssertEqual(trained?.vector.name, "happy")
                XCTAssertEqual(trained?.vector.file, "happy.gguf")
                XCTAssertEqual(trained?.vector.layers.count, 29)
                XCTAssertTrue(FileManager.default.fileExists(atPath: dirs.vectors + "/happy.gguf"))
                // No temp files left behind.
                let names = try FileManager.default.contentsOfDirectory(atPath: dirs.vectors)
                XCTAssertEqual(names, ["happy.gguf"])
                // A second Train without overwrite is refused.
                await assertRPCError(.alreadyExists) {
                    _ = try await client.train(trainRequest) { r in for try await _ in r.messages {} }
                }

                let set = try await client.setControl(.with { $0.control = control([("happy", 8)], layers: layers) })
                XCTAssertEqual(set.controlledLayers.count, 16)
                let got = try await client.getControl(Repeng_V1_GetControlRequest())
                XCTAssertEqual(got.control.terms.first?.vector, "happy")
                XCTAssertEqual(got.control.terms.first?.coefficient, 8)
                let (steered, _) = try await generateText(client, chatRequest())

                _ = try await client.reset(Repeng_V1_ResetRequest())
                let (afterReset, _) = try await generateText(client, chatRequest())
                let cleared = try await client.getControl(Repeng_V1_GetControlRequest())
                XCTAssertTrue(cleared.control.terms.isEmpty)
                return (baseline, steered, afterReset, daemon.registry.hosts.count)
            }
        }
        let (baseline, steered, afterReset, _) = result
        XCTAssertNotEqual(steered, baseline, "control changed nothing")
        XCTAssertEqual(afterReset, baseline, "reset did not restore the baseline")
        let path = dirs.vectors + "/happy.gguf"
        XCTAssertEqual(steered, try libraryText(coefficient: 8, vectorPath: path, layers: layers.map(Int.init)))
        XCTAssertEqual(baseline, try libraryText(coefficient: nil, vectorPath: path))
        // One log line per request with the caller's kernel credentials.
        let rpcLines = logs.lines.filter { $0.contains("rpc repeng.v1.Repeng/") }
        XCTAssertGreaterThanOrEqual(rpcLines.count, 8, "\(logs.lines)")
        XCTAssertTrue(rpcLines.allSatisfy { $0.contains("uid=\(getuid())") && $0.contains("pid=\(getpid())") }, "\(rpcLines)")
    }

    func testConcurrentStreamsMatchSoloRuns() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let controls: [Repeng_V1_Control?] = [
            nil,
            control([("happy", 8)], layers: layers),
            control([("happy", -8)], layers: layers),
            control([("happy", 4)]),
            control([("happy", 3), ("happy", 3)], layers: Array((-12)...(-3)).map(Int32.init)),
            control([("happy", 6)], layers: layers, normalize: true),
            control([("happy", -4)], layers: Array((-25)...(-10)).map(Int32.init)),
            control([("happy", 10)], layers: Array((-8)...(-2)).map(Int32.init)),
        ]
        let prompts = ["What are you doing this weekend?", "Tell me about your morning.", "What is your favourite food?"]
        let requests: [Repeng_V1_GenerateRequest] = controls.enumerated().map { i, c in
            var r = chatRequest(maxTokens: UInt32(16 + 4 * i), control: c)
            r.chat.messages[0].content = prompts[i % prompts.count]
            return r
        }
        let (solo, together, largest) = try await withDaemon(try dirs.config()) { daemon in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                var solo: [String] = []
                for r in requests { solo.append(try await generateText(client, r).0) }
                let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                    for (i, r) in requests.enumerated() {
                        group.addTask { (i, try await generateText(client, r).0) }
                    }
                    var out = [String](repeating: "", count: requests.count)
                    for try await (i, t) in group { out[i] = t }
                    return out
                }
                return (solo, together, daemon.registry.hosts[0].scheduler.largestBatch)
            }
        }
        XCTAssertGreaterThan(largest, 1, "generations were not batched")
        XCTAssertEqual(Set(solo).count, solo.count, "controls should give different texts: \(solo)")
        for i in solo.indices {
            XCTAssertEqual(together[i], solo[i], "request \(i) differs when run concurrently")
        }
    }

    func testTrainingStopsWhenClientLeaves() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        // Enough pairs that training takes many progress steps.
        let pairs = try makeChatDataset(template: "Act as if you're extremely {persona}.",
                                        positivePersonas: ["happy"], negativePersonas: ["sad"],
                                        suffixes: Array(defaultSuffixes.prefix(400)), format: .chatML)
        try await withDaemon(try dirs.config()) { daemon in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let request = Repeng_V1_TrainRequest.with {
                    $0.name = "left"
                    $0.dataset = pairs.map { e in .with { $0.positive = e.positive; $0.negative = e.negative } }
                    $0.batchSize = 4
                }
                let t0 = Date()
                try await client.train(request) { response in
                    for try await ev in response.messages {
                        if case .progress(let p)? = ev.event, p.done > 0 { break }
                    }
                }
                // The slot frees promptly (the next batch boundary) and no file is written.
                var status = try await client.status(Repeng_V1_StatusRequest())
                while status.activeTrainings > 0 && Date().timeIntervalSince(t0) < 20 {
                    try await Task.sleep(for: .milliseconds(20))
                    status = try await client.status(Repeng_V1_StatusRequest())
                }
                XCTAssertEqual(status.activeTrainings, 0)
                XCTAssertLessThan(Date().timeIntervalSince(t0), 20)
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dirs.vectors), [])
                // A new training can start right away.
                var small = request
                small.dataset = Array(request.dataset.prefix(4))
                try await client.train(small) { r in for try await _ in r.messages {} }
                XCTAssertTrue(FileManager.default.fileExists(atPath: dirs.vectors + "/left.gguf"))
            }
        }
    }

    func testCancelFreesSlotAndQueueLimit() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxBatch = 1
        limits.maxQueue = 1
        limits.maxTokens = 4000
        try await withDaemon(try dirs.config(limits: limits)) { daemon in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let scheduler = daemon.registry.hosts[0].scheduler
                let long = Repeng_V1_GenerateRequest.with { $0.prompt = "Once upon a time"; $0.maxTokens = 4000 }
                // A long generation, abandoned after two chunks.
                let started = try await client.generate(long) { response in
                    var chunks = 0
                    for try await ev in response.messages {
                        if case .chunk? = ev.event { chunks += 1 }
                        if chunks == 2 { break }
                    }
                    return chunks
                }
                XCTAssertEqual(started, 2)
                // The slot frees promptly.
                let deadline = Date().addingTimeInterval(5)
                while scheduler.load.active + scheduler.load.queued > 0 && Date() < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                XCTAssertEqual(scheduler.load.active, 0)
                let t0 = Date()
                let (short, _) = try await generateText(client, .with { $0.prompt = "Hello"; $0.maxTokens = 4 })
                XCTAssertFalse(short.isEmpty)
                XCTAssertLessThan(Date().timeIntervalSince(t0), 10)

                // Queue limit: one running, one queued, the third is refused. The long generation
                // keeps its slot until released (reading a fixed number of chunks let it finish
                // before the second request was queued on a loaded machine, and the wait below
                // never ended).
                let release = ReleaseGate()
                let a = Task { try await client.generate(long) { r in
                    for try await ev in r.messages { if case .chunk? = ev.event, release.isOpen { break } }
                } }
                let waitLimit = Date().addingTimeInterval(60)
                while scheduler.load.active == 0 && Date() < waitLimit { try await Task.sleep(for: .milliseconds(10)) }
                XCTAssertEqual(scheduler.load.active, 1, "the long generation is running")
                let b = Task { try await generateText(client, .with { $0.prompt = "Hi"; $0.maxTokens = 2 }) }
                while scheduler.load.queued == 0 && Date() < waitLimit { try await Task.sleep(for: .milliseconds(5)) }
                XCTAssertEqual(scheduler.load.queued, 1, "the second request is queued behind it")
                await assertRPCError(.resourceExhausted) {
                    _ = try await generateText(client, .with { $0.prompt = "Hey"; $0.maxTokens = 2 })
                }
                release.open()
                try await a.value
                _ = try await b.value
            }
        }
    }

    func testRestartKeepsControlState() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let layers = self.layers
        let before: String = try await withDaemon(try dirs.config()) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                _ = try await client.setControl(.with { $0.control = control([("happy", 8)], layers: layers) })
                return try await generateText(client, chatRequest()).0
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dirs.socket), "socket file left behind")
        let (after, got): (String, Repeng_V1_GetControlResponse) = try await withDaemon(try dirs.config()) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                (try await generateText(client, chatRequest()).0, try await client.getControl(Repeng_V1_GetControlRequest()))
            }
        }
        XCTAssertEqual(after, before)
        XCTAssertEqual(got.control.terms.map(\.vector), ["happy"])
        XCTAssertEqual(got.control.layers, layers)
    }

    func testBadRequestsGetTheRightCodes() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        // A vector for a model with another hidden size, and a corrupt file.
        try ControlVector(modelType: "llama", directions: [1: [Float](repeating: 0.5, count: 7)])
            .exportGGUF(to: dirs.vectors + "/tiny.gguf")
        try Data("GGUF garbage".utf8).write(to: URL(fileURLWithPath: dirs.vectors + "/broken.gguf"))
        try await withDaemon(try dirs.config()) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                func setControl(_ c: Repeng_V1_Control, model: String = "") async throws {
                    _ = try await client.setControl(.with { $0.model = model; $0.control = c })
                }
                await assertRPCError(.notFound) { try await setControl(control([("happy", 1)]), model: "nosuch") }
                await assertRPCError(.notFound) { try await setControl(control([("nosuch", 1)])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("../happy", 1)])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("happy", .nan)])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("happy", .infinity)])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("happy", 1e9)])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("happy", 1)], layers: [99])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("happy", 1)], layers: [-31])) }
                await assertRPCError(.invalidArgument) { try await setControl(control([("tiny", 1)])) }
                await assertRPCError(.failedPrecondition) { try await setControl(control([("broken", 1)])) }
                await assertRPCError(.invalidArgument) { _ = try await generateText(client, .with { $0.prompt = "" }) }
                await assertRPCError(.invalidArgument) { _ = try await generateText(client, Repeng_V1_GenerateRequest()) }
                await assertRPCError(.invalidArgument) {
                    _ = try await generateText(client, .with { $0.prompt = "Hi"; $0.maxTokens = 1_000_000 })
                }
                await assertRPCError(.invalidArgument) {
                    _ = try await generateText(client, .with { $0.prompt = "Hi"; $0.sampling.temperature = -1 })
                }
                await assertRPCError(.notFound) {
                    _ = try await generateText(client, .with { $0.prompt = "Hi"; $0.control = control([("gone", 2)]) })
                }
                await assertRPCError(.invalidArgument) {
                    _ = try await client.train(.with { $0.name = "x"; $0.dataset = [] }) { r in for try await _ in r.messages {} }
                }
                await assertRPCError(.invalidArgument) {
                    _ = try await client.train(.with {
                        $0.name = "x"
                        $0.dataset = [.with { $0.positive = "a"; $0.negative = "b" }, .with { $0.positive = "c"; $0.negative = "d" }]
                        $0.layers = [0]
                    }) { r in for try await _ in r.messages {} }
                }
                await assertRPCError(.invalidArgument) {
                    _ = try await client.train(.with { $0.name = "a/b"; $0.dataset = [.with { $0.positive = "a"; $0.negative = "b" }] }) { r in
                        for try await _ in r.messages {}
                    }
                }
                // The daemon keeps serving, and the listing reports the broken files.
                let status = try await client.status(Repeng_V1_StatusRequest())
                XCTAssertEqual(status.defaultModel, "smollm2")
                let list = try await client.listVectors(Repeng_V1_ListVectorsRequest())
                XCTAssertEqual(list.vectors.map(\.name), ["broken", "happy", "tiny"])
                XCTAssertEqual(list.vectors.map(\.status), [.error, .ok, .ok])
                XCTAssertEqual(list.vectors[1].hiddenSize, 576)
                let current = try await client.getControl(Repeng_V1_GetControlRequest())
                XCTAssertTrue(current.control.terms.isEmpty, "a refused SetControl must not change the control")
            }
        }
    }

    func testSecondDaemonDoesNotStealLiveSocket() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try await withDaemon(try dirs.config()) { _ in
            do {
                _ = try await Daemon.start(config: try dirs.config(), logger: LogCapture().logger)
                XCTFail("a second daemon started on a live socket")
            } catch let e as StartupError {
                XCTAssertTrue("\(e)".contains("already listening"), "\(e)")
            }
            try await withRepengClient(socket: dirs.socket) { client, _ in
                _ = try await client.status(Repeng_V1_StatusRequest())
            }
        }
    }
}

/// A flag one task sets and another polls.
final class ReleaseGate: @unchecked Sendable {
    private let lock = NSLock()
    private var opened = false
    func open() { lock.withLock { opened = true } }
    var isOpen: Bool { lock.withLock { opened } }
}
