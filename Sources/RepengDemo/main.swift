// repeng-demo: train a happy/sad control vector on the bundled model and generate with and without it.
//   repeng-demo [MODEL.gguf] [--coefficient K] [--layers A..B] [--max-tokens N] [--out FILE.gguf]
import Foundation
import RepengEngine
import RepengSteering

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func die(_ message: String) -> Never {
    FileHandle.standardError.write("repeng-demo: \(message)\n".data(using: .utf8)!)
    exit(1)
}

BLAS.reexecWithFasterKernelsIfNeeded()
var modelPath = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
var coefficient: Float = 8
var band = (-20, -5)
var maxTokens = 40
var outPath = ".cache/happy.gguf"
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--coefficient": coefficient = Float(args.popFirst() ?? "") ?? coefficient
    case "--max-tokens": maxTokens = Int(args.popFirst() ?? "") ?? maxTokens
    case "--out": outPath = args.popFirst() ?? outPath
    case "--layers":
        let parts = (args.popFirst() ?? "").components(separatedBy: "..").compactMap { Int($0) }
        guard parts.count == 2 else { die("--layers takes A..B, e.g. -20..-5") }
        band = (min(parts[0], parts[1]), max(parts[0], parts[1]))
    case "-h", "--help":
        print("usage: repeng-demo [MODEL.gguf] [--coefficient K] [--layers A..B] [--max-tokens N] [--out FILE.gguf]")
        exit(0)
    default: modelPath = a
    }
}
BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount)

do {
    var t = now()
    let model = try loadModel(path: modelPath)
    print(String(format: "loaded %@ (%d blocks, hidden %d) in %.2f s", model.config.name, model.config.blockCount,
                 model.config.hiddenSize, now() - t))

    // The model's own chat template; a model without one gets the layout its special tokens suggest.
    guard let tokenizer = model.tokenizer else { die("\(modelPath) has no tokenizer") }
    let layout = try ChatLayout.preferred(for: tokenizer)
    let dataset = try makeChatDataset(
        template: "Act as if you're extremely {persona}.",
        positivePersonas: ["happy", "joyful"], negativePersonas: ["sad", "depressed"],
        suffixes: Array(defaultSuffixes.prefix(100)), layout: layout)
    t = now()
    let happy = try ControlVector.train(model: model, dataset: dataset, method: .pcaCenter)
    print(String(format: "trained a happy/sad vector on %d pairs × %d layers in %.2f s", dataset.count,
                 happy.directions.count, now() - t))
    try happy.exportGGUF(to: outPath)
    print("saved it to \(outPath) (readable by repeng's import_gguf and llama.cpp's --control-vector)")

    let controlled = ControlledModel(model: model)
    let layers = Array(band.0...band.1)
    let prompts = ["What are you doing this weekend?", "Tell me about your morning."]
    for question in prompts {
        let prompt = try layout.prompt([ChatMessage(role: "user", content: question)])
        print("\n### \(question)")
        for k in [Float(0), coefficient, -coefficient] {
            if k == 0 { controlled.reset() } else { try controlled.setControl(happy, coefficient: k, layers: layers) }
            let out = try controlled.generate(prompt: prompt, maxTokens: maxTokens)
            let label = k == 0 ? "no control" : String(format: "happy × %+.1f", k)
            print("[\(label)] \(out.text.replacingOccurrences(of: "\n", with: " "))")
        }
    }
} catch {
    die("\(error)")
}
