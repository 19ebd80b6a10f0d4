// Fuzz target: the safetensors reader (`SafeTensorsFile(bytes:)`, with the JSON reader under it):
// every tensor accepted lies inside the file, its size matches its shape, and its weights decode.
import RepengEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let file: SafeTensorsFile
    do {
        file = try SafeTensorsFile(bytes: bytes)
    } catch {
        _ = error.description
        return 0
    }
    var end = 0
    for t in file.tensors {
        precondition(t.offset >= 8 && t.byteCount >= 0 && t.offset + t.byteCount <= size, "tensor \(t.name) outside the file")
        precondition(t.byteCount == t.shape.reduce(1, *) * t.dtype.size, "tensor \(t.name) size differs from its shape")
        precondition(file.tensor(named: t.name) == t)
        end = max(end, t.offset + t.byteCount)
        guard t.dtype.isFloatWeight, t.elementCount <= 1 << 20 else { continue }
        var out = [Float](repeating: 0, count: t.elementCount)
        do { try file.decode(t, into: &out) } catch { preconditionFailure("an accepted \(t.dtype) tensor failed to decode: \(error)") }
        if let p = file.f32InPlace(t) { precondition(t.elementCount == 0 || p[0].bitPattern == out[0].bitPattern) }
    }
    precondition(file.tensors.isEmpty || end == size, "bytes after the last tensor were accepted")
    return 0
}
