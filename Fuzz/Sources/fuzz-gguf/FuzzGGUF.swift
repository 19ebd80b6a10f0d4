// Fuzz target: the GGUF reader (`GGUFFile(bytes:)`) and everything the engine builds from a
// parsed file: metadata accessors, tensor bounds and data, dequantization, the writer's copy,
// the model config, the tokenizer and the model loader (plus one forward pass of a tiny model).
import Foundation
import RepengEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let file: GGUFFile
    do {
        file = try GGUFFile(bytes: bytes)
    } catch {
        _ = error.description
        return 0
    }
    checkStructure(file)
    checkMetadata(file)
    checkTensors(file)
    checkCopy(file)
    buildFromFile(file, text: Array(bytes.suffix(48)))
    return 0
}

/// Header invariants the parser promises.
func checkStructure(_ file: GGUFFile) {
    precondition(file.version == 2 || file.version == 3)
    precondition(file.alignment > 0 && file.alignment & (file.alignment - 1) == 0 && file.alignment <= GGUFLimits.maxAlignment)
    precondition(file.dataOffset % file.alignment == 0)
    precondition(file.rawBytes.count == file.fileSize)
    precondition(file.metadataKeys.count == file.metadata.count)
}

/// Every key through every typed accessor; every value through every view.
func checkMetadata(_ file: GGUFFile) {
    for key in file.metadataKeys {
        guard let value = file.metadata[key] else { preconditionFailure("key \(key) in metadataKeys but not in metadata") }
        touch(value, depth: 0)
        _ = try? file.string(key)
        _ = try? file.int(key)
        _ = try? file.float(key)
        _ = try? file.bool(key)
        _ = try? file.array(key)
        _ = try? file.optionalString(key)
        _ = try? file.optionalInt(key)
        _ = try? file.optionalFloat(key)
        _ = try? file.optionalBool(key)
        _ = try? file.optionalArray(key)
    }
    do { _ = try file.string("fuzz.no.such.key") } catch { _ = "\(error)" }
}

func touch(_ value: GGUFValue, depth: Int) {
    _ = value.description
    _ = value.string
    _ = value.int
    _ = value.float
    _ = value.double
    _ = value.bool
    guard let array = value.array else { return }
    precondition(depth < GGUFLimits.maxArrayNesting)
    _ = array.description
    _ = array.elementType
    _ = array.strings
    _ = array.floats
    _ = array.bools
    _ = array.ints
    let n = array.count
    if n > 0 {
        touch(array[0], depth: depth + 1)
        touch(array[n - 1], depth: depth + 1)
    }
    if n <= 64 { _ = array.values }
    for inner in array.arrays ?? [] { touch(.array(inner), depth: depth + 1) }
}

/// Tensor table invariants, data bounds, and decoding of small tensors (both decoders agree).
func checkTensors(_ file: GGUFFile) {
    let raw = file.rawBytes
    for t in file.tensors {
        precondition(file.tensor(named: t.name) == t, "tensor(named:) disagrees for \(t.name)")
        precondition((1...GGUFLimits.maxDimensions).contains(t.dims.count))
        precondition(t.dims.allSatisfy { $0 >= 0 })
        precondition(t.dims.reduce(1, *) == t.elementCount)
        precondition(t.type.byteCount(elements: t.elementCount) == t.byteCount)
        precondition(t.offset >= 0 && t.offset % file.alignment == 0)
        // The parser refuses dims whose non-zero product overflows (found here: [0, 2^40, 2^40]).
        precondition(t.rowCount >= 0)
        _ = t.type.description
        let d = file.tensorData(t)
        if t.byteCount > 0 {
            precondition(d.count == t.byteCount)
            guard let base = raw.baseAddress, let start = d.baseAddress else { preconditionFailure("tensor data without base") }
            let at = start - UnsafeRawPointer(base)
            precondition(at == file.dataOffset + t.offset && at + d.count <= file.fileSize)
            // First and last byte: ASan reports a read outside the buffer.
            _ = d[0] &+ d[d.count - 1]
        }
        if t.type.isDecodable, t.elementCount <= 1 << 16 {
            decodeBoth(t, d)
        }
    }
    // Infos that do not belong to the file must give empty buffers, never memory outside it.
    for (offset, count) in [(file.fileSize, 4), (Int.max - 8, 16), (-32, 4), (0, Int.max), (file.fileSize - 4, 8)] {
        let foreign = GGUFTensorInfo(name: "foreign", dims: [max(count / 4, 1)], type: .f32, offset: offset,
                                     elementCount: max(count / 4, 1), byteCount: count)
        let d = file.tensorData(foreign)
        if d.count > 0 {
            let start = d.baseAddress! - UnsafeRawPointer(raw.baseAddress!)
            precondition(start >= 0 && start + d.count <= file.fileSize, "tensorData served bytes outside the file")
        }
    }
}

