// Who may reach the daemon: socket directory 0750 and socket 0660 with the configured group,
// the uid allow-list checked against SO_PEERCRED, exercised by a client running as `nobody`.
import Foundation
import GRPCCore
import RepengDaemon
import RepengProtocol
import XCTest

final class SocketAccessTests: XCTestCase {
    let runuser = "/usr/sbin/runuser"

    /// repengctl copied where any user can run it.
    func publicRepengctl(_ dirs: TempDirs) throws -> String {
        let bin = dirs.root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let path = bin + "/repengctl"
        try FileManager.default.copyItem(atPath: try DaemonFixtures.executable("repengctl"), toPath: path)
        chmod(path, 0o755)
        chmod(bin, 0o755)
        chmod(dirs.root, 0o755)
        return path
    }

    func asNobody(_ ctl: String, _ args: [String]) async throws -> CLIResult {
        try await runProcess(runuser, ["-u", "nobody", "--", ctl] + args, env: ["REPENG_SOCKET": ""])
    }

    /// curl as nobody against the HTTP API's Unix socket: the status code.
    func curlAsNobody(_ socket: String, _ path: String) async throws -> CLIResult {
        try await runProcess(runuser, ["-u", "nobody", "--", "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                       "--unix-socket", socket, "http://localhost" + path])
    }

    func testGroupModesAndAllowList() async throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: runuser), getgrnam("nogroup") != nil else {
            throw XCTSkip("needs root, runuser and the nogroup group to act as another user")
        }
        let dirs = try TempDirs()
        defer { dirs.remove() }
        let ctl = try publicRepengctl(dirs)
        let socket = dirs.root + "/run/repengd.sock"
        var config = try dirs.config()
        config.socketPath = socket
        config.socketGroup = "nogroup"
        config.allowedUids = [4242]
        let logs = LogCapture()
        try await withDaemon(config, logs: logs) { _ in
            var st = stat()
            XCTAssertEqual(stat(dirs.root + "/run", &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o750)
            XCTAssertEqual(st.st_gid, 65534)
            XCTAssertEqual(lstat(socket, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o660)
            XCTAssertEqual(st.st_gid, 65534)

            // nobody reaches the socket through the group but is not on the allow-list.
            var r = try await asNobody(ctl, ["--socket", socket, "status"])
            XCTAssertEqual(r.status, 77, r.stdout + r.stderr)
            XCTAssertTrue(r.stderr.contains("uid 65534"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            // The daemon's own uid is always allowed.
            r = try await runProcess(ctl, ["--socket", socket, "status"])
            XCTAssertEqual(r.status, 0, r.stderr)

            // The HTTP socket beside it: same group and mode, same allow-list.
            let http = dirs.root + "/run/repengd-http.sock"
            XCTAssertEqual(lstat(http, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o660)
            XCTAssertEqual(st.st_gid, 65534)
            r = try await curlAsNobody(http, "/v1/models")
            XCTAssertEqual(r.stdout, "403", r.stderr)
        }
        XCTAssertTrue(logs.lines.contains { $0.contains("uid=65534") && $0.contains("permissionDenied") }, "\(logs.lines)")
        XCTAssertTrue(logs.lines.contains { $0.contains("http GET /v1/models peer=uid=65534") && $0.contains("status=403") }, "\(logs.lines)")

        // On the list: served.
        config.allowedUids = [65534]
        try await withDaemon(config) { _ in
            let r = try await asNobody(ctl, ["--socket", socket, "--json", "status"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let h = try await curlAsNobody(dirs.root + "/run/repengd-http.sock", "/v1/models")
            XCTAssertEqual(h.stdout, "200", h.stderr)
        }

        // Without the group the directory keeps other users out entirely.
        try? FileManager.default.removeItem(atPath: dirs.root + "/run")
        config.socketGroup = nil
        config.allowedUids = nil
        try await withDaemon(config) { _ in
            var st = stat()
            XCTAssertEqual(stat(dirs.root + "/run", &st), 0)
            XCTAssertEqual(st.st_gid, getgid())
            let r = try await asNobody(ctl, ["--socket", socket, "status"])
            XCTAssertEqual(r.status, 69, r.stderr)
        }
    }
}
