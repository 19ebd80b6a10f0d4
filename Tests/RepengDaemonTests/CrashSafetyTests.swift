// Nothing acknowledged is lost: kill -9 in the middle of durable writes leaves the old or the
// complete new file (temp files are swept at the next start), a full disk fails the request and
// leaves no partial file, and control state survives kill -9 of the daemon.
import Foundation
import GRPCCore
import RepengDaemon
import RepengProtocol
import RepengSteering
import XCTest

final class CrashSafetyTests: XCTestCase {
    static let childVariable = "REPENG_DURABLE_WRITER_DIR"
    static let fileSize = 4 << 20

    static func content(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: fileSize) }

    /// Child mode (run by `testKill9DuringDurableWrites` as a separate process): replaces
    /// `target.bin` forever, alternating two 4 MiB contents, with DurableFile.write.
    func testDurableWriterChild() throws {
        guard let dir = ProcessInfo.processInfo.environment[Self.childVariable] else {
            throw XCTSkip("runs only as the child process of testKill9DuringDurableWrites")
        }
        let a = Self.content(0xAA), b = Self.content(0xBB)
        var i = 0
        while true {
            try DurableFile.write(i % 2 == 0 ? a : b, to: dir + "/target.bin", replace: true)
            i += 1
        }
    }

    func testKill9DuringDurableWrites() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let dir = dirs.vectors
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let a = Self.content(0xAA), b = Self.content(0xBB)
        var sawTemp = 0
        for round in 0..<12 {
            let child = try DaemonProcess(["RepengDaemonTests.CrashSafetyTests/testDurableWriterChild"],
                                          env: [Self.childVariable: dir], executable: testBinary, logPath: dirs.root + "/child.log")
            try await Task.sleep(for: .milliseconds(150 + 37 * round))
            child.signal(SIGKILL)
            _ = await child.waitForExit(10)
            if let data = FileManager.default.contents(atPath: dir + "/target.bin") {
                let bytes = [UInt8](data)
                XCTAssertTrue(bytes == a || bytes == b, "round \(round): target.bin is partial (\(bytes.count) bytes)")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir)
            sawTemp += names.filter { $0.hasPrefix(DurableFile.tempPrefix) }.count
            DurableFile.sweepTemporaries(in: dir)
            let left = try FileManager.default.contentsOfDirectory(atPath: dir)
            XCTAssertTrue(left.allSatisfy { $0 == "target.bin" }, "\(left)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/target.bin"), "the child never completed a write")
        print("kill -9 rounds: 12, temp files left by killed writes and swept: \(sawTemp)")
    }

    func testFullDiskFailsCleanlyAndLeavesNoPartialFile() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let small = dirs.root + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let mount = try await runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", small])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a small tmpfs here: \(mount.stderr)") }
        defer { _ = umount2(small, 0) }
        // Leave about 24 KiB: less than one trained vector (~70 KiB).
        let filler = small + "/filler.bin"
        try Data(count: 232 * 1024).write(to: URL(fileURLWithPath: filler))
        var config = try dirs.config()
        config.vectorsDir = small
        let pairs = try DaemonFixtures.dataset().prefix(4).map { e in
            Repeng_V1_DatasetEntry.with { $0.positive = e.positive; $0.negative = e.negative }
        }
        try await withDaemon(config) { _ in
            try await withRepengClient(socket: dirs.socket) { client, _ in
                let request = Repeng_V1_TrainRequest.with { $0.name = "happy"; $0.dataset = pairs }
                await assertRPCError(.resourceExhausted) {
                    try await client.train(request) { r in for try await _ in r.messages {} }
                }
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: small), ["filler.bin"])
                // The daemon goes on serving; with space again the same request succeeds.
                try FileManager.default.removeItem(atPath: filler)
                try await client.train(request) { r in for try await _ in r.messages {} }
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: small), ["happy.gguf"])
                XCTAssertNoThrow(try ControlVector.load(path: small + "/happy.gguf"))
            }
        }
    }

    func testControlStateSurvivesKill9() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let args = ["--socket", dirs.socket, "--vectors", dirs.vectors, "--state", dirs.state,
                    "--model", "smollm2=" + (try DaemonFixtures.modelPath())]
        let first = try DaemonProcess(args, logPath: dirs.root + "/log1")
        defer { first.signal(SIGKILL) }
        try await first.waitUntilServing(dirs.socket)
        let steered = try await withRepengClient(socket: dirs.socket) { client, _ in
            _ = try await client.setControl(.with { $0.control = control([("happy", 8)], layers: Array((-20)...(-5)).map(Int32.init)) })
            return try await generateText(client, chatRequest(maxTokens: 12)).0
        }
        // Acknowledged, then killed at once.
        first.signal(SIGKILL)
        _ = await first.waitForExit(10)
        var st = stat()
        XCTAssertEqual(lstat(dirs.socket, &st), 0, "kill -9 leaves a stale socket file behind")

        // A new daemon replaces the stale socket and restores the control.
        let second = try DaemonProcess(args, logPath: dirs.root + "/log2")
        defer { second.signal(SIGKILL) }
        try await second.waitUntilServing(dirs.socket)
        let (got, again) = try await withRepengClient(socket: dirs.socket) { client, _ in
            (try await client.getControl(Repeng_V1_GetControlRequest()),
             try await generateText(client, chatRequest(maxTokens: 12)).0)
        }
        XCTAssertEqual(got.control.terms.first?.vector, "happy")
        XCTAssertEqual(got.control.terms.first?.coefficient, 8)
        XCTAssertEqual(again, steered)
        second.signal(SIGTERM)
        let exit = await second.waitForExit(30)
        XCTAssertEqual(exit, 0, second.log)
    }
}
