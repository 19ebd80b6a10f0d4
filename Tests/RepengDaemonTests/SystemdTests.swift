// repengd under systemd's protocols without a running systemd: the unit files checked offline
// (systemd-analyze verify / security), sd_notify against a datagram socket standing in for
// NOTIFY_SOCKET (STATUS while loading, READY only once the socket serves, watchdog pings,
// STOPPING), and socket activation through systemd-socket-activate.
import Foundation
import RepengDaemon
import RepengProtocol
import XCTest

final class SystemdTests: XCTestCase {
    func testUnitFilesVerifyAndAreHardened() async throws {
        let root = DaemonFixtures.repoRoot.path
        let r = try await runProcess("/bin/bash", [root + "/scripts/check-units.sh", try DaemonFixtures.executable("repengd")])
        if r.status == 2 { throw XCTSkip("systemd tools missing: \(r.stderr)") }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        print(r.stdout)
        let score = r.stdout.split(separator: "\n").first { $0.hasPrefix("exposure: ") }.flatMap { Double($0.dropFirst(10)) }
        XCTAssertLessThanOrEqual(try XCTUnwrap(score, r.stdout), 2.0)
    }

    /// A bound datagram socket that collects notification messages on a thread of its own.
    final class NotifyListener: @unchecked Sendable {
        let path: String
        let fd: Int32
        private let lock = NSLock()
        private var received: [(Double, String)] = []
        private var open = true

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, rc == 0 else { throw POSIXError(.EADDRINUSE) }
            var tv = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let t = Thread { [self] in
                var buf = [UInt8](repeating: 0, count: 4096)
                while lock.withLock({ open }) {
                    let n = recv(fd, &buf, buf.count, 0)
                    if n > 0 {
                        let m = String(decoding: buf[0..<n], as: UTF8.self)
                        lock.withLock { received.append((Date().timeIntervalSince1970, m)) }
                    }
                }
            }
            t.start()
        }

        var messages: [String] { lock.withLock { received.map(\.1) } }

        func close() {
            lock.withLock { open = false }
            Thread.sleep(forTimeInterval: 0.2)
            Glibc.close(fd)
        }

        /// Waits until a message contains `text` (at most `seconds`).
        func wait(for text: String, _ seconds: Double) async -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if messages.contains(where: { $0.contains(text) }) { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }
    }

    func testNotifyReadyStatusWatchdogAndStopping() async throws {
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let listener = try NotifyListener(path: dirs.root + "/notify.sock")
        defer { listener.close() }
        let daemon = try DaemonProcess(["--socket", dirs.socket, "--vectors", dirs.vectors, "--state", dirs.state,
                                        "--model", "smollm2=" + (try DaemonFixtures.modelPath())],
                                       env: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"],
                                       logPath: dirs.root + "/log")
        defer { daemon.signal(SIGKILL) }
        let ready = await listener.wait(for: "READY=1", 120)
        XCTAssertTrue(ready, "no READY=1; got \(listener.messages); log: \(daemon.log)")
        // READY=1 came only once the model was resident and the socket accepted calls.
        let status = try await withRepengClient(socket: dirs.socket) { c, _ in try await c.status(Repeng_V1_StatusRequest()) }
        XCTAssertEqual(status.defaultModel, "smollm2")
        let msgs = listener.messages
        let readyIndex = try XCTUnwrap(msgs.firstIndex { $0.contains("READY=1") })
        XCTAssertTrue(msgs[..<readyIndex].contains { $0.contains("STATUS=loading model smollm2") }, "\(msgs)")
        XCTAssertTrue(msgs[readyIndex].contains("STATUS=serving smollm2"), msgs[readyIndex])
        XCTAssertTrue(daemon.log.contains("loaded model smollm2"))

        // Watchdog pings at half the 1 s interval.
        let before = listener.messages.filter { $0 == "WATCHDOG=1" }.count
        try await Task.sleep(for: .milliseconds(1600))
        let pings = listener.messages.filter { $0 == "WATCHDOG=1" }.count - before
        XCTAssertGreaterThanOrEqual(pings, 2, "\(listener.messages)")

        daemon.signal(SIGTERM)
        let stopping = await listener.wait(for: "STOPPING=1", 20)
        XCTAssertTrue(stopping, "\(listener.messages)")
        let exit = await daemon.waitForExit(30)
        XCTAssertEqual(exit, 0, daemon.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dirs.socket), "a socket it bound itself is removed at exit")
    }

    func testSocketActivation() async throws {
        let activate = "/usr/bin/systemd-socket-activate"
        guard FileManager.default.isExecutableFile(atPath: activate) else { throw XCTSkip("\(activate) missing (apt install systemd)") }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        try dirs.installHappyVector()
        let socket = dirs.root + "/activated.sock"
        // systemd-socket-activate binds and listens, then execs repengd with LISTEN_FDS=1.
        // It passes on only the variables named with -E (sanitizer settings too, for runs under them).
        let passed = ["OPENBLAS_CORETYPE", "ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"]
            .filter { ProcessInfo.processInfo.environment[$0] != nil }.flatMap { ["-E", $0] }
        let daemon = try DaemonProcess(["-l", socket] + passed + [try DaemonFixtures.executable("repengd"),
                                        "--socket", dirs.root + "/unused.sock", "--vectors", dirs.vectors, "--state", dirs.state,
                                        "--model", "smollm2=" + (try DaemonFixtures.modelPath())],
                                       executable: activate, logPath: dirs.root + "/log")
        defer { daemon.signal(SIGKILL) }
        try await daemon.waitUntilServing(socket)
        let (status, text) = try await withRepengClient(socket: socket) { c, _ in
            (try await c.status(Repeng_V1_StatusRequest()),
             try await generateText(c, chatRequest(maxTokens: 8, control: control([("happy", 4)]))).0)
        }
        XCTAssertEqual(status.socket, socket)
        XCTAssertEqual(status.pid, daemon.pid, "repengd runs in place of systemd-socket-activate (same pid)")
        XCTAssertFalse(text.isEmpty)
        XCTAssertTrue(daemon.log.contains("passed by the service manager"), daemon.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dirs.root + "/unused.sock"), "it bound a socket of its own")
        daemon.signal(SIGTERM)
        let exit = await daemon.waitForExit(30)
        XCTAssertEqual(exit, 0, daemon.log)
        // The passed socket belongs to the manager: the daemon leaves it in place.
        var st = stat()
        XCTAssertEqual(lstat(socket, &st), 0, "the activated socket was removed")
    }
}
