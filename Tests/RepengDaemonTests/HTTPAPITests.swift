// The HTTP API against real clients: the stock openai Python client over loopback TCP gets
// repengctl's text, curl over the Unix socket, tokens, error shapes, control, vectors,
// training, the OpenAPI document, and the playground in headless Chromium.
import Foundation
import RepengDaemon
import RepengProtocol
import XCTest

final class HTTPAPITests: XCTestCase {
    static let prompt = "What are you doing this weekend?"
    static let layers = "-5..-18"

    /// A daemon config with the happy vector and TCP on a free loopback port.
    private func tcpConfig(_ dirs: TempDirs, limits: DaemonLimits = DaemonLimits()) throws -> DaemonConfig {
        try dirs.installHappyVector()
        var cfg = try dirs.config(limits: limits)
        cfg.httpListen = HTTPAddress(host: "127.0.0.1", port: 0)
        return cfg
    }

    /// `http://127.0.0.1:PORT` and the token, from the playground URL.
    private func split(_ url: String) throws -> (base: String, token: String) {
        let parts = url.components(separatedBy: "/?token=")
        XCTAssertEqual(parts.count, 2, url)
        return (parts[0], try XCTUnwrap(parts.last))
    }

    func testOpenAIClientGetsRepengctlText() async throws {
        let python = DaemonFixtures.repoRoot.path + "/.cache/venv-openai/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("\(python) missing; scripts/bootstrap.sh installs the openai client there")
        }
        let ctl = try DaemonFixtures.executable("repengctl")
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try await withDaemon(try tcpConfig(dirs)) { daemon in
            let url = try XCTUnwrap(daemon.httpURL)
            let printed = try await runProcess(ctl, ["--socket", dirs.socket, "http-url"])
            XCTAssertEqual(printed.status, 0, printed.stderr)
            XCTAssertEqual(printed.stdout, url + "\n")
            let (base, token) = try split(url)

            let control = ["--control", "happy:4", "--layers=" + Self.layers, "--max-tokens", "24"]
            let chat = try await runProcess(ctl, ["--socket", dirs.socket, "generate", "--chat"] + control + [Self.prompt])
            let plain = try await runProcess(ctl, ["--socket", dirs.socket, "generate"] + control + ["Once upon a time,"])
            let baseline = try await runProcess(ctl, ["--socket", dirs.socket, "generate", "--chat", "--max-tokens", "24", Self.prompt])
            for r in [chat, plain, baseline] { XCTAssertEqual(r.status, 0, r.stderr) }
            XCTAssertNotEqual(chat.stdout, baseline.stdout, "the control changes the text")
            XCTAssertFalse(plain.stdout.isEmpty)

            let script = DaemonFixtures.repoRoot.path + "/scripts/examples/openai_client.py"
            let out = try await runProcess(python, [script, "--base-url", base + "/v1", "--api-key", token, "--vector", "happy",
                                                    "--coeff", "4", "--layers=" + Self.layers, "--max-tokens", "24", Self.prompt])
            XCTAssertEqual(out.status, 0, out.stderr)
            var got: [String: Any] = [:]
            for line in out.stdout.split(separator: "\n") {
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
                got.merge(o) { a, _ in a }
            }
            XCTAssertEqual(got["models"] as? [String], ["smollm2"])
            XCTAssertEqual(got["chat"] as? String, chat.stdout, "openai chat.completions vs repengctl generate --chat")
            XCTAssertEqual(got["chat_stream"] as? String, chat.stdout, "streamed")
            XCTAssertEqual(got["completion"] as? String, plain.stdout, "openai completions vs repengctl generate")
            XCTAssertEqual(got["completion_stream"] as? String, plain.stdout, "streamed")
            XCTAssertEqual(got["finish_reason"] as? String, "length")
            let usage = try XCTUnwrap(got["usage"] as? [String: Any])
            XCTAssertEqual(usage["completion_tokens"] as? Int, 24)
            XCTAssertEqual(got["error_status"] as? Int, 404)
            XCTAssertTrue((got["error"] as? String)?.contains("no-such-vector") ?? false, "\(got)")
            print("openai client: chat \(String(reflecting: chat.stdout)); completion \(String(reflecting: plain.stdout))")
        }
    }

    /// curl's body and status.
    private static func curl(_ args: [String]) async throws -> (status: Int, body: String) {
        let r = try await runProcess("/usr/bin/curl", ["-sS", "-w", "\n%{http_code}"] + args)
        XCTAssertEqual(r.status, 0, r.stderr)
        var lines = r.stdout.components(separatedBy: "\n")
        let code = Int(lines.removeLast()) ?? -1
        return (code, lines.joined(separator: "\n"))
    }

    private func curl(_ args: [String]) async throws -> (status: Int, body: String) { try await Self.curl(args) }

    private static func object(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body, file: file, line: line)
    }

    private func object(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try Self.object(body, file: file, line: line)
    }

    /// The message of an OpenAI-shaped error body (and checks its shape).
    private func errorMessage(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let e = try XCTUnwrap(try object(body)["error"] as? [String: Any], body, file: file, line: line)
        XCTAssertNotNil(e["type"] as? String, body, file: file, line: line)
        XCTAssertNotNil(e["code"] as? String, body, file: file, line: line)
        return try XCTUnwrap(e["message"] as? String, body, file: file, line: line)
    }

    func testUnixSocketTokensErrorsControlAndTraining() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl missing; scripts/bootstrap.sh installs it") }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        var limits = DaemonLimits()
        limits.maxRequestBytes = 64 << 10
        try await withDaemon(try tcpConfig(dirs, limits: limits)) { daemon in
            let sock = daemon.httpSocketPath
            XCTAssertEqual(sock, dirs.root + "/d-http.sock")
            var st = stat()
            XCTAssertEqual(lstat(sock, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o660, "the HTTP socket has the gRPC socket's mode")
            let unix = ["--unix-socket", sock]
            let json = ["-H", "Content-Type: application/json"]

            // Over the Unix socket no token is needed.
            var r = try await curl(unix + ["http://localhost/v1/models"])
            XCTAssertEqual(r.status, 200, r.body)
            let models = try XCTUnwrap(try object(r.body)["data"] as? [[String: Any]])
            XCTAssertEqual(models.first?["id"] as? String, "smollm2")
            r = try await curl(unix + ["http://localhost/health"])
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(try object(r.body)["status"] as? String, "ok")

            // Tokens on TCP.
            let (base, token) = try split(try XCTUnwrap(daemon.httpURL))
            r = try await curl([base + "/v1/models"])
            XCTAssertEqual(r.status, 401, "no token")
            XCTAssertTrue(try errorMessage(r.body).contains("token"))
            r = try await curl(["-H", "Authorization: Bearer " + String(repeating: "0", count: token.count), base + "/v1/models"])
            XCTAssertEqual(r.status, 401, "wrong token")
            r = try await curl(["-H", "Authorization: Bearer wrong", base + "/"])
            XCTAssertEqual(r.status, 401, "the playground needs the token too")
            r = try await curl(["-H", "Authorization: Bearer " + token, base + "/v1/models"])
            XCTAssertEqual(r.status, 200)
            r = try await curl([base + "/v1/vectors?token=" + token])
            XCTAssertEqual(r.status, 200)
            let vectors = try XCTUnwrap(try object(r.body)["data"] as? [[String: Any]])
            XCTAssertEqual(vectors.map { $0["name"] as? String }, ["happy"])

            // The generated token is private to the daemon's user.
            XCTAssertEqual(stat(dirs.state + "/http-token", &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o600)
            XCTAssertEqual(try String(contentsOfFile: dirs.state + "/http-token", encoding: .utf8), token + "\n")

            // Errors in OpenAI's shape.
            func post(_ path: String, _ body: String) async throws -> (status: Int, body: String) {
                try await curl(unix + json + ["-X", "POST", "--data-binary", body, "http://localhost" + path])
            }
            let chatPath = "/v1/chat/completions"
            let hello = #"[{"role":"user","content":"Hello"}]"#
            var cases: [(String, String, Int, String)] = [
                (chatPath, #"{"model":"nope","messages":\#(hello)}"#, 404, "nope"),
                (chatPath, "{not json", 400, "JSON"),
                (chatPath, #"{"model":"smollm2"}"#, 400, "messages"),
                (chatPath, #"{"messages":\#(hello),"control":[{"vector":"missing","coeff":1}]}"#, 404, "missing"),
                (chatPath, #"{"messages":\#(hello),"n":2}"#, 400, "n"),
                (chatPath, #"{"messages":\#(hello),"temperature":"hot"}"#, 400, "temperature"),
                (chatPath, #"{"messages":\#(hello),"max_tokens":100000}"#, 400, "max_tokens"),
                (chatPath, #"{"messages":\#(hello),"control":[{"vector":"happy","coeff":1}],"layers":"1..x"}"#, 400, "layers"),
                (chatPath, #"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, 400, "content"),
                ("/v1/completions", #"{"prompt":["a","b"]}"#, 400, "prompt"),
                ("/v1/train", #"{"name":"x","dataset":[]}"#, 400, "dataset"),
                ("/v1/train", #"{"name":"../x","dataset":[{"positive":"a","negative":"b"}]}"#, 400, "name"),
                ("/v1/nothing", "{}", 404, "/v1/nothing"),
            ]
            cases.append((chatPath, "{\"messages\":\(hello),\"pad\":\"" + String(repeating: "x", count: 70_000) + "\"}", 413, "limit"))
            for (path, body, status, needle) in cases {
                let r = try await post(path, body)
                XCTAssertEqual(r.status, status, "\(path) \(body.prefix(120)): \(r.body)")
                let message = try errorMessage(r.body)
                XCTAssertTrue(message.contains(needle), "\(body.prefix(120)): \(message)")
            }
            r = try await curl(unix + ["http://localhost/v1/completions"])
            XCTAssertEqual(r.status, 405)

            // Control: absent means the model's control, [] means none.
            func chat(_ extra: String) async throws -> String {
                let r = try await post(chatPath, #"{"messages":[{"role":"user","content":"\#(Self.prompt)"}],"temperature":0,"max_tokens":16\#(extra)}"#)
                XCTAssertEqual(r.status, 200, r.body)
                let choices = try XCTUnwrap(try object(r.body)["choices"] as? [[String: Any]])
                return try XCTUnwrap((choices.first?["message"] as? [String: Any])?["content"] as? String)
            }
            let baseline = try await chat("")
            // A stop string ends the text before it, with finish_reason "stop".
            let words = baseline.split(separator: " ")
            XCTAssertGreaterThan(words.count, 3, baseline)
            let stop = String(words[2])
            r = try await post(chatPath, #"{"messages":[{"role":"user","content":"\#(Self.prompt)"}],"temperature":0,"max_tokens":16,"stop":["\#(stop)"]}"#)
            let stopped = try XCTUnwrap((try object(r.body)["choices"] as? [[String: Any]])?.first, r.body)
            XCTAssertEqual(stopped["finish_reason"] as? String, "stop", r.body)
            let stoppedText = try XCTUnwrap((stopped["message"] as? [String: Any])?["content"] as? String)
            XCTAssertTrue(baseline.hasPrefix(stoppedText) && !stoppedText.contains(stop), "\(stoppedText) vs \(baseline)")
            let explicit = try await chat(#","control":[{"vector":"happy","coeff":4}],"layers":"\#(Self.layers)""#)
            XCTAssertNotEqual(baseline, explicit)
            r = try await curl(unix + json + ["-X", "PUT", "--data-binary", #"{"control":[{"vector":"happy","coeff":4}],"layers":"\#(Self.layers)"}"#,
                                              "http://localhost/v1/control"])
            XCTAssertEqual(r.status, 200, r.body)
            XCTAssertEqual((try object(r.body)["controlled_layers"] as? [Int])?.count, 14)
            r = try await curl(unix + ["http://localhost/v1/control"])
            XCTAssertEqual((try object(r.body)["control"] as? [[String: Any]])?.first?["vector"] as? String, "happy")
            let current = try await chat("")
            XCTAssertEqual(current, explicit, "no 'control' field: the model's control")
            let none = try await chat(#","control":[]"#)
            XCTAssertEqual(none, baseline, "'control': [] means none")
            r = try await curl(unix + ["-X", "DELETE", "http://localhost/v1/control"])
            XCTAssertEqual(r.status, 200, r.body)
            let reset = try await chat("")
            XCTAssertEqual(reset, baseline)

            // Training: progress events, then the result; the file appears in the watched directory.
            let pairs = (0..<4).map { #"{"positive":"You are extremely happy. Day \#($0)","negative":"You are extremely sad. Day \#($0)"}"# }
            r = try await post("/v1/train", #"{"name":"mood","dataset":[\#(pairs.joined(separator: ","))],"method":"pca_center"}"#)
            XCTAssertEqual(r.status, 200, r.body)
            let events = r.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            XCTAssertTrue(events.first?.hasPrefix("event: progress\ndata: ") ?? false, r.body)
            let last = try XCTUnwrap(events.last)
            XCTAssertTrue(last.hasPrefix("event: result\ndata: "), last)
            let result = try object(String(last.dropFirst("event: result\ndata: ".count)))
            XCTAssertEqual((result["vector"] as? [String: Any])?["name"] as? String, "mood")
            XCTAssertTrue(FileManager.default.fileExists(atPath: dirs.vectors + "/mood.gguf"))
            r = try await post("/v1/train", #"{"name":"mood","dataset":[\#(pairs[0])]}"#)
            XCTAssertEqual(r.status, 409, r.body)
            r = try await post("/v1/train", #"{"name":"mood","dataset":[\#(pairs.joined(separator: ","))],"overwrite":true,"stream":false}"#)
            XCTAssertEqual(r.status, 200, r.body)
            XCTAssertEqual((try object(r.body)["vector"] as? [String: Any])?["name"] as? String, "mood")

            // The OpenAPI document: the committed file, naming every route.
            r = try await curl(unix + ["http://localhost/openapi.json"])
            XCTAssertEqual(r.status, 200)
            let committed = try String(contentsOfFile: DaemonFixtures.repoRoot.path + "/docs/openapi.json", encoding: .utf8)
            XCTAssertEqual(r.body + "\n", committed, "docs/openapi.json and the served document differ: rerun scripts/make-openapi.py")
            let paths = try XCTUnwrap(try object(r.body)["paths"] as? [String: Any])
            for p in ["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/control", "/v1/vectors", "/v1/train", "/health", "/openapi.json", "/"] {
                XCTAssertNotNil(paths[p], p)
            }
        }
    }

    /// One gRPC and one HTTP generation at once share the model's batch, each with its text alone.
    func testHTTPAndGRPCDecodeInOneBatch() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl missing") }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let grpcRequest = chatRequest(maxTokens: 48, control: control([("happy", 8)], layers: Array((-18)...(-5)).map(Int32.init)))
        let body = #"{"messages":[{"role":"user","content":"Tell me about your morning."}],"temperature":0,"max_tokens":48,"control":[{"vector":"happy","coeff":-8}],"layers":"-5..-18"}"#
        try await withDaemon(try dirs.config()) { daemon in
            let socket = daemon.httpSocketPath
            let http = { @Sendable () async throws -> String in
                let r = try await Self.curl(["--unix-socket", socket, "-H", "Content-Type: application/json",
                                             "--data-binary", body, "http://localhost/v1/chat/completions"])
                let choices = try XCTUnwrap(try Self.object(r.body)["choices"] as? [[String: Any]], r.body)
                return try XCTUnwrap((choices.first?["message"] as? [String: Any])?["content"] as? String)
            }
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let soloGRPC = try await generateText(client, grpcRequest).0
                let soloHTTP = try await http()
                XCTAssertEqual(daemon.registry.hosts[0].scheduler.largestBatch, 1)
                async let a = generateText(client, grpcRequest).0
                async let b = http()
                let (togetherGRPC, togetherHTTP) = try await (a, b)
                XCTAssertEqual(daemon.registry.hosts[0].scheduler.largestBatch, 2, "the HTTP and gRPC sequences were decoded together")
                XCTAssertEqual(togetherGRPC, soloGRPC)
                XCTAssertEqual(togetherHTTP, soloHTTP)
            }
        }
    }

    func testStreamedChunksFollowOpenAIsShape() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl missing") }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        try await withDaemon(try dirs.config()) { daemon in
            // Without --http-listen: the Unix socket only.
            XCTAssertNil(daemon.httpURL)
            let ctl = try DaemonFixtures.executable("repengctl")
            let url = try await runProcess(ctl, ["--socket", dirs.socket, "http-url"])
            XCTAssertEqual(url.status, 78, url.stderr)
            XCTAssertTrue(url.stderr.hasPrefix("repengctl: error: repengd serves HTTP only on its Unix socket"), url.stderr)
            let path = try await runProcess(ctl, ["--socket", dirs.socket, "http-url", "--socket-path"])
            XCTAssertEqual(path.stdout, daemon.httpSocketPath + "\n", path.stderr)

            let r = try await curl(["--unix-socket", daemon.httpSocketPath, "-N", "-H", "Content-Type: application/json", "--data-binary",
                                    #"{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}"#,
                                    "http://localhost/v1/chat/completions"])
            XCTAssertEqual(r.status, 200, r.body)
            let events = r.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            XCTAssertEqual(events.last, "data: [DONE]")
            let chunks = try events.dropLast().map { e -> [String: Any] in
                XCTAssertTrue(e.hasPrefix("data: "), e)
                return try object(String(e.dropFirst(6)))
            }
            XCTAssertGreaterThanOrEqual(chunks.count, 3)
            for c in chunks { XCTAssertEqual(c["object"] as? String, "chat.completion.chunk") }
            let first = try XCTUnwrap((chunks.first?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])
            XCTAssertEqual(first["role"] as? String, "assistant")
            let finish = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
            XCTAssertEqual(finish, ["length"])
            let usage = try XCTUnwrap(chunks.last?["usage"] as? [String: Any])
            XCTAssertEqual(usage["completion_tokens"] as? Int, 8)
            XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0, "the usage chunk has no choices")
        }
    }

    func testPlaygroundInHeadlessChromium() async throws {
        let chromium = "/usr/bin/chromium"
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            throw XCTSkip("\(chromium) missing; scripts/bootstrap.sh installs Debian's chromium")
        }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let output = DaemonFixtures.repoRoot.path + "/.cache/test-output"
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        try await withDaemon(try tcpConfig(dirs)) { daemon in
            try Data(try DaemonFixtures.happyVectorBytes()).write(to: URL(fileURLWithPath: dirs.vectors + "/calm.gguf"))
            let url = try XCTUnwrap(daemon.httpURL)
            let query = "&prompt=" + (Self.prompt.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
                + "&coeff.happy=8&layers=-5..-18&max_tokens=12&sweep=happy&k=8&run=1"
            // Loaded over the DevTools protocol; the DOM is read once the page reports every stream done.
            let driver = DaemonFixtures.repoRoot.path + "/scripts/test/playground_dom.py"
            let page = try await runProcess("/usr/bin/python3", [driver, url + query, output + "/playground.html", output + "/playground.png",
                                                                 "--chromium", chromium, "--timeout", "240"])
            XCTAssertEqual(page.status, 0, page.stdout + page.stderr)
            let html = try String(contentsOfFile: output + "/playground.html", encoding: .utf8)

            // What the API itself gives for the same requests.
            let (base, token) = try split(url)
            func text(_ control: String) async throws -> String {
                let r = try await curl(["-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/json", "--data-binary",
                                        #"{"messages":[{"role":"user","content":"\#(Self.prompt)"}],"temperature":0,"seed":1,"max_tokens":12,"control":\#(control)}"#,
                                        base + "/v1/chat/completions"])
                let choices = try XCTUnwrap(try object(r.body)["choices"] as? [[String: Any]], r.body)
                return try XCTUnwrap((choices.first?["message"] as? [String: Any])?["content"] as? String)
            }
            let baseline = try await text("[]")
            let steered = try await text(#"[{"vector":"happy","coeff":8}],"layers":"-5..-18""#)
            let sweepLow = try await text(#"[{"vector":"happy","coeff":-8}],"layers":"-5..-18""#)
            func escaped(_ s: String) -> String {
                s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            }
            XCTAssertTrue(html.contains(#"data-vector="happy""#), "a slider for happy")
            XCTAssertTrue(html.contains(#"data-vector="calm""#), "a slider for calm")
            XCTAssertEqual(html.components(separatedBy: #"type="range" class="coeff" min="#).count - 1, 2, "one slider per vector")
            XCTAssertTrue(html.contains(#"id="status" data-state="done""#), "every stream finished")
            XCTAssertTrue(html.contains(#"id="baseline" data-state="done">"# + escaped(baseline) + "<"), "baseline text \(baseline) in \(output)/playground.html")
            XCTAssertTrue(html.contains(#"id="steered" data-state="done">"# + escaped(steered) + "<"), "steered text \(steered)")
            XCTAssertTrue(html.contains(#"data-coeff="-8" data-state="done">"# + escaped(sweepLow) + "<"), "sweep cell −8: \(sweepLow)")
            XCTAssertEqual(html.components(separatedBy: "data-coeff=").count - 1, 5, "five sweep cells")
            XCTAssertNotEqual(baseline, steered)

            XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/playground.png"))
            print("playground: DOM and screenshot in \(output) (baseline \(String(reflecting: baseline)), steered \(String(reflecting: steered)))")
        }
    }
}
