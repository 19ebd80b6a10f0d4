// Runs the documented Python grpcio client (scripts/examples/python_client.py) against a daemon:
// the protocol works from another language exactly as docs/protocol.md shows.
import Foundation
import RepengDaemon
import RepengProtocol
import XCTest

final class PythonClientTests: XCTestCase {
    func testPythonGrpcioClient() async throws {
        let python = "/usr/bin/python3", protoc = "/usr/bin/protoc", plugin = "/usr/bin/grpc_python_plugin"
        for tool in [python, protoc, plugin] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw XCTSkip("\(tool) missing; scripts/bootstrap.sh installs python3-grpcio, protobuf-compiler and protobuf-compiler-grpc")
        }
        let probe = try await runProcess(python, ["-c", "import grpc, google.protobuf"])
        guard probe.status == 0 else { throw XCTSkip("python3 cannot import grpc: \(probe.stderr)") }

        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let root = DaemonFixtures.repoRoot.path
        let gen = dirs.root + "/py"
        try FileManager.default.createDirectory(atPath: gen, withIntermediateDirectories: true)
        // The commands of the example's docstring.
        let p = try await runProcess(protoc, ["-I", "proto", "--python_out=" + gen, "--grpc_python_out=" + gen,
                                              "--plugin=protoc-gen-grpc_python=" + plugin, "proto/repeng/v1/repeng.proto"],
                                     cwd: root)
        XCTAssertEqual(p.status, 0, p.stderr)

        let prompt = "What are you doing this weekend?"
        let layers = "-5,-6,-7,-8,-9,-10,-11,-12,-13,-14,-15,-16,-17,-18,-19,-20"
        let (out, expected) = try await withDaemon(try dirs.config()) { _ in
            let out = try await runProcess(python, [root + "/scripts/examples/python_client.py", "--socket", dirs.socket,
                                                    "--vector", "happy", "--coefficient", "8", "--layers=" + layers, prompt],
                                           env: ["PYTHONPATH": gen])
            let expected = try await withRepengClient(socket: dirs.socket) { client, _ in
                (try await generateText(client, chatRequest()).0,
                 try await generateText(client, chatRequest(control: control([("happy", 8)],
                                                                                layers: layers.split(separator: ",").map { Int32($0)! }))).0)
            }
            return (out, expected)
        }
        XCTAssertEqual(out.status, 0, out.stderr)
        let lines = try out.stdout.split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
        XCTAssertEqual(lines.count, 5, out.stdout)
        guard lines.count == 5 else { return }
        XCTAssertEqual(lines[0]["default_model"] as? String, "smollm2")
        let ids = try XCTUnwrap(lines[1]["ids"] as? [Int])
        XCTAssertEqual(ids.map(Int32.init), try DaemonFixtures.model().tokenizer?.encode(prompt, addSpecial: true))
        XCTAssertEqual(lines[2]["baseline"] as? String, expected.0)
        XCTAssertEqual(lines[2]["finish_reason"] as? String, "FINISH_REASON_LENGTH")
        XCTAssertEqual(lines[3]["controlled"] as? String, expected.1)
        XCTAssertNotEqual(expected.0, expected.1)
        XCTAssertEqual(lines[4]["error_code"] as? String, "NOT_FOUND")
        XCTAssertTrue((lines[4]["error"] as? String)?.contains("no-such-vector") ?? false, "\(lines[4])")
    }
}
