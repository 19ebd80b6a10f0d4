// Tests of VectorCatalog and DirectoryWatcher with real file operations on a temporary directory:
// editors, copies, renames, symlink swaps, directory replacement, queue overflow, own writes.
import Foundation
import Glibc
import Synchronization
import XCTest
@testable import RepengDaemon

/// Why the test loader rejected a file.
private struct FixtureFormatError: Error, CustomStringConvertible {
    let description: String
}

/// Test loader: a `.gguf` file holding `GOOD:<n>` is the value n; a `.json` file `{"v": n}` is n;
/// anything else is invalid.
private func parseFixture(_ bytes: [UInt8], file: String) throws -> Int {
    let text = String(decoding: bytes, as: UTF8.self)
    if file.hasSuffix(".json") {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let v = obj["v"] as? Int else { throw FixtureFormatError(description: "not {\"v\": n}") }
        return v
    }
    guard text.hasPrefix("GOOD:"), let v = Int(text.dropFirst(5)) else {
        throw FixtureFormatError(description: "not GOOD:<n> (\(bytes.count) bytes)")
    }
    return v
}

/// Lines given to `onChange`.
private final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ part: String) -> Bool { all.contains { $0.contains(part) } }
}

/// Things a test loader does while loading one file (simulating concurrent writers).
private final class LoadHooks: Sendable {
    private let hooks = Mutex<[String: @Sendable (String) -> Void]>([:])
    func set(_ file: String, _ hook: (@Sendable (String) -> Void)?) { hooks.withLock { $0[file] = hook } }
    func run(_ file: String, _ path: String) { hooks.withLock { $0[file] }?(path) }
}

/// A temporary root holding the vector directory `root/vectors`, and a running catalog on it.
private final class Fixture {
    let root: String
    let dir: String
    let logs = LogLines()
    let hooks = LoadHooks()
    let catalog: VectorCatalog<Int>

    static let options = DirectoryWatcher.Options(debounce: .milliseconds(30), maxDelay: .milliseconds(500),
                                                  writeHold: .seconds(1), retryInterval: .milliseconds(100))

    init(maxBytes: Int = 1 << 20, dirPath: String? = nil, createDir: Bool = true, pathLoader: Bool = false,
         periodicRescan: Duration? = nil, start: Bool = true, setup: (String) throws -> Void = { _ in }) throws {
        var options = Self.options
        options.periodicRescan = periodicRescan
        let root = NSTemporaryDirectory() + "vcat-" + UUID().uuidString
        let dir = dirPath.map { root + "/" + $0 } ?? root + "/vectors"
        self.root = root
        self.dir = dir
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if createDir { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try setup(dir)
        let logs = self.logs, hooks = self.hooks
        if pathLoader {
            catalog = VectorCatalog(directory: dir, maxFileBytes: maxBytes, options: options,
                                    onChange: { logs.append($0) }, loadPath: { path in
                let file = URL(fileURLWithPath: path).lastPathComponent
                hooks.run(file, path)
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                return try parseFixture([UInt8](data), file: file)
            })
        } else {
            catalog = VectorCatalog(directory: dir, maxFileBytes: maxBytes, options: options,
                                    onChange: { logs.append($0) }, load: { bytes, file in
                hooks.run(file, dir + "/" + file)
                return try parseFixture(bytes, file: file)
            })
        }
        if start { try catalog.start() }
    }

    deinit {
        catalog.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    func path(_ file: String) -> String { dir + "/" + file }

    /// open(O_CREAT|O_TRUNC) / write / close.
    func write(_ file: String, _ content: String) { writeFile(path(file), content) }

    /// Temp file + fsync + rename, as the daemon's durable writes do.
    func writeDurably(_ file: String, _ content: String) {
        let tmp = path(".repengd-tmp-\(UUID().uuidString)-\(file)")
        writeFile(tmp, content, sync: true)
        XCTAssertEqual(rename(tmp, path(file)), 0)
    }

    /// Waits until the catalog has handled every change made so far.
    func settle(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(catalog.waitForIdle(timeout: .seconds(5)), "catalog did not settle", file: file, line: line)
    }

    func value(_ name: String) -> Int? { try? catalog.value(named: name).value }
    func version(_ name: String) -> Int? { try? catalog.value(named: name).version }
    func error(_ name: String) -> VectorCatalogError? { catalog.entry(named: name)?.error }
    var names: [String] { catalog.entries().map(\.name) }
}

private func writeFile(_ path: String, _ content: String, sync: Bool = false) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    XCTAssertGreaterThanOrEqual(fd, 0, "open \(path): \(String(cString: strerror(errno)))")
    guard fd >= 0 else { return }
    writeAll(fd, Array(content.utf8))
    if sync { fsync(fd) }
    close(fd)
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + off }, bytes.count - off) }
        guard n > 0 else { XCTFail("write failed"); return }
        off += n
    }
}

