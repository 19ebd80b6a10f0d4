// The daemon's vector directory is watched: files changed on disk take effect at the next
// Generate (also through saved control), bad files never replace the last good version, and
// the daemon's own writes are not loaded twice.
import Foundation
import GRPCCore
import RepengDaemon
import RepengEngine
import RepengProtocol
import RepengSteering
import XCTest

final class VectorReloadTests: XCTestCase {
    let layers: [Int32] = Array((-20)...(-5)).map(Int32.init)

    /// Polls ListVectors until `condition` holds for `name` (at most 10 s).
    static func waitForVector(_ client: RepengClient, _ name: String, _ condition: (Repeng_V1_VectorInfo?) -> Bool) async throws -> Repeng_V1_VectorInfo? {
        let end = Date().addingTimeInterval(10)
        while true {
            let v = try await client.listVectors(Repeng_V1_ListVectorsRequest()).vectors.first { $0.name == name }
            if condition(v) || Date() > end { return v }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Writes `bytes` to `dir/name` through a temp file and rename (as `cp` + `mv` would).
    static func replace(_ dir: String, _ name: String, _ bytes: [UInt8]) throws {
        let tmp = dir + "/.tmp-" + name
        try Data(bytes).write(to: URL(fileURLWithPath: tmp))
        XCTAssertEqual(rename(tmp, dir + "/" + name), 0)
    }

    func testChangedFilesTakeEffectAndBadFilesNeverReplaceGoodOnes() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let happy = try ControlVector(ggufBytes: try DaemonFixtures.happyVectorBytes())
        let sad = try (-happy).ggufBytes()
        let logs = LogCapture()
        let layers = self.layers
        try await withDaemon(try dirs.config(), logs: logs) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let (baseline, _) = try await generateText(client, chatRequest())
                let (minus8, _) = try await generateText(client, chatRequest(control: control([("happy", -8)], layers: layers)))
                _ = try await client.setControl(.with { $0.control = control([("happy", 8)], layers: layers) })
                let (plus8, _) = try await generateText(client, chatRequest())
                XCTAssertNotEqual(plus8, baseline)
                XCTAssertNotEqual(plus8, minus8)
                let v1 = try await Self.waitForVector(client, "happy") { $0?.status == .ok }
                XCTAssertEqual(v1?.version, 1)

                // The file is replaced by its negation: the saved control (happy × 8) now steers
                // like happy × −8 from the next Generate on.
                try Self.replace(dirs.vectors, "happy.gguf", sad)
                let v2 = try await Self.waitForVector(client, "happy") { $0?.version == 2 }
                XCTAssertEqual(v2?.status, .ok)
                let (flipped, _) = try await generateText(client, chatRequest())
                XCTAssertEqual(flipped, minus8, "the changed file did not take effect through the saved control")

                // An invalid file (in place, as a careless editor would) never replaces it.
                try Data("GGUF but not really".utf8).write(to: URL(fileURLWithPath: dirs.vectors + "/happy.gguf"))
                let bad = try await Self.waitForVector(client, "happy") { $0?.status == .stale }
                XCTAssertEqual(bad?.status, .stale)
                XCTAssertEqual(bad?.version, 2)
                XCTAssertFalse(bad?.error.isEmpty ?? true)
                let status = try await client.status(Repeng_V1_StatusRequest())
                XCTAssertEqual(status.vectorErrors, 1)
                let (stillFlipped, _) = try await generateText(client, chatRequest())
                XCTAssertEqual(stillFlipped, minus8)
                let (perRequest, _) = try await generateText(client, chatRequest(control: control([("happy", 8)], layers: layers)))
                XCTAssertEqual(perRequest, minus8, "a per-request control uses the last good version too")

                // Fixed: the good content comes back as a new version.
                try Self.replace(dirs.vectors, "happy.gguf", try DaemonFixtures.happyVectorBytes())
                let fixed = try await Self.waitForVector(client, "happy") { $0?.version == 3 }
                XCTAssertEqual(fixed?.status, .ok)
                XCTAssertEqual(fixed?.error, "")
                let (back, _) = try await generateText(client, chatRequest())
                XCTAssertEqual(back, plus8)

                // Removed: the name is gone for new controls; the control in force keeps its last version.
                XCTAssertEqual(unlink(dirs.vectors + "/happy.gguf"), 0)
                let gone = try await Self.waitForVector(client, "happy") { $0 == nil }
                XCTAssertNil(gone)
                await assertRPCError(.notFound) {
                    _ = try await client.setControl(.with { $0.control = control([("happy", 1)]) })
                }
                let (afterRemove, _) = try await generateText(client, chatRequest())
                XCTAssertEqual(afterRemove, plus8)

                // A file moved in appears; dotfiles and editor files are ignored.
                try Data(sad).write(to: URL(fileURLWithPath: dirs.root + "/outside.gguf"))
                XCTAssertEqual(rename(dirs.root + "/outside.gguf", dirs.vectors + "/sad.gguf"), 0)
                try Data(sad).write(to: URL(fileURLWithPath: dirs.vectors + "/.hidden.gguf"))
                try Data(sad).write(to: URL(fileURLWithPath: dirs.vectors + "/sad.gguf~"))
                try Data(sad).write(to: URL(fileURLWithPath: dirs.vectors + "/.sad.gguf.swp"))
                let sadInfo = try await Self.waitForVector(client, "sad") { $0?.status == .ok }
                XCTAssertEqual(sadInfo?.status, .ok)
                let (sadText, _) = try await generateText(client, chatRequest(control: control([("sad", 8)], layers: layers)))
                XCTAssertEqual(sadText, minus8)
                let names = try await client.listVectors(Repeng_V1_ListVectorsRequest()).vectors.map(\.name)
                XCTAssertEqual(names, ["sad"])

                // The daemon's own write (Train) is not loaded a second time by the watcher.
                _ = try await client.train(.with {
                    $0.name = "trained"
                    $0.dataset = try DaemonFixtures.dataset().prefix(4).map { e in .with { $0.positive = e.positive; $0.negative = e.negative } }
                }) { r in for try await _ in r.messages {} }
                try await Task.sleep(for: .milliseconds(500))
                let trained = try await Self.waitForVector(client, "trained") { $0?.status == .ok }
                XCTAssertEqual(trained?.version, 1)
            }
        }
        XCTAssertFalse(logs.lines.contains { $0.contains("loaded trained") }, "\(logs.lines.filter { $0.contains("vectors:") })")
        XCTAssertTrue(logs.lines.contains { $0.contains("vectors: installed trained") }, "\(logs.lines.filter { $0.contains("vectors:") })")
        XCTAssertTrue(logs.lines.contains { $0.contains("vectors:") && $0.contains("keeping version 2") },
                      "\(logs.lines.filter { $0.contains("vectors:") })")
    }
}
