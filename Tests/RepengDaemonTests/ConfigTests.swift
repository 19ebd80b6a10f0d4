// Unit tests of the daemon's settings (TOML, flags, defaults), names, layer specs and durable writes.
import Foundation
import RepengDaemon
import RepengEngine
import RepengProtocol
import XCTest

final class ConfigTests: XCTestCase {
    /// Config files are bounded in size and entries, and a device is refused by what it is.
    func testConfigFileBounds() throws {
        let dir = "/tmp/repengd-config-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = dir + "/big.toml"
        try Data(repeating: UInt8(ascii: "#"), count: 2 << 20).write(to: URL(fileURLWithPath: big))
        XCTAssertThrowsError(try DaemonConfig.readFile(big)) { e in
            XCTAssertTrue("\(e)".contains("at most 1048576"), "\(e)")
        }
        let many = dir + "/many.toml"
        let tables = (0..<1000).map { "[[model]]\nname = \"m\($0)\"\npath = \"/m/\($0).gguf\"\n" }.joined()
        try tables.write(toFile: many, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DaemonConfig.readFile(many)) { e in
            XCTAssertTrue("\(e)".contains("at most 64"), "\(e)")
        }
        for device in ["/dev/zero", "/dev/null", dir] {
            XCTAssertThrowsError(try DaemonConfig.readFile(device)) { e in
                XCTAssertTrue("\(e)".contains("not a regular file"), "\(device): \(e)")
            }
        }
        XCTAssertThrowsError(try DaemonConfig.readFile(dir + "/missing.toml")) { e in
            XCTAssertTrue("\(e)".contains("No such file"), "\(e)")
        }
        let ok = dir + "/ok.toml"
        try "[limits]\nprefill_chunk_tokens = 32\nmax_connections = 9\nmax_concurrent_streams = 7\n".write(toFile: ok, atomically: true, encoding: .utf8)
        let s = try DaemonConfig.readFile(ok)
        XCTAssertEqual(s.limits.prefillChunkTokens, 32)
        XCTAssertEqual(s.limits.maxConnections, 9)
        XCTAssertEqual(s.limits.maxConcurrentStreams, 7)
    }

    func testTOMLConfig() throws {
        let s = try DaemonConfig.parseTOML("""
            socket = "/tmp/x.sock"
            vectors = "/tmp/v"
            threads = 2
            [[model]]
            name = "a"
            path = "/m/a.gguf"
            [[model]]
            name = "b"
            path = "/m/b.gguf"
            [limits]
            max_queue = 3
            max_batch = 2
            max_coefficient = 50
            drain_seconds = 1.5
            """)
        XCTAssertEqual(s.socket, "/tmp/x.sock")
        XCTAssertEqual(s.vectors, "/tmp/v")
        XCTAssertNil(s.state)
        XCTAssertEqual(s.threads, 2)
        XCTAssertEqual(s.models, [ModelSpec(name: "a", path: "/m/a.gguf"), ModelSpec(name: "b", path: "/m/b.gguf")])
        XCTAssertEqual(s.limits.maxQueue, 3)
        XCTAssertEqual(s.limits.maxBatch, 2)
        XCTAssertEqual(s.limits.maxCoefficient, 50)
        XCTAssertEqual(s.limits.drainSeconds, 1.5)

        XCTAssertThrowsError(try DaemonConfig.parseTOML("sockets = 1"))
        XCTAssertThrowsError(try DaemonConfig.parseTOML("threads = \"two\""))
        XCTAssertThrowsError(try DaemonConfig.parseTOML("[limits]\nmax_batch = 0"))
        XCTAssertThrowsError(try DaemonConfig.parseTOML("[[model]]\nname = \"../x\"\npath = \"/a\""))
        XCTAssertThrowsError(try DaemonConfig.parseTOML("= broken"))
        // Found by fuzzing: the TOML library used before aborted the process on these.
        for crash in ["[/model]]\nath = \"/a\"\nextra = true\n", "  [[ =x]]\n", "[\u{e9}]\n", "[^", "[\n", "d=[}", "a=[1,}", "a={b=[}"] {
            XCTAssertThrowsError(try DaemonConfig.parseTOML(crash)) { e in
                XCTAssertTrue("\(e)".contains("not valid TOML: line 1"), "\(e)")
            }
        }
        XCTAssertNoThrow(try DaemonConfig.parseTOML("socket = \"\"\"\n[not a header]\n\"\"\"\n") )
    }

