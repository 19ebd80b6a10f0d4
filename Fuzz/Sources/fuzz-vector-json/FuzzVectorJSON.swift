// Fuzz target: control vectors from JSON (`ControlVector(jsonData:)`), as the daemon's vector
// directory and `ControlVector.importJSON(path:)` read them, then both round trips.
import Foundation
import FuzzVectorChecks
import RepengSteering

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVectorJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let vector: ControlVector
    do {
        vector = try ControlVector(jsonData: Data(bytes: data, count: size))
    } catch {
        _ = "\(error)"
        return 0
    }
    checkImportedVector(vector)
    return 0
}
