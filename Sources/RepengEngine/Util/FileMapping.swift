// Read-only memory mapping of a whole regular file, shared by the GGUF and safetensors readers.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A private read-only mapping of a regular file (nil base for an empty file).
struct FileMapping {
    let base: UnsafeMutableRawPointer?
    let size: Int

    /// Why a file could not be mapped: the errno and what failed.
    struct Failure: Error {
        let errno: Int32
        let message: String
    }

    /// Opens, checks and maps `path`; the descriptor is closed before returning.
    static func map(_ path: String) throws(Failure) -> FileMapping {
        func failure(_ what: String, _ code: Int32 = errno) -> Failure {
            Failure(errno: code, message: "\(what): \(String(cString: strerror(code)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open failed") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("fstat failed") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw Failure(errno: EINVAL, message: "not a regular file") }
        guard let size = Int(exactly: st.st_size), size >= 0 else { throw Failure(errno: EFBIG, message: "file size out of range") }
        guard size > 0 else { return FileMapping(base: nil, size: 0) }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { throw failure("mmap failed") }
        return FileMapping(base: p, size: size)
    }

    func unmap() {
        if let base { munmap(base, size) }
    }
}