func decodeBoth(_ t: GGUFTensorInfo, _ d: UnsafeRawBufferPointer) {
    let n = t.elementCount
    guard let fast = try? Dequant.decode(t.type, d, count: n) else { preconditionFailure("Dequant.decode rejected \(t.name)") }
    var slow = [Float](repeating: 0, count: n)
    do {
        try slow.withUnsafeMutableBufferPointer { p in
            if let base = p.baseAddress { try Dequant.decodeReference(t.type, d, count: n, into: base) }
        }
    } catch {
        preconditionFailure("Dequant.decodeReference rejected \(t.name): \(error)")
    }
    for i in 0..<n where fast[i].bitPattern != slow[i].bitPattern && !(fast[i].isNaN && slow[i].isNaN) {
        preconditionFailure("\(t.type) element \(i) of \(t.name): decode \(fast[i]) != reference \(slow[i])")
    }
    // Wrong counts are errors, not crashes.
    _ = try? Dequant.decode(t.type, d, count: n + t.type.blockSize)
    if n > 0 { _ = try? Dequant.decode(t.type, UnsafeRawBufferPointer(rebasing: d.dropLast()), count: n) }
}

/// The writer accepts whatever the reader accepted, and a copy of a copy is the same bytes.
func checkCopy(_ file: GGUFFile) {
    let first: [UInt8]
    do { first = try GGUFWriter(copying: file).serialize() } catch {
        preconditionFailure("GGUFWriter(copying:) cannot write a file GGUFFile read: \(error)")
    }
    let again: GGUFFile
    do { again = try GGUFFile(bytes: first) } catch {
        preconditionFailure("GGUFFile cannot read what GGUFWriter wrote: \(error)")
    }
    precondition(again.metadataKeys == file.metadataKeys)
    precondition(again.tensors.map(\.name) == file.tensors.map(\.name))
    precondition(again.tensors.map(\.dims) == file.tensors.map(\.dims))
    for (a, b) in zip(again.tensors, file.tensors) {
        precondition(Array(again.tensorData(a)) == Array(file.tensorData(b)), "tensor data of \(a.name) changed in the copy")
    }
    let second: [UInt8]
    do { second = try GGUFWriter(copying: again).serialize() } catch { preconditionFailure("second copy failed: \(error)") }
    precondition(first == second, "copying a copy changed its bytes")
}

/// Model config, tokenizer and model as the daemon builds them from a model file.
func buildFromFile(_ file: GGUFFile, text: [UInt8]) {
    if let config = try? ModelConfig(gguf: file) {
        _ = config.qDim
        _ = config.kvDim
    }
    if let tokenizer = try? makeTokenizer(gguf: file) {
        exercise(tokenizer, text: text)
    }
    // Dequantizing everything is bounded by the input size; keep it small anyway.
    let elements = file.tensors.reduce(0) { $0 &+ $1.elementCount }
    guard elements >= 0, elements <= 1 << 20, let model = try? loadModel(gguf: file) else { return }
    let c = model.config
    guard c.vocabSize > 0, c.blockCount * c.hiddenSize * max(c.feedForwardSize, c.qDim) <= 1 << 18 else { return }
    let ws = ForwardWorkspace()
    let cache = model.makeCache(capacity: 4)
    let ids: [Int32] = [0, Int32(clamping: c.vocabSize - 1)]
    if let out = try? model.forward([SequenceInput(tokens: ids, cache: cache)], workspace: ws) {
        precondition(out.count == 1 && out[0].logits.count == c.vocabSize)
    }
}

func exercise(_ tok: any Tokenizer, text: [UInt8]) {
    let n = tok.vocabularySize
    precondition(n > 0)
    let samples = [
        "", " ", "Hello, world! 123", "  two  spaces\tand\nnewlines\r\n", "Ünïcödé – ✓ 😀 日本語",
        "<|im_start|>user\nhi<|im_end|>", "<bos><start_of_turn>user\n<end_of_turn>", "<s>[INST] x [/INST]</s>",
        String(decoding: text, as: UTF8.self),
    ]
    for s in samples {
        for special in [false, true] {
            let ids = tok.encode(s, addSpecial: special)
            precondition(ids.allSatisfy { $0 >= 0 && Int($0) < n }, "encode produced an id outside the vocabulary")
            _ = tok.decode(ids, skipSpecial: special)
        }
    }
    let probe: [Int32] = [-1, 0, Int32(clamping: n - 1), Int32(clamping: n), Int32.max, Int32.min]
    _ = tok.decode(probe, skipSpecial: false)
    _ = tok.decode(probe, skipSpecial: true)
    for id in probe {
        _ = tok.tokenBytes(id)
        _ = tok.isSpecial(id)
    }
    for id in 0..<Int32(clamping: min(n, 256)) {
        _ = tok.tokenBytes(id)
        _ = tok.isSpecial(id)
    }
    _ = tok.decode(Array(0..<Int32(clamping: min(n, 256))), skipSpecial: false)
    _ = tok.tokenID("<unk>")
    _ = tok.tokenID("")
    _ = tok.bosID
    _ = tok.eosID
    _ = tok.chatTemplate
    var stream = IncrementalDecoder(tokenizer: tok, skipSpecial: true)
    for id in tok.encode(samples[4], addSpecial: true) { _ = stream.append(id) }
    _ = stream.flush()
}
