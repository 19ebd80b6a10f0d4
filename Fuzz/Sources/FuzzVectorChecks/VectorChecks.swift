// Checks shared by the control-vector fuzz targets: whatever a reader accepted must be a
// consistent vector that both writers can write and both readers read back unchanged
// (docs/vector-formats.md: "Both formats round-trip exactly").
import Foundation
import RepengSteering

/// Runs the invariants and round trips on a vector that `ControlVector(ggufBytes:)` or
/// `ControlVector(jsonData:)` returned.
public func checkImportedVector(_ v: ControlVector) {
    let size: Int?
    do { size = try v.validate() } catch { preconditionFailure("an imported vector does not validate: \(error)") }
    guard let n = size else { preconditionFailure("an imported vector has no directions") }
    precondition(v.hiddenSize == n && v.metadata.hiddenSize == n, "hidden size \(String(describing: v.metadata.hiddenSize)) != \(n)")
    precondition(v.layers.allSatisfy { $0 >= 0 && $0 <= 65_535 })
    precondition(v.directions.values.allSatisfy { $0.allSatisfy(\.isFinite) })
    if let b = v.metadata.blockCount { precondition(v.layers.allSatisfy { $0 < b }) }
    _ = v.norms
    _ = v.warnings

    // GGUF: llama.cpp's loader rejects block 0, so the writer refuses it.
    do {
        let first = try v.ggufBytes()
        let back = try ControlVector(ggufBytes: first)
        precondition(back == v, "GGUF round trip changed the vector")
        let second = try back.ggufBytes()
        precondition(second == first, "GGUF round trip changed the bytes")
    } catch VectorFileError.blockZero {
        precondition(v.directions[0] != nil)
    } catch {
        preconditionFailure("GGUF round trip failed: \(error)")
    }

    do {
        let first = try v.jsonData()
        let back = try ControlVector(jsonData: first)
        precondition(back == v, "JSON round trip changed the vector")
        let second = try back.jsonData()
        precondition(second == first, "JSON round trip changed the bytes")
    } catch {
        preconditionFailure("JSON round trip failed: \(error)")
    }

    // Arithmetic never traps.
    _ = v + v
    _ = v - v
    _ = -v
    _ = v * 2
    _ = v / 0
    _ = v.scaled(by: .infinity)
    _ = try? v.adding(v.keeping(layers: v.layers.prefix(1)))
    _ = v.removing(layers: [0])
}
