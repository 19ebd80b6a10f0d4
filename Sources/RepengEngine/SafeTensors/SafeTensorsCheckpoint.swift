// The safetensors weights of a Hugging Face model folder: `model.safetensors`, or the shards
// listed by `model.safetensors.index.json` (`weight_map`: tensor name → shard file name), as
// transformers' `from_pretrained` reads them.
import Foundation

/// The tensors of one checkpoint, across its shards.
public final class SafeTensorsCheckpoint: @unchecked Sendable {
    /// The folder it was read from.
    public let folder: String
    /// Opened shard files, in the order first named.
    public let files: [SafeTensorsFile]
    private let location: [String: (file: Int, tensor: SafeTensorsTensorInfo)]

    /// Index name of a sharded checkpoint.
    public static let indexName = "model.safetensors.index.json"
    /// File name of a single-file checkpoint.
    public static let singleName = "model.safetensors"
    /// Largest index file read (64 MiB; real ones are tens of kilobytes).
    public static let maxIndexBytes = 64 << 20

    /// Reads the checkpoint in `folder`: the index when there is one, else `model.safetensors`.
    public init(folder: String) throws(SafeTensorsError) {
        self.folder = folder
        let indexPath = folder + "/" + Self.indexName
        var names: [String] = []
        var wanted: [(tensor: String, shard: Int)] = []
        if FileManager.default.fileExists(atPath: indexPath) {
            let map = try Self.readIndex(indexPath)
            var shardIndex: [String: Int] = [:]
            for (tensor, shard) in map {
                if shardIndex[shard] == nil { shardIndex[shard] = names.count; names.append(shard) }
                wanted.append((tensor, shardIndex[shard]!))
            }
        } else {
            names = [Self.singleName]
        }
        var files: [SafeTensorsFile] = []
        for n in names { files.append(try SafeTensorsFile(path: folder + "/" + n)) }
        var location: [String: (file: Int, tensor: SafeTensorsTensorInfo)] = [:]
        if wanted.isEmpty {
            for t in files[0].tensors { location[t.name] = (0, t) }
        } else {
            for (tensor, shard) in wanted {
                guard let t = files[shard].tensor(named: tensor) else {
                    throw .badIndex(path: indexPath, reason: "tensor '\(quoted(tensor))' is not in its shard \(quoted(names[shard]))")
                }
                location[tensor] = (shard, t)
            }
        }
        self.files = files
        self.location = location
    }

    /// The weight map of an index file, in file order, checked.
    static func readIndex(_ path: String) throws(SafeTensorsError) -> [(String, String)] {
        let bytes: [UInt8]
        do {
            bytes = try readSmallFile(path, limit: maxIndexBytes)
        } catch {
            throw .badIndex(path: path, reason: error.description)
        }
        let json: JSONValue
        do { json = try JSONReader.parse(bytes) } catch { throw .badIndex(path: path, reason: "not valid JSON: \(error)") }
        guard let map = json["weight_map"]?.object else { throw .badIndex(path: path, reason: "no weight_map object") }
        if let dup = map.firstDuplicateKey { throw .badIndex(path: path, reason: "weight_map names '\(quoted(dup))' twice") }
        var out: [(String, String)] = []
        for (tensor, v) in map.pairs {
            guard let shard = v.string else { throw .badIndex(path: path, reason: "weight_map['\(quoted(tensor))'] is \(v.kind), not a file name") }
            guard isPlainFileName(shard) else {
                throw .badIndex(path: path, reason: "shard '\(quoted(shard))' is not a file name in the folder")
            }
            out.append((tensor, shard))
        }
        guard !out.isEmpty else { throw .badIndex(path: path, reason: "weight_map is empty") }
        return out
    }

    /// All tensor names.
    public var tensorNames: [String] { Array(location.keys) }

    public func tensor(named name: String) -> SafeTensorsTensorInfo? { location[name]?.tensor }

    /// The file holding a tensor.
    public func file(of name: String) -> SafeTensorsFile? { location[name].map { files[$0.file] } }
}

/// A name without path separators that stays in its folder.
func isPlainFileName(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 255 && s != "." && s != ".." && !s.contains("/") && !s.utf8.contains(0)
}

/// Why a small file could not be read.
public struct SmallFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The bytes of a regular file of at most `limit` bytes (a config or index file read whole).
public func readSmallFile(_ path: String, limit: Int) throws(SmallFileError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SmallFileError(description: "cannot open: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw SmallFileError(description: "not a regular file") }
    guard st.st_size <= limit else { throw SmallFileError(description: "\(st.st_size) bytes, more than the \(limit) read") }
    var out = [UInt8](repeating: 0, count: Int(st.st_size))
    var done = 0
    while done < out.count {
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw SmallFileError(description: n == 0 ? "file shrank while read" : "read failed: \(String(cString: strerror(errno)))") }
        done += n
    }
    return out
}