    /// `precision` at the top level and per model; `saes`; bad values name the key.
    func testPrecisionAndSAEDirectory() throws {
        let s = try DaemonConfig.parseTOML("""
            precision = "exact"
            saes = "/srv/saes"
            [[model]]
            name = "a"
            path = "/m/a.gguf"
            precision = "native"
            [[model]]
            name = "b"
            path = "/m/b.gguf"
            """)
        XCTAssertEqual(s.precision, .exact)
        XCTAssertEqual(s.saes, "/srv/saes")
        XCTAssertEqual(s.models.map(\.precision), [.native, nil])
        for (text, key) in [("precision = \"f16\"", "precision"), ("[[model]]\nname = \"a\"\npath = \"/a\"\nprecision = 1", "model[0].precision")] {
            XCTAssertThrowsError(try DaemonConfig.parseTOML(text)) { e in
                XCTAssertTrue("\(e)".contains("config key '\(key)'"), "\(e)")
            }
        }
        // Serving default native; the flag wins over the file; the SAE directory defaults under the state.
        let env = ["HOME": "/h"]
        let d = try DaemonConfig.resolve(socket: nil, vectors: nil, state: "/st", modelFlags: ["m=/x.gguf"], threads: nil,
                                         configFile: nil, environment: env)
        XCTAssertEqual(d.precision, .native)
        XCTAssertEqual(d.saesDir, "/st/saes")
        let e = try DaemonConfig.resolve(socket: nil, vectors: nil, state: nil, modelFlags: ["m=/x.gguf"], threads: nil,
                                         saes: "/q", precision: .exact, configFile: nil, environment: env)
        XCTAssertEqual(e.precision, .exact)
        XCTAssertEqual(e.saesDir, "/q")
    }

