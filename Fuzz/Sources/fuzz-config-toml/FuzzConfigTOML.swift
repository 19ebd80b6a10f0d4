// Fuzz target: the daemon's TOML configuration (`DaemonConfig.parseTOML(_:path:)`, TOMLKit and
// toml++ underneath) and the file reader in front of it (`DaemonConfig.readFile(_:)`, which also
// checks the size and UTF-8), fed the same bytes through a file in /dev/shm.
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

/// Set REPENG_FUZZ_TOML_ALL=1 to also run the inputs of the known toml++ crash (below).
let skipKnownCrash = ProcessInfo.processInfo.environment["REPENG_FUZZ_TOML_ALL"] != "1"

/// Known, reported crash in toml++ 3.4.0 (bundled by TOMLKit 0.6.0), so that fuzzing can go on
/// past it: a table header whose first key character is neither a bare-key character nor a quote
/// (`[^`, `[\n`, `[[=`, `[é]`) fails the assertion in toml::impl::parser::parse_key (abort; with
/// NDEBUG it is an assume, i.e. undefined behaviour). Fixed upstream in marzer/tomlplusplus#301.
/// Skips every line that starts (after blanks) with `[` or `[[`, blanks, then such a character.
func hitsKnownHeaderCrash(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
    func startsKey(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || c == 0x5F || c == 0x2D || c == 0x22 || c == 0x27 || c == 0x5D
    }
    var i = 0
    let n = bytes.count
    while i < n {
        var j = i
        while j < n, isBlank(bytes[j]) { j += 1 }
        if j < n, bytes[j] == 0x5B {
            j += 1
            if j < n, bytes[j] == 0x5B { j += 1 }
            while j < n, isBlank(bytes[j]) { j += 1 }
            if j < n, !startsKey(bytes[j]) { return true }
        }
        while i < n, bytes[i] != 0x0A { i += 1 }
        i += 1
    }
    return false
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigTOML(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if skipKnownCrash, hitsKnownHeaderCrash(bytes) { return 0 }

    var parsed: DaemonConfig.FileSettings?
    if let text = String(validating: bytes, as: UTF8.self) {
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