/// Polls `condition` until it holds or `timeout` passes.
private func eventually(timeout: Duration = .seconds(5), _ what: String, file: StaticString = #filePath,
                        line: UInt = #line, _ condition: () -> Bool) {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { XCTFail("timed out waiting for: \(what)", file: file, line: line); return }
        usleep(5_000)
    }
}

final class VectorCatalogTests: XCTestCase {
    func testPlainWriteLoadsAndReloads() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.version("happy"), 1)
        XCTAssertEqual(try f.catalog.value(named: "happy").file, "happy.gguf")
        f.write("happy.gguf", "GOOD:2")
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertEqual(f.version("happy"), 2)
        XCTAssertEqual(f.catalog.loadCount, 2)
        XCTAssertTrue(f.logs.contains("loaded happy (v1) from happy.gguf"), "\(f.logs.all)")
        XCTAssertTrue(f.logs.contains("loaded happy (v2) from happy.gguf"), "\(f.logs.all)")
        let e = try XCTUnwrap(f.catalog.entries().first)
        XCTAssertEqual(e.name, "happy")
        XCTAssertEqual(e.size, 6)
        XCTAssertNil(e.error)
    }

    func testInitialScanAndGGUFWinsOverJSON() throws {
        let f = try Fixture(start: false) { dir in
            writeFile(dir + "/a.gguf", "GOOD:1")
            writeFile(dir + "/a.json", #"{"v": 2}"#)
            writeFile(dir + "/b.json", #"{"v": 3}"#)
        }
        try f.catalog.start()  // the initial scan is synchronous
        XCTAssertEqual(f.names, ["a", "b"])
        XCTAssertEqual(f.value("a"), 1)
        XCTAssertEqual(f.value("b"), 3)
        XCTAssertEqual(try f.catalog.value(named: "a").file, "a.gguf")
        XCTAssertEqual(unlink(f.path("a.gguf")), 0)
        f.settle()
        XCTAssertEqual(f.value("a"), 2)
        XCTAssertEqual(try f.catalog.value(named: "a").file, "a.json")
        XCTAssertEqual(f.version("a"), 2)
        XCTAssertThrowsError(try f.catalog.value(named: "nope")) {
            XCTAssertEqual($0 as? VectorCatalogError, .notFound(name: "nope", directory: f.catalog.directory))
        }
        XCTAssertThrowsError(try f.catalog.value(named: "../etc")) {
            XCTAssertEqual($0 as? VectorCatalogError, .invalidName("../etc"))
        }
    }

    func testSlowWriterNeverInstallsHalfFile() throws {
        let f = try Fixture()
        f.write("slow.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(f.value("slow"), 1)
        for (file, initial) in [("slow.gguf", 1), ("fresh.gguf", nil as Int?)] {
            let done = DispatchSemaphore(value: 0)
            let path = f.path(file)
            Thread {
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                writeAll(fd, Array("GOO".utf8))
                usleep(300_000)
                writeAll(fd, Array("D:2".utf8))
                close(fd)
                done.signal()
            }.start()
            let name = String(file.dropLast(5))
            let loads = f.catalog.loadCount
            while done.wait(timeout: .now() + .milliseconds(5)) == .timedOut {
                let v = f.value(name)
                XCTAssertTrue(v == initial || v == 2, "\(file) served \(String(describing: v)) while being written")
            }
            f.settle()
            XCTAssertEqual(f.value(name), 2)
            XCTAssertNil(f.error(name))
            XCTAssertEqual(f.catalog.loadCount, loads + 1, "a file still open for writing is held back, not read half-written")
        }
    }

    func testTempFileAndRename() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        writeFile(f.path(".happy.gguf.tmp123"), "GOOD:2")
        XCTAssertEqual(rename(f.path(".happy.gguf.tmp123"), f.path("happy.gguf")), 0)
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertEqual(f.names, ["happy"])
        XCTAssertEqual(f.catalog.loadCount, 2)
    }

    func testVimStyleSave() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        // vim: probe file 4913, swap file, backup by rename, write new file, delete backup.
        writeFile(f.path("4913"), "")
        unlink(f.path("4913"))
        writeFile(f.path(".happy.gguf.swp"), "swap")
        XCTAssertEqual(rename(f.path("happy.gguf"), f.path("happy.gguf~")), 0)
        f.write("happy.gguf", "GOOD:2")
        unlink(f.path("happy.gguf~"))
        unlink(f.path(".happy.gguf.swp"))
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertNil(f.error("happy"))
        XCTAssertEqual(f.names, ["happy"])
        XCTAssertFalse(f.logs.contains("rescanning"), "\(f.logs.all)")
    }

    func testCopyOverExistingFile() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        writeFile(f.root + "/src.gguf", "GOOD:5")
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = [f.root + "/src.gguf", f.path("happy.gguf")]
        try cp.run()
        cp.waitUntilExit()
        XCTAssertEqual(cp.terminationStatus, 0)
        f.settle()
        XCTAssertEqual(f.value("happy"), 5)
        XCTAssertEqual(f.version("happy"), 2)
    }

    func testTruncateThenRewrite() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        f.write("happy.gguf", "")
        f.settle()
        XCTAssertEqual(f.value("happy"), 1, "the truncated file must not replace the last good version")
        XCTAssertEqual(f.version("happy"), 1)
        guard case .invalid(file: "happy.gguf", reason: _)? = f.error("happy") else {
            return XCTFail("expected an invalid-file error, got \(String(describing: f.error("happy")))")
        }
        XCTAssertTrue(f.logs.contains("keeping version 1"), "\(f.logs.all)")
        f.write("happy.gguf", "GOOD:2")
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertEqual(f.version("happy"), 2)
        XCTAssertNil(f.error("happy"))
    }

    func testDeleteThenRecreate() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(unlink(f.path("happy.gguf")), 0)
        f.settle()
        XCTAssertThrowsError(try f.catalog.value(named: "happy"))
        XCTAssertEqual(f.names, [])
        XCTAssertTrue(f.logs.contains("removed happy"))
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.version("happy"), 2, "a re-created file is a new version")
    }

    func testRenameOutOfDirectoryAndBack() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(rename(f.path("happy.gguf"), f.root + "/away.gguf"), 0)
        f.settle()
        XCTAssertEqual(f.names, [])
        XCTAssertEqual(rename(f.root + "/away.gguf", f.path("happy.gguf")), 0)
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.version("happy"), 2)
    }

    func testIgnoredNames() throws {
        let f = try Fixture()
        for file in [".hidden.gguf", "happy.gguf~", "happy.gguf.swp", ".happy.gguf.swx", "x.swo", "4913", "notes.txt",
                     "has space.gguf", ".repengd-tmp-1234-happy.gguf", "x.GGUF", "x.gguf.bak", ".gguf",
                     String(repeating: "a", count: 65) + ".gguf", "é.gguf"] {
            f.write(file, "GOOD:1")
        }
        f.write(String(repeating: "b", count: 64) + ".json", #"{"v": 64}"#)
        f.settle()
        XCTAssertEqual(f.names, [String(repeating: "b", count: 64)])
        XCTAssertEqual(f.catalog.loadCount, 1)
        f.catalog.rescan()
        XCTAssertEqual(f.catalog.loadCount, 1, "a rescan of an unchanged directory loads nothing")
    }

    func testDirectoryRemovedAndRecreated() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.write("sad.gguf", "GOOD:2")
        f.settle()
        try FileManager.default.removeItem(atPath: f.dir)
        f.settle()
        XCTAssertEqual(f.names, [])
        try FileManager.default.createDirectory(atPath: f.dir, withIntermediateDirectories: false)
        f.write("happy.gguf", "GOOD:3")
        f.settle()
        XCTAssertEqual(f.names, ["happy"])
        XCTAssertEqual(f.value("happy"), 3)
        XCTAssertEqual(f.version("happy"), 2)
        // Still watched: later writes in the new directory are seen.
        f.write("sad.gguf", "GOOD:4")
        f.settle()
        XCTAssertEqual(f.value("sad"), 4)
    }

    func testDirectoryRenamedAwayAndBack() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(rename(f.dir, f.root + "/elsewhere"), 0)
        f.settle()
        XCTAssertEqual(f.names, [])
        // Writes in the moved-away directory are not ours.
        writeFile(f.root + "/elsewhere/other.gguf", "GOOD:7")
        f.settle()
        XCTAssertEqual(f.names, [])
        XCTAssertEqual(rename(f.root + "/elsewhere", f.dir), 0)
        f.settle()
        XCTAssertEqual(f.names, ["happy", "other"])
        XCTAssertEqual(f.version("happy"), 2)
        f.write("happy.gguf", "GOOD:9")
        f.settle()
        XCTAssertEqual(f.value("happy"), 9)
    }

    func testDirectoryThatAppearsLater() throws {
        // Neither the directory nor its parent exists at start.
        let f = try Fixture(dirPath: "later/vectors", createDir: false)
        XCTAssertEqual(f.names, [])
        try FileManager.default.createDirectory(atPath: f.dir, withIntermediateDirectories: true)
        f.write("happy.gguf", "GOOD:1")
        eventually("the directory is picked up") { f.value("happy") == 1 }
        f.write("happy.gguf", "GOOD:2")
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
    }

    func testAncestorRenamedIsCaughtByPeriodicCheck() throws {
        // Renaming a directory above the parent sends no event to either watch; the periodic
        // check re-resolves the path and moves the watches.
        let f = try Fixture(dirPath: "a/b/vectors", periodicRescan: .milliseconds(200))
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(rename(f.root + "/a", f.root + "/old-a"), 0)
        try FileManager.default.createDirectory(atPath: f.dir, withIntermediateDirectories: true)
        f.write("calm.gguf", "GOOD:2")
        eventually("the new directory is scanned") { f.names == ["calm"] }
        f.write("calm.gguf", "GOOD:3")
        f.settle()
        XCTAssertEqual(f.value("calm"), 3)
        writeFile(f.root + "/old-a/b/vectors/happy.gguf", "GOOD:9")
        f.settle()
        XCTAssertEqual(f.names, ["calm"])
    }

    func testSymlinkedDirectorySwapped() throws {
        // The directory path is itself a symlink, replaced atomically by another.
        let f = try Fixture(dirPath: "current", createDir: false) { dir in
            let root = URL(fileURLWithPath: dir).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: root + "/v1", withIntermediateDirectories: false)
            writeFile(root + "/v1/happy.gguf", "GOOD:1")
            symlink("v1", dir)
        }
        XCTAssertEqual(f.value("happy"), 1)
        try FileManager.default.createDirectory(atPath: f.root + "/v2", withIntermediateDirectories: false)
        writeFile(f.root + "/v2/happy.gguf", "GOOD:2")
        symlink("v2", f.root + "/current.new")
        XCTAssertEqual(rename(f.root + "/current.new", f.dir), 0)
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        f.write("happy.gguf", "GOOD:3")  // lands in v2, now watched
        f.settle()
        XCTAssertEqual(f.value("happy"), 3)
    }

    func testConfigMapDataSwap() throws {
        // Kubernetes ConfigMap volume layout: NAME.gguf -> ..data/NAME.gguf, ..data -> ..<timestamp>.
        let f = try Fixture { dir in
            try FileManager.default.createDirectory(atPath: dir + "/..2026_11_27_01", withIntermediateDirectories: false)
            writeFile(dir + "/..2026_11_27_01/happy.gguf", "GOOD:1")
            writeFile(dir + "/..2026_11_27_01/calm.json", #"{"v": 10}"#)
            symlink("..2026_11_27_01", dir + "/..data")
            symlink("..data/happy.gguf", dir + "/happy.gguf")
            symlink("..data/calm.json", dir + "/calm.json")
        }
        XCTAssertEqual(f.names, ["calm", "happy"])
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.value("calm"), 10)
        // The update: a new timestamped directory, a new ..data symlink renamed over the old one,
        // the old directory removed.
        try FileManager.default.createDirectory(atPath: f.path("..2026_11_27_02"), withIntermediateDirectories: false)
        writeFile(f.path("..2026_11_27_02/happy.gguf"), "GOOD:2")
        writeFile(f.path("..2026_11_27_02/calm.json"), #"{"v": 10}"#)
        symlink("..2026_11_27_02", f.path("..data_tmp"))
        XCTAssertEqual(rename(f.path("..data_tmp"), f.path("..data")), 0)
        try FileManager.default.removeItem(atPath: f.path("..2026_11_27_01"))
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertEqual(f.version("happy"), 2)
        XCTAssertEqual(f.value("calm"), 10)
        XCTAssertEqual(f.names, ["calm", "happy"])
        // Removing ..data leaves dangling symlinks: the names go.
        XCTAssertEqual(unlink(f.path("..data")), 0)
        f.settle()
        XCTAssertEqual(f.names, [])
    }

    func testSymlinkInsideFollowedOutsideRefused() throws {
        let f = try Fixture()
        writeFile(f.root + "/outside.gguf", "GOOD:9")
        f.write("real.gguf", "GOOD:1")
        symlink("real.gguf", f.path("alias.gguf"))
        symlink("../outside.gguf", f.path("evil.gguf"))
        symlink(f.root + "/outside.gguf", f.path("evil2.json"))
        f.settle()
        XCTAssertEqual(f.value("alias"), 1)
        XCTAssertEqual(f.names, ["alias", "evil", "evil2", "real"])
        for name in ["evil", "evil2"] {
            XCTAssertNil(f.value(name))
            guard case .outsideDirectory? = f.error(name) else { return XCTFail("\(name): \(String(describing: f.error(name)))") }
            XCTAssertThrowsError(try f.catalog.value(named: name))
        }
        XCTAssertEqual(f.catalog.loadCount, 2, "files outside the directory are never read")
    }

    func testInvalidFileNeverReplacesLastGoodAndIsLaterFixed() throws {
        let f = try Fixture()
        f.write("happy.gguf", "GOOD:1")
        f.write("calm.json", #"{"v": 5}"#)
        f.settle()
        f.write("happy.gguf", "garbage")
        f.write("calm.json", #"{"v": "#)
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.version("happy"), 1)
        XCTAssertEqual(f.value("calm"), 5)
        XCTAssertNotNil(f.error("happy"))
        XCTAssertNotNil(f.error("calm"))
        XCTAssertEqual(f.catalog.entry(named: "happy")?.valueFile, "happy.gguf")
        XCTAssertEqual(f.catalog.entry(named: "happy")?.size, 7)
        XCTAssertTrue(f.logs.contains("happy.gguf: invalid (not GOOD:<n> (7 bytes)); keeping version 1"), "\(f.logs.all)")
        // Unchanged invalid file: not loaded again by a rescan.
        let loads = f.catalog.loadCount
        f.catalog.rescan()
        XCTAssertEqual(f.catalog.loadCount, loads)
        f.write("happy.gguf", "GOOD:3")
        f.write("calm.json", #"{"v": 6}"#)
        f.settle()
        XCTAssertEqual(f.value("happy"), 3)
        XCTAssertEqual(f.version("happy"), 2)
        XCTAssertNil(f.error("happy"))
        XCTAssertEqual(f.value("calm"), 6)
        XCTAssertNil(f.error("calm"))
        // A bad NAME.gguf shadowing a good NAME.json: the JSON value keeps serving; when the bad
        // file goes, the JSON file is current again without being read again.
        f.write("mixed.json", #"{"v": 8}"#)
        f.settle()
        f.write("mixed.gguf", "bad")
        f.settle()
        XCTAssertEqual(f.value("mixed"), 8)
        XCTAssertEqual(f.catalog.entry(named: "mixed")?.file, "mixed.gguf")
        XCTAssertEqual(f.catalog.entry(named: "mixed")?.valueFile, "mixed.json")
        XCTAssertTrue(f.logs.contains("mixed.gguf: invalid (not GOOD:<n> (3 bytes)); keeping version 1 from mixed.json"),
                      "\(f.logs.all)")
        let before = f.catalog.loadCount
        unlink(f.path("mixed.gguf"))
        f.settle()
        XCTAssertEqual(f.catalog.loadCount, before)
        XCTAssertNil(f.error("mixed"))
        XCTAssertEqual(f.catalog.entry(named: "mixed")?.file, "mixed.json")
        XCTAssertEqual(f.version("mixed"), 1)
        // A name whose only file is invalid has an error entry and no value.
        f.write("broken.gguf", "nope")
        f.settle()
        XCTAssertEqual(f.catalog.entry(named: "broken")?.version, 0)
        XCTAssertThrowsError(try f.catalog.value(named: "broken")) {
            guard case .invalid(file: "broken.gguf", reason: _)? = $0 as? VectorCatalogError else { return XCTFail("\($0)") }
        }
    }

    func testFileChangedWhileLoadingIsRetried() throws {
        let f = try Fixture()
        // The first load of happy.gguf sees the file replaced under it; the catalog must not
        // install what it read then, and must pick up the replacement.
        let path = f.path("happy.gguf")
        let once = Mutex(true)
        f.hooks.set("happy.gguf") { _ in
            if once.withLock({ let first = $0; $0 = false; return first }) {
                writeFile(path + ".new~", "GOOD:2")
                rename(path + ".new~", path)
            }
        }
        f.write("happy.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(f.value("happy"), 2)
        XCTAssertEqual(f.version("happy"), 1, "the file read while it changed was never installed")
        // A file deleted while it is being loaded goes away.
        f.hooks.set("gone.gguf") { p in unlink(p) }
        f.write("gone.gguf", "GOOD:3")
        f.settle()
        XCTAssertEqual(f.names, ["happy"])
    }

    func testFileThatNeverStopsChangingIsReportedUnstable() throws {
        let f = try Fixture()
        let path = f.path("busy.gguf")
        let counter = Mutex(0)
        f.hooks.set("busy.gguf") { _ in
            let n = counter.withLock { $0 += 1; return $0 }
            writeFile(path + "~", "GOOD:\(n)")
            rename(path + "~", path)
        }
        f.write("busy.gguf", "GOOD:0")
        eventually("the file is reported unstable") { f.error("busy") == .unstable(file: "busy.gguf") }
        f.hooks.set("busy.gguf", nil)
        XCTAssertNil(f.value("busy"))
    }

    /// Out of descriptors when a valid file arrives: the entry reports the error, and the file
    /// loads once descriptors are free again, without being touched.
    func testFileReadDuringDescriptorExhaustionLoadsLater() throws {
        let f = try Fixture()
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        // A low soft limit, so that filling it takes a few descriptors, not a million.
        var open = 0
        for fd in 0..<4096 where fcntl(Int32(fd), F_GETFD) >= 0 { open = fd + 1 }
        var low = saved
        low.rlim_cur = rlim_t(open + 32)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low), 0)
        var held: [Int32] = []
        defer {
            for fd in held { close(fd) }
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        }
        while true {
            let fd = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            held.append(fd)
        }
        XCTAssertEqual(errno, EMFILE)
        // One descriptor to write the file with, then none left for the catalog's read.
        close(held.removeLast())
        f.write("late.gguf", "GOOD:7")
        held.append(Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC))
        let deadline = Date().addingTimeInterval(5)
        while f.error("late") == nil && Date() < deadline { usleep(20_000) }
        XCTAssertTrue("\(f.error("late").map { "\($0)" } ?? "no error")".contains("Too many open files"), "\(f.logs.all)")
        XCTAssertNil(f.value("late"))
        for fd in held { close(fd) }
        held.removeAll()
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        let loaded = Date().addingTimeInterval(5)
        while f.value("late") == nil && Date() < loaded { usleep(20_000) }
        XCTAssertEqual(f.value("late"), 7, "\(f.logs.all)")
        XCTAssertNil(f.error("late"))
    }

    func testQueueOverflowConverges() throws {
        let limit = (try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 16384
        let f = try Fixture()
        for i in 0 ..< 40 { f.write("keep\(i).gguf", "GOOD:\(i)") }
        f.settle()
        f.catalog.watcher.setReadingPaused(true)
        // Each new file queues at least create, modify and close-write events.
        let count = limit <= 30_000 ? limit / 3 + 200 : 2_000
        for i in 0 ..< count { f.write("burst\(i).json", #"{"v": \#(i)}"#) }
        for i in 0 ..< 20 { unlink(f.path("keep\(i).gguf")) }
        for i in 20 ..< 40 { f.write("keep\(i).gguf", "GOOD:\(i + 1000)") }
        f.catalog.watcher.setReadingPaused(false)
        XCTAssertTrue(f.catalog.waitForIdle(timeout: .seconds(10)))
        if limit <= 30_000 {
            XCTAssertTrue(f.logs.contains("overflowed"), "expected a queue overflow (limit \(limit))")
        }
        let entries = f.catalog.entries()
        XCTAssertEqual(entries.count, count + 20)
        XCTAssertTrue(entries.allSatisfy { $0.error == nil && $0.value != nil })
        for i in [0, count / 2, count - 1] { XCTAssertEqual(f.value("burst\(i)"), i) }
        for i in 0 ..< 20 { XCTAssertNil(f.catalog.entry(named: "keep\(i)")) }
        for i in 20 ..< 40 { XCTAssertEqual(f.value("keep\(i)"), i + 1000) }
        // Converged: a rescan finds nothing to load.
        let loads = f.catalog.loadCount
        f.catalog.rescan()
        XCTAssertEqual(f.catalog.loadCount, loads)
    }

    func testOwnWriteIsNotLoadedTwice() throws {
        let f = try Fixture()
        f.writeDurably("mine.gguf", "GOOD:42")
        XCTAssertEqual(try f.catalog.install(name: "mine", value: 42, path: f.path("mine.gguf")), 1)
        f.settle()
        XCTAssertEqual(f.catalog.loadCount, 0, "the watcher must not load a file the daemon installed")
        XCTAssertEqual(f.value("mine"), 42)
        XCTAssertEqual(f.version("mine"), 1)
        // Overwrite by the daemon: a new version, still no load.
        f.writeDurably("mine.gguf", "GOOD:43")
        XCTAssertEqual(try f.catalog.install(name: "mine", value: 43, path: f.path("mine.gguf")), 2)
        f.settle()
        f.catalog.rescan()
        XCTAssertEqual(f.catalog.loadCount, 0)
        XCTAssertEqual(f.version("mine"), 2)
        // An outside write is loaded (once).
        f.write("mine.gguf", "GOOD:44")
        f.settle()
        XCTAssertEqual(f.value("mine"), 44)
        XCTAssertEqual(f.catalog.loadCount, 1)
        XCTAssertThrowsError(try f.catalog.install(name: "mine", value: 1, path: f.root + "/mine.gguf")) {
            guard case .notInDirectory? = $0 as? VectorCatalogError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try f.catalog.install(name: "mine", value: 1, path: f.path("other.gguf")))
    }

    func testFilesLargerThanTheLimit() throws {
        let f = try Fixture(maxBytes: 64)
        f.write("big.gguf", "GOOD:1")
        f.settle()
        XCTAssertEqual(f.value("big"), 1)
        f.write("big.gguf", "GOOD:2" + String(repeating: " ", count: 100))
        f.write("huge.gguf", "GOOD:3" + String(repeating: " ", count: 100))
        f.settle()
        XCTAssertEqual(f.value("big"), 1, "the last good version keeps serving")
        XCTAssertEqual(f.error("big"), .tooLarge(file: "big.gguf", size: 106, limit: 64))
        XCTAssertEqual(f.error("huge"), .tooLarge(file: "huge.gguf", size: 106, limit: 64))
        XCTAssertNil(f.value("huge"))
        XCTAssertEqual(f.catalog.loadCount, 1, "oversized files are not read")
    }

    func testOddEntriesNeverCrash() throws {
        let f = try Fixture()
        f.write("ok.gguf", "GOOD:1")
        XCTAssertEqual(mkfifo(f.path("fifo.gguf"), 0o644), 0)
        XCTAssertEqual(mkdir(f.path("dir.gguf"), 0o755), 0)
        XCTAssertEqual(mkdir(f.path("sub"), 0o755), 0)
        symlink("missing.gguf", f.path("dangling.gguf"))
        symlink("loop.gguf", f.path("loop.gguf"))
        symlink("sub", f.path("linkdir.json"))
        // A unix socket named like a vector.
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let sockPath = Array(f.path("s.gguf").utf8)
        if sockPath.count < MemoryLayout.size(ofValue: addr.sun_path) {
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in sockPath.enumerated() { raw[i] = b }
            }
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        defer { close(sock) }
        // A name that is not UTF-8, and an unreadable file.
        var odd = Array(f.dir.utf8).map { CChar(bitPattern: $0) }
        odd += [0x2F, -1, -2, 0x2E, 0x67, 0x67, 0x75, 0x66, 0].map { CChar($0) }
        let fd = open(odd, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        f.write("locked.gguf", "GOOD:5")
        chmod(f.path("locked.gguf"), 0)
        f.settle()
        f.catalog.rescan()
        XCTAssertEqual(f.value("ok"), 1)
        for name in ["fifo", "dir", "dangling", "loop", "linkdir", "s"] {
            XCTAssertNil(f.catalog.entry(named: name), name)
        }
        // Root reads mode-0 files; anyone else gets an error entry. Either way, no crash.
        if getuid() == 0 { XCTAssertEqual(f.value("locked"), 5) } else { XCTAssertNotNil(f.error("locked")) }
        // Entries appearing and vanishing during scans.
        for i in 0 ..< 200 {
            f.write("v\(i).gguf", "GOOD:\(i)")
            if i % 2 == 0 { unlink(f.path("v\(i).gguf")) }
            if i % 50 == 0 { f.catalog.rescan() }
        }
        f.settle()
        XCTAssertEqual(f.catalog.entries().filter { $0.name.hasPrefix("v") }.count, 100)
    }

    func testPathLoader() throws {
        let f = try Fixture(pathLoader: true)
        f.write("happy.gguf", "GOOD:1")
        symlink("happy.gguf", f.path("alias.gguf"))
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertEqual(f.value("alias"), 1)
        f.write("happy.gguf", "bad")
        f.settle()
        XCTAssertEqual(f.value("happy"), 1)
        XCTAssertNotNil(f.error("happy"))
        XCTAssertNotNil(f.error("alias"))
    }

    func testWatcherCoalescesEvents() throws {
        let root = NSTemporaryDirectory() + "vwatch-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let watcher = DirectoryWatcher(directory: root, options: Fixture.options)
        let changes = Mutex<[DirectoryWatcher.Change]>([])
        try watcher.start { c in changes.withLock { $0.append(c) } }
        defer { watcher.stop() }
        XCTAssertNil(watcher.pollingReason)
        for i in 0 ..< 5 { writeFile(root + "/f\(i).gguf", "GOOD:\(i)") }
        unlink(root + "/f4.gguf")
        XCTAssertTrue(watcher.waitForIdle(timeout: .seconds(5)))
        let got = changes.withLock { $0 }
        XCTAssertEqual(got.count, 1, "\(got)")
        guard case .entries(let entries)? = got.first else { return XCTFail("\(got)") }
        XCTAssertEqual(Set(entries.keys), Set((0 ..< 5).map { "f\($0).gguf" }))
        XCTAssertEqual(entries["f0.gguf"], [.created, .modified, .written])
        XCTAssertTrue(entries["f4.gguf"]?.contains(.deleted) ?? false)
        watcher.stop()
        XCTAssertFalse(watcher.isRunning)
    }
}