    /// The HTTP API's settings: the socket beside gRPC's, loopback only unless the file allows more.
    func testHTTPSettings() throws {
        let dir = "/tmp/repengd-config-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["HOME": "/h"]
        let d = try DaemonConfig.resolve(socket: "/run/r/repengd.sock", vectors: nil, state: "/st", modelFlags: ["m=/x.gguf"], threads: nil,
                                         configFile: nil, environment: env)
        XCTAssertEqual(d.httpSocket, "/run/r/repengd-http.sock")
        XCTAssertNil(d.httpListen)
        XCTAssertEqual(d.httpTokenPath, "/st/http-token")
        let t = try DaemonConfig.resolve(socket: "/s", vectors: nil, state: "/st", modelFlags: ["m=/x.gguf"], threads: nil,
                                         httpListen: "127.0.0.1:0", configFile: nil, environment: env)
        XCTAssertEqual(t.httpListen, HTTPAddress(host: "127.0.0.1", port: 0))
        XCTAssertEqual(try HTTPAddress(parsing: "[::1]:8080"), HTTPAddress(host: "::1", port: 8080))
        XCTAssertEqual(try HTTPAddress(parsing: "localhost:9"), HTTPAddress(host: "127.0.0.1", port: 9))
        for bad in ["127.0.0.1", "127.0.0.1:99999", "example.com:80", ":80", "1.2.3:4"] {
            XCTAssertThrowsError(try HTTPAddress(parsing: bad), bad)
        }
        XCTAssertThrowsError(try DaemonConfig.resolve(socket: "/s", vectors: nil, state: "/st", modelFlags: ["m=/x.gguf"], threads: nil,
                                                      httpListen: "0.0.0.0:8080", configFile: nil, environment: env)) { e in
            XCTAssertTrue("\(e)".contains("not a loopback address"), "\(e)")
        }
        let file = dir + "/c.toml"
        try """
            http_socket = "/run/x/api.sock"
            http_listen = "0.0.0.0:8080"
            http_allow_remote = true
            http_token_file = "/etc/t"
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let f = try DaemonConfig.resolve(socket: "/s", vectors: nil, state: "/st", modelFlags: ["m=/x.gguf"], threads: nil,
                                         configFile: file, environment: env)
        XCTAssertEqual(f.httpSocket, "/run/x/api.sock")
        XCTAssertEqual(f.httpListen, HTTPAddress(host: "0.0.0.0", port: 8080))
        XCTAssertTrue(f.httpAllowRemote)
        XCTAssertEqual(f.httpTokenPath, "/etc/t")
        for (text, key) in [("http_listen = 8080", "http_listen"), ("http_listen = \"nope\"", "http_listen"), ("http_allow_remote = 1", "http_allow_remote")] {
            XCTAssertThrowsError(try DaemonConfig.parseTOML(text)) { e in
                XCTAssertTrue("\(e)".contains("config key '\(key)'"), "\(e)")
            }
        }
    }

    func testFlagsWinAndDefaults() throws {
        let env = ["XDG_RUNTIME_DIR": "/run/user/7", "XDG_STATE_HOME": "/home/u/.st", "HOME": "/home/u"]
        let c = try DaemonConfig.resolve(socket: nil, vectors: nil, state: nil, modelFlags: ["m=/x.gguf", "n=/y.gguf"],
                                         threads: nil, configFile: nil, environment: env)
        XCTAssertEqual(c.socketPath, "/run/user/7/repengd/repengd.sock")
        XCTAssertEqual(c.vectorsDir, "/home/u/.st/repengd/vectors")
        XCTAssertEqual(c.stateDir, "/home/u/.st/repengd")
        XCTAssertEqual(c.models.map(\.name), ["m", "n"])
        let d = try DaemonConfig.resolve(socket: "/s", vectors: "/v", state: "/st", modelFlags: ["m=/x.gguf"], threads: 1,
                                         configFile: nil, environment: ["HOME": "/h"])
        XCTAssertEqual(d.socketPath, "/s")
        XCTAssertEqual(d.threads, 1)
        XCTAssertEqual(DaemonConfig.defaultStateDir(environment: ["HOME": "/h"]), "/h/.local/state/repengd")
        XCTAssertEqual(RepengSocket.daemonDefaultPath(environment: [:]), "/tmp/repengd-\(getuid())/repengd.sock")
        XCTAssertEqual(RepengSocket.defaultPath(environment: ["REPENG_SOCKET": "/q.sock"]), "/q.sock")
        XCTAssertThrowsError(try DaemonConfig.resolve(socket: nil, vectors: nil, state: nil, modelFlags: ["m=/a", "m=/b"],
                                                      threads: nil, configFile: nil, environment: [:]))
        XCTAssertThrowsError(try DaemonConfig.parseModelFlag("nopath"))
    }

    func testNamesAndLayerSpecs() throws {
        for good in ["happy", "a.b-c_9", String(repeating: "x", count: 64)] { XCTAssertTrue(VectorName.isValid(good), good) }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", String(repeating: "x", count: 65), "é"] {
            XCTAssertFalse(VectorName.isValid(bad), bad)
        }
        XCTAssertEqual(try LayerSpec.parse("13..15"), [13, 14, 15])
        XCTAssertEqual(try LayerSpec.parse("-1..-3"), [-1, -2, -3])
        XCTAssertEqual(try LayerSpec.parse("3, 5,7..8,5"), [3, 5, 7, 8])
        for bad in ["", "a", "1..", "1,,2", "1..x", "0..100000"] { XCTAssertThrowsError(try LayerSpec.parse(bad), bad) }
    }

    func testDurableWrite() throws {
        let dir = "/tmp/repengd-durable-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DurableFile.write(Array("one".utf8), to: dir + "/f", replace: false)
        XCTAssertThrowsError(try DurableFile.write(Array("two".utf8), to: dir + "/f", replace: false))
        XCTAssertEqual(try String(contentsOfFile: dir + "/f", encoding: .utf8), "one")
        try DurableFile.write(Array("three".utf8), to: dir + "/f", replace: true)
        XCTAssertEqual(try String(contentsOfFile: dir + "/f", encoding: .utf8), "three")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["f"])
        _ = FileManager.default.createFile(atPath: dir + "/" + DurableFile.tempPrefix + "left", contents: Data())
        XCTAssertEqual(DurableFile.sweepTemporaries(in: dir).count, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["f"])
    }
}
