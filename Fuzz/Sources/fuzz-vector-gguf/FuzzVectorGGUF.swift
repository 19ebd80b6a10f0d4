// Fuzz target: control vectors from GGUF bytes (`ControlVector(ggufBytes:)`), as the daemon's
// vector directory and `ControlVector.importGGUF(path:)` read them, then both round trips.
import FuzzVectorChecks
import RepengSteering

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVectorGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let vector: ControlVector
    do {
        vector = try ControlVector(ggufBytes: bytes)
    } catch {
        _ = "\(error)"
        return 0
    }
    checkImportedVector(vector)
    return 0
}
