// Fuzz target: tokenizer.json (`makeTokenizer(tokenizerJSON:)`): any accepted file yields a
// tokenizer that encodes and decodes text, including its own vocabulary's pieces, without trapping.
import RepengEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let tokenizer: any Tokenizer
    do {
        tokenizer = try makeTokenizer(tokenizerJSON: bytes)
    } catch {
        _ = "\(error)"
        return 0
    }
    let texts = ["", "Hello world", "  two  spaces\n\ttab", "café 東京 3.14 🙂", "<s>x</s>",
                 String(decoding: bytes.suffix(64), as: UTF8.self)]
    for text in texts {
        for special in [false, true] {
            let ids = tokenizer.encode(text, addSpecial: special)
            for id in ids { precondition(id >= 0 && Int(id) < max(tokenizer.vocabularySize, 1) + 1 << 20, "id \(id) out of range") }
            _ = tokenizer.decode(ids, skipSpecial: false)
            _ = tokenizer.decode(ids, skipSpecial: true)
        }
    }
    let n = Int32(min(tokenizer.vocabularySize, 512))
    let all = Array(0..<n) + [-1, Int32.max]
    _ = tokenizer.decode(all, skipSpecial: false)
    for id in all.prefix(64) { _ = tokenizer.tokenBytes(id); _ = tokenizer.isSpecial(id) }
    return 0
}
