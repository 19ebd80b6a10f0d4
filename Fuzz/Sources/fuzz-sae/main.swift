// Fuzz target: SAE folders (`SAESet.load`: cfg.json, safetensors, the hook-to-layer mapping) and,
// for what loads, the encoder and decoder. Input: byte 0 picks the layout and folder name, bytes
// 1-2 (little-endian) the length of cfg.json, then cfg.json, then the weights file.
import Foundation
import RepengEngine
import RepengSteering

nonisolated(unsafe) private let root: String = {
    let r = NSTemporaryDirectory() + "fuzz-sae-\(getpid())"
    try? FileManager.default.createDirectory(atPath: r, withIntermediateDirectories: true)
    return r
}()

private let names = ["layers.3", "model.layers.1", "blocks.2.hook_resid_post", "layers.0.mlp", "x"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSAE(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 3 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let pick = Int(bytes[0])
    let cfgLength = min(Int(bytes[1]) | Int(bytes[2]) << 8, size - 3)
    let cfg = Data(bytes[3..<(3 + cfgLength)])
    let weights = Data(bytes[(3 + cfgLength)...])
    let dir = root + "/" + names[pick % names.count]
    try? FileManager.default.removeItem(atPath: root)
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try? cfg.write(to: URL(fileURLWithPath: dir + "/cfg.json"))
    try? weights.write(to: URL(fileURLWithPath: dir + (pick & 0x80 == 0 ? "/sae.safetensors" : "/sae_weights.safetensors")))
    let set: SAESet
    do {
        set = try SAESet.load(folder: pick & 0x40 == 0 ? dir : root, pairing: pick & 0x20 == 0 ? .block : .repeng)
    } catch {
        _ = "\(error)"
        return 0
    }
    for (layer, sae) in set.byLayer {
        precondition(sae.latents >= 1 && sae.inputSize >= 1, "an SAE without latents or inputs loaded")
        precondition(layer == set.pairing.layer(servedBy: sae.block), "layer \(layer) does not follow from block \(sae.block)")
        guard sae.latents * sae.inputSize <= 1 << 20 else { continue }
        let x = (0..<(2 * sae.inputSize)).map { Float($0 % 7) - 3 }
        do {
            let f = try sae.encode(try HiddenMatrix(rows: 2, columns: sae.inputSize, values: x))
            precondition(f.rows == 2 && f.columns == sae.latents)
            let back = try sae.decode(Array(f.values[0..<sae.latents]))
            precondition(back.count == sae.inputSize)
            _ = try sae.encodeReference(Array(x[0..<sae.inputSize]))
        } catch {
            _ = "\(error)"
        }
    }
    return 0
}
