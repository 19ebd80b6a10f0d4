// Fuzz target: the daemon's TOML reader (`TOML.parse`), the config built on it
// (`DaemonConfig.parseTOML(_:path:)`) and the file reader in front of it
// (`DaemonConfig.readFile(_:)`, which also checks the size and UTF-8), fed the same bytes through a
// file in /dev/shm.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RepengDaemon

/// One scratch file per process (libFuzzer's -fork / -jobs run several).
let scratchPath: String = {
    let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return "\(dir)/repeng-fuzz-config-\(getpid()).toml"
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzConfigInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = scratchPath
    atexit { _ = unlink(scratchPath) }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigTOML(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var parsed: DaemonConfig.FileSettings?
    if let text = String(validating: bytes, as: UTF8.self) {
        checkDocument(text)
        do {
            let s = try DaemonConfig.parseTOML(text, path: scratchPath)
            check(s)
            parsed = s
        } catch {
            _ = "\(error)"
        }
    }

    guard writeScratch(bytes) else { return 0 }
    do {
        let s = try DaemonConfig.readFile(scratchPath)
        precondition(parsed == s, "readFile accepted a file that parseTOML gives differently (or rejects)")
    } catch {
        precondition(parsed == nil, "readFile rejected a file that parseTOML accepts: \(error)")
    }
    return 0
}

/// The TOML reader: an error has a position inside the text; a document parses the same twice.
func checkDocument(_ text: String) {
    do {
        let t = try TOML.parse(text)
        precondition(try! TOML.parse(text) == t || containsNaN(.table(t)), "two parses differ")
        _ = "\(t)"
    } catch {
        let lines = text.utf8.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        precondition(error.line >= 1 && error.line <= lines && error.column >= 1, "error position \(error.line):\(error.column) outside the text")
        _ = error.description
    }
}

func containsNaN(_ v: TOMLValue) -> Bool {
    switch v {
    case let .float(d): d.isNaN
    case let .array(a): a.contains(where: containsNaN)
    case let .table(t): t.keys.contains { t[$0].map(containsNaN) ?? false }
    default: false
    }
}

/// What the parser promises about the settings it returns.
func check(_ s: DaemonConfig.FileSettings) {
    precondition(s.models.allSatisfy { VectorName.isValid($0.name) && !$0.path.isEmpty })
    if let t = s.threads { precondition((1...1024).contains(t)) }
    if let g = s.socketGroup { precondition(!g.isEmpty) }
    let l = s.limits
    precondition(l.defaultMaxTokens <= l.maxTokens)
    precondition(l.maxCoefficient.isFinite && l.drainSeconds.isFinite && l.slowReaderSeconds.isFinite)
    for m in s.models {
        let flag = "\(m.name)=\(m.path)"
        guard let spec = try? DaemonConfig.parseModelFlag(flag) else { preconditionFailure("parseModelFlag rejects \(flag)") }
        precondition(spec == m)
    }
}

func writeScratch(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    let fd = open(scratchPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 { if errno == EINTR { continue }; return false }
        done += n
    }
    return true
}
