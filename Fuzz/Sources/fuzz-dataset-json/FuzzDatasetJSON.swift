// Fuzz target: dataset and suffix-list JSON (`parseDataset(_:path:)`, `parseSuffixes(_:path:)`),
// as `loadDataset(from:)` / `loadSuffixes(from:)` and the training tools read them; then the
// writer's round trip and the persona template formatter on the texts that were read.
import Foundation
import RepengSteering

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDatasetJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let json = Data(bytes: data, count: size)

    do {
        let entries = try parseDataset(json, path: "fuzz.json")
        precondition(!entries.isEmpty && entries.allSatisfy { !$0.positive.isEmpty && !$0.negative.isEmpty })
        let encoded: Data
        do { encoded = try encodeDataset(entries) } catch { preconditionFailure("encodeDataset failed: \(error)") }
        let back: [DatasetEntry]
        do { back = try parseDataset(encoded) } catch { preconditionFailure("parseDataset rejects encodeDataset's output: \(error)") }
        precondition(back == entries, "dataset round trip changed the entries")
        for e in entries.prefix(8) {
            _ = try? formatPersonaTemplate(e.positive, persona: e.negative)
        }
        if let e = entries.first {
            _ = try? makeDataset(template: e.positive, positivePersonas: [e.negative], negativePersonas: [e.positive],
                                 suffixes: [e.negative])
            _ = try? makeChatDataset(template: e.positive, positivePersonas: [e.negative], negativePersonas: [e.positive],
                                     suffixes: [e.negative], format: .chatML)
        }
    } catch {
        _ = "\(error)"
    }

    do {
        let suffixes = try parseSuffixes(json, path: "fuzz.json")
        precondition(!suffixes.isEmpty)
        for format in ChatFormat.allCases {
            _ = format.wrap(instruction: suffixes[0], reply: suffixes[suffixes.count - 1])
        }
        _ = try? formatPersonaTemplate(suffixes[0], persona: "p")
    } catch {
        _ = "\(error)"
    }
    return 0
}
