// repeng-bench: load, prefill, decode and hidden-state extraction throughput of the engine.
//   repeng-bench MODEL.gguf [--threads N] [--strings FILE] [--json] [--skip-decode] [--prefill-only] [--skip-extraction]
//   repeng-bench MODEL.gguf --train [--pairs N] [--dump-dataset FILE.json]   (training time)
//   repeng-bench MODEL.gguf --batched-decode [--batches 1,2,4,8] [--steps N]      (batched decode steps)
//   repeng-bench MODEL.gguf --kernels    (decode-step kernel bandwidth on one thread; sampling cost)
//   repeng-bench MODEL.gguf --prefill-chunks 0,64,256 [--prompt-tokens N]  (a long prompt run in chunks)
//   repeng-bench MODEL.gguf --sae DIR [--sae-dataset FILE.json]   (training through SAEs: extraction, encoding + PCA, decoding)
//   repeng-bench --sae-synthetic LATENTS:WIDTH[:PAIRS]   (one random BF16 SAE on random hidden states: time and peak memory)
import Foundation
import RepengEngine
import RepengKernels
import RepengSteering

struct Options {
    var model = ""
    var threads = 2
    var strings = "scripts/bench/strings.json"
    var json = false
    var skipDecode = false
    var prefillOnly = false
    var skipExtraction = false
    var train = false
    var pairs = 200
    var dumpDataset: String?
    var batchedDecode = false
    var prefillChunks: [Int]?
    var promptTokens = 2048
    var kernels = false
    var batches = [1, 2, 4, 8]
    var steps = 48
    var precision = WeightPrecision.exact
    var sae: String?
    var saeDataset = "Tests/RepengSteeringTests/Fixtures/repeng/dataset.json"
    var saeSynthetic: (latents: Int, width: Int, pairs: Int)?
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    while let a = args.popFirst() {
        switch a {
        case "--threads": o.threads = Int(args.popFirst() ?? "") ?? o.threads
        case "--strings": o.strings = args.popFirst() ?? o.strings
        case "--json": o.json = true
        case "--skip-decode": o.skipDecode = true
        case "--prefill-only": o.prefillOnly = true
        case "--skip-extraction": o.skipExtraction = true
        case "--train": o.train = true
        case "--pairs": o.pairs = Int(args.popFirst() ?? "") ?? o.pairs
        case "--dump-dataset": o.dumpDataset = args.popFirst()
        case "--batched-decode": o.batchedDecode = true
        case "--prefill-chunks": o.prefillChunks = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }.filter { $0 >= 0 }
        case "--prompt-tokens": o.promptTokens = max(2, Int(args.popFirst() ?? "") ?? o.promptTokens)
        case "--kernels": o.kernels = true
        case "--batches": o.batches = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        case "--steps": o.steps = max(1, Int(args.popFirst() ?? "") ?? o.steps)
        case "--sae": o.sae = args.popFirst()
        case "--sae-dataset": o.saeDataset = args.popFirst() ?? o.saeDataset
        case "--sae-synthetic":
            let n = (args.popFirst() ?? "").split(separator: ":").compactMap { Int($0) }
            guard n.count >= 2, n.allSatisfy({ $0 > 0 }) else {
                FileHandle.standardError.write("repeng-bench: --sae-synthetic takes LATENTS:WIDTH[:PAIRS]\n".data(using: .utf8)!)
                exit(2)
            }
            o.saeSynthetic = (n[0], n[1], n.count > 2 ? n[2] : 128)
            o.model = "-"
        case "--precision":
            guard let p = WeightPrecision(rawValue: args.popFirst() ?? "") else {
                FileHandle.standardError.write("repeng-bench: --precision takes exact or native\n".data(using: .utf8)!)
                exit(2)
            }
            o.precision = p
        case "-h", "--help":
            print("usage: repeng-bench MODEL.gguf [--precision exact|native] [--threads N] [--strings FILE] [--json] [--skip-decode] [--prefill-only]\n       repeng-bench MODEL.gguf --train [--pairs N] [--dump-dataset FILE.json] [--json]\n       repeng-bench MODEL.gguf --batched-decode [--batches 1,2,4,8] [--steps N] [--json]\n       repeng-bench MODEL.gguf --kernels [--json]")
            exit(0)
        default: o.model = a
        }
    }
    if o.model.isEmpty {
        FileHandle.standardError.write("repeng-bench: give a model path (e.g. .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf)\n".data(using: .utf8)!)
        exit(2)
    }
    return o
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// CPU seconds used by this process (all threads): robust to other load on the machine when
/// run with one thread.
func cpuNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func peakRSSMiB() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_maxrss) / 1024
}

/// Prints every reported figure as one JSON object when --json was given.
@MainActor func printJSON() {
    guard opt.json else { return }
    let obj = Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1) })
    if let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

func fail(_ e: Error) -> Never {
    FileHandle.standardError.write("repeng-bench: \(e)\n".data(using: .utf8)!)
    exit(1)
}

BLAS.reexecWithFasterKernelsIfNeeded()
let opt = parse()
BLAS.setThreads(opt.threads)
var results: [(String, Double)] = []
@MainActor func report(_ name: String, _ value: Double, _ unit: String) {
    results.append((name, value))
    if !opt.json {
        let v = abs(value) < 10 && value != value.rounded() ? String(format: "%10.4f", value) : String(format: "%10.1f", value)
        print(String(format: "%-36@ %@ %@", name as NSString, v as NSString, unit as NSString))
    }
}

/// Training through the SAEs of a folder on the fixture dataset: hidden-state extraction, then
/// per layer encoding + PCA, then decoding, each timed (best of two), with the peak RSS.
@MainActor func benchSAE(_ model: any LanguageModel, folder: String) throws {
    let sae = try SAESet.load(folder: folder)
    try sae.check(hiddenSize: model.config.hiddenSize, blockCount: model.config.blockCount)
    let dataset = try loadDataset(from: URL(fileURLWithPath: opt.saeDataset))
    report("sae_layers", Double(sae.layers.count), "layers")
    report("sae_latents", Double(sae.byLayer.values.map(\.latents).max() ?? 0), "latents")
    report("sae_pairs", Double(dataset.count), "pairs")
    var extract = Double.infinity, fit = Double.infinity, decode = Double.infinity
    for _ in 0..<2 {
        var t = now()
        var hiddens: [Int: HiddenMatrix] = [:]
        _ = try ControlVector.train(model: model, dataset: dataset, layers: sae.layers, method: .pcaCenter,
                                    transformHiddens: { h in hiddens = h; return h })
        extract = min(extract, now() - t)
        t = now()
        let features = try ControlVector.fitWithSAE(hiddens: hiddens, sae: sae, decode: false)
        fit = min(fit, now() - t)
        t = now()
        for (layer, f) in features { _ = try sae.byLayer[layer]!.decode(f) }
        decode = min(decode, now() - t)
    }
    report("sae_extract_s", extract, "s")
    report("sae_encode_pca_s", fit, "s")
    report("sae_decode_s", decode, "s")
    report("peak_rss_mib", peakRSSMiB(), "MiB")
    printJSON()
}

/// One random EleutherAI-layout BF16 SAE of LATENTS × WIDTH written to a temporary folder, and
/// random hidden states for PAIRS pairs: encoding + PCA + decoding time and peak memory, against
/// `SAETrainingMemory.bytes`.
@MainActor func benchSyntheticSAE(latents F: Int, width d: Int, pairs N: Int) throws {
    let dir = NSTemporaryDirectory() + "repeng-bench-sae-\(getpid())/layers.1"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
    try Data("{\"d_in\": \(d), \"num_latents\": \(F), \"k\": 32, \"activation\": \"topk\"}".utf8)
        .write(to: URL(fileURLWithPath: dir + "/cfg.json"))
    // Header, then encoder.weight, encoder.bias, W_dec, b_dec as BF16, written in slices.
    let tensors: [(String, [Int])] = [("encoder.weight", [F, d]), ("encoder.bias", [F]), ("W_dec", [F, d]), ("b_dec", [d])]
    var header = "{", offset = 0
    for (i, (name, shape)) in tensors.enumerated() {
        let bytes = shape.reduce(1, *) * 2
        header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"BF16\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + bytes)]}"
        offset += bytes
    }
    header += "}"
    while (8 + header.utf8.count) % 8 != 0 { header += " " }
    FileManager.default.createFile(atPath: dir + "/sae.safetensors", contents: nil)
    let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/sae.safetensors"))
    var head = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
    head += Array(header.utf8)
    try fh.write(contentsOf: Data(head))
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    let scale = Float(1 / Double(d).squareRoot())
    for (_, shape) in tensors {
        var left = shape.reduce(1, *)
        while left > 0 {
            let n = min(left, 1 << 22)
            var slice = [UInt16](repeating: 0, count: n)
            for i in 0..<n {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                let v = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
                slice[i] = UInt16(v.bitPattern >> 16)
            }
            try slice.withUnsafeBytes { try fh.write(contentsOf: Data($0)) }
            left -= n
        }
    }
    try fh.close()
    let sae = try SAESet.load(folder: dir)
    var values = [Float](repeating: 0, count: 2 * N * d)
    for i in values.indices {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        values[i] = Float(state >> 40) / Float(1 << 24) * 2 - 1 + (i / d % 2 == 0 ? 0.1 : -0.1)
    }
    let hiddens = [1: try HiddenMatrix(rows: 2 * N, columns: d, values: values)]
    let rssBefore = peakRSSMiB()
    var t = now()
    let features = try ControlVector.fitWithSAE(hiddens: hiddens, sae: sae, decode: false)
    let fit = now() - t
    t = now()
    _ = try sae.byLayer[1]!.decode(features[1]!)
    report("sae_synthetic_latents", Double(F), "latents")
    report("sae_synthetic_width", Double(d), "")
    report("sae_synthetic_pairs", Double(N), "pairs")
    report("sae_synthetic_file_mib", Double(offset) / 1048576, "MiB")
    report("sae_encode_pca_s", fit, "s")
    report("sae_decode_s", now() - t, "s")
    report("peak_rss_before_mib", rssBefore, "MiB")
    report("peak_rss_mib", peakRSSMiB(), "MiB")
    report("sae_memory_formula_mib", Double(SAETrainingMemory.bytes(pairs: N, latents: F, inputSize: d)) / 1048576, "MiB")
    printJSON()
}

do {
    if let s = opt.saeSynthetic {
        try benchSyntheticSAE(latents: s.latents, width: s.width, pairs: s.pairs)
        exit(0)
    }
    let t0 = now()
    let model = try loadModel(path: opt.model, precision: opt.precision)
    report("load_s", now() - t0, "s")
    if !opt.json { print("OpenBLAS kernels: \(BLAS.coreName), \(BLAS.threads) thread(s); engine kernels: \(Kernels.level)") }
    guard let tok = model.tokenizer else { fail(EngineError.invalidArgument("model has no tokenizer")) }
    if opt.kernels {
        try benchKernels(model, tokenizer: tok)
        exit(0)
    }
    if opt.batchedDecode {
        try benchBatchedDecode(model, tokenizer: tok)
        exit(0)
    }
    if let chunks = opt.prefillChunks {
        try benchChunkedPrefill(model, tokenizer: tok, chunks: chunks.isEmpty ? [0, 64, 128, 256] : chunks)
        exit(0)
    }
    if opt.train {
        try benchTraining(model)
        exit(0)
    }
    if let folder = opt.sae {
        try benchSAE(model, folder: folder)
        exit(0)
    }
    let strings = try JSONDecoder().decode([String].self, from: Data(contentsOf: URL(fileURLWithPath: opt.strings)))
    let ws = ForwardWorkspace()

    // Prefill: one 512-token prompt, logits of the last position, against sgemm alone on the
    // weight products of the same 512 rows. The two are timed alternately so that load from
    // other processes affects both alike; the best of five runs of each counts.
    var long: [Int32] = []
    for s in strings where long.count < 512 { long += tok.encode(s + " ", addSpecial: false) }
    long = Array(long.prefix(512))
    let c = model.config
    let shapes = [(c.qDim + 2 * c.kvDim, c.hiddenSize), (c.hiddenSize, c.qDim),
                  (2 * c.feedForwardSize, c.hiddenSize), (c.hiddenSize, c.feedForwardSize)]
    let mats = shapes.map { FloatBuffer(count: $0.0 * $0.1) }
    let x = FloatBuffer(count: 2048 * 2 * c.feedForwardSize), y = FloatBuffer(count: 2048 * 2 * c.feedForwardSize)
    func sgemmPass(rows: Int) {
        for _ in 0..<c.blockCount {
            for (m, s) in zip(mats, shapes) { BLAS.sgemmNT(x.pointer, m.pointer, y.pointer, rows: rows, out: s.0, inner: s.1) }
        }
    }
    _ = try model.forward([SequenceInput(tokens: Array(long.prefix(64)))], workspace: ws) // warm-up
    sgemmPass(rows: long.count)
    var best = Double.infinity, bestCPU = Double.infinity, bestSgemm = Double.infinity
    for _ in 0..<5 {
        let t = now(), cpu = cpuNow()
        _ = try model.forward([SequenceInput(tokens: long)], options: ForwardOptions(logits: .last), workspace: ws)
        best = min(best, now() - t)
        bestCPU = min(bestCPU, cpuNow() - cpu)
        let ts = now()
        sgemmPass(rows: long.count)
        bestSgemm = min(bestSgemm, now() - ts)
    }
    report("prefill_512_tok_per_s", Double(long.count) / best, "tokens/s")
    report("prefill_512_tok_per_cpu_s", Double(long.count) / bestCPU, "tokens/CPU-s")
    report("prefill_sgemm_only_tok_per_s", Double(long.count) / bestSgemm, "tokens/s")
    report("prefill_share_of_sgemm_pct", 100 * bestSgemm / best, "%")
    if opt.prefillOnly {
        report("peak_rss_mib", peakRSSMiB(), "MiB")
        printJSON()
        exit(0)
    }

    // Decode: 128 greedy tokens after a short prompt (EOS ignored).
    if !opt.skipDecode {
        let prompt = tok.encode(strings[0], addSpecial: true)
        let req = GenerationRequest(prompt: prompt, maxTokens: 128, stopTokens: [])
        let t = now()
        var first = 0.0, firstCPU = 0.0
        var n = 0
        try model.generate(req, workspace: ws) { _ in
            n += 1
            if n == 1 { first = now(); firstCPU = cpuNow() }
            return true
        }
        report("decode_tok_per_s", Double(n - 1) / (now() - first), "tokens/s")
        report("decode_tok_per_cpu_s", Double(n - 1) / (cpuNow() - firstCPU), "tokens/CPU-s")
        report("time_to_first_token_ms", (first - t) * 1000, "ms")
    }
    if opt.skipExtraction {
        // What llama-bench does (a 512-token prefill and a decode), for its peak memory.
        report("peak_rss_mib", peakRSSMiB(), "MiB")
        printJSON()
        exit(0)
    }

    // Hidden-state extraction: every string, all layers (indices 1...L), last token.
    let seqs = strings.map { tok.encode($0, addSpecial: false) }
    let total = seqs.reduce(0) { $0 + $1.count }
    let indices = Array(1...model.config.blockCount)
    _ = try model.lastTokenHiddenStates(Array(seqs.prefix(32)), indices: indices, workspace: ws)
    best = .infinity
    bestCPU = .infinity
    for _ in 0..<3 {
        let t = now(), c = cpuNow()
        _ = try model.lastTokenHiddenStates(seqs, indices: indices, workspace: ws)
        best = min(best, now() - t)
        bestCPU = min(bestCPU, cpuNow() - c)
    }
    report("extract_\(seqs.count)_strings_tok_per_s", Double(total) / best, "tokens/s")
    report("extract_\(seqs.count)_strings_tok_per_cpu_s", Double(total) / bestCPU, "tokens/CPU-s")
    report("extract_\(seqs.count)_strings_s", best, "s")
    report("extract_tokens", Double(total), "tokens")

    // sgemm alone on the same shapes (the weight products of every block, packed rows).
    let rows = min(total, 2048)
    best = .infinity
    bestCPU = .infinity
    for _ in 0..<3 {
        let t = now(), cc = cpuNow()
        sgemmPass(rows: rows)
        best = min(best, now() - t)
        bestCPU = min(bestCPU, cpuNow() - cc)
    }
    let sgemmRate = Double(rows) / best
    report("sgemm_only_tok_per_s_(\(rows)_rows)", sgemmRate, "tokens/s")
    report("sgemm_only_tok_per_cpu_s", Double(rows) / bestCPU, "tokens/CPU-s")
    // 512 rows, the prefill shape.
    best = .infinity
    for _ in 0..<3 {
        let t = now()
        sgemmPass(rows: 512)
        best = min(best, now() - t)
    }
    report("sgemm_only_tok_per_s_(512_rows)", 512 / best, "tokens/s")
    let flopsPerToken = 2.0 * Double(shapes.reduce(0) { $0 + $1.0 * $1.1 } * c.blockCount)
    report("sgemm_gflops", flopsPerToken * sgemmRate / 1e9, "GFLOP/s")
    report("peak_rss_mib", peakRSSMiB(), "MiB")
    printJSON()
} catch {
    fail(error)
}

/// Training time for a template dataset (persona prompt in ChatML + suffix), every layer but
/// block 0, with and without the shared-prefix cache; the same dataset can be written out for
/// scripts/bench/bench_repeng.py.
@MainActor func benchTraining(_ model: any LanguageModel) throws {
    let suffixCount = (opt.pairs + 1) / 2
    // A built-in layout (no default system prompt), so the texts stay those of the recorded runs.
    guard let tokenizer = model.tokenizer else { throw ControlError.noTokenizer }
    let dataset = Array(try makeChatDataset(
        template: "Act as if you're extremely {persona}.",
        positivePersonas: ["happy", "joyful"], negativePersonas: ["sad", "depressed"],
        suffixes: Array(defaultSuffixes.prefix(suffixCount)), layout: ChatLayout(format: ChatFormat.detect(tokenizer: tokenizer))).prefix(opt.pairs))
    if let path = opt.dumpDataset {
        try encodeDataset(dataset).write(to: URL(fileURLWithPath: path))
    }
    let tokens = dataset.reduce(0) { $0 + (model.tokenizer?.encode($1.positive, addSpecial: true).count ?? 0)
        + (model.tokenizer?.encode($1.negative, addSpecial: true).count ?? 0) }
    report("train_pairs", Double(dataset.count), "pairs")
    report("train_tokens", Double(tokens), "tokens")
    var vectors: [ControlVector] = []
    for share in [false, true] {
        var best = Double.infinity, bestCPU = Double.infinity
        for _ in 0..<2 {
            let t = now(), c = cpuNow()
            vectors.append(try ControlVector.train(model: model, dataset: dataset, method: .pcaDiff, sharePrefixes: share))
            best = min(best, now() - t)
            bestCPU = min(bestCPU, cpuNow() - c)
        }
        report(share ? "train_s_shared_prefix" : "train_s", best, "s")
        report(share ? "train_cpu_s_shared_prefix" : "train_cpu_s", bestCPU, "CPU-s")
    }
    var minCos = 1.0
    for (l, a) in vectors[0].directions {
        guard let b = vectors[vectors.count - 1].directions[l] else { continue }
        var dot = 0.0
        for i in 0..<a.count { dot += Double(a[i]) * Double(b[i]) }
        minCos = min(minCos, dot)
    }
    report("train_min_cosine_shared_vs_not", minCos, "")
    report("peak_rss_mib", peakRSSMiB(), "MiB")
    printJSON()
}

/// Batched decode steps as the daemon runs them: n sequences with their own caches, each
/// prefilled alone with a different prompt, then `steps` decodeSteps of one token each (greedy
/// argmax, EOS ignored). Reports tokens/s per batch size and the ratio to one sequence; the
/// best of three runs of each size counts.
@MainActor func benchBatchedDecode(_ model: any LanguageModel, tokenizer tok: any Tokenizer) throws {
    let strings = try JSONDecoder().decode([String].self, from: Data(contentsOf: URL(fileURLWithPath: opt.strings)))
    let ws = ForwardWorkspace()
    let vocab = model.config.vocabSize
    let maxN = opt.batches.max() ?? 1
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: vocab * maxN)
    defer { logits.deallocate() }
    var single = 0.0
    for n in opt.batches {
        var best = Double.infinity
        for _ in 0..<3 {
            var caches: [KVCache] = []
            var next: [Int32] = []
            for i in 0..<n {
                let cache = model.makeCache(capacity: 64 + opt.steps)
                try model.decodeStep([SequenceInput(tokens: tok.encode(strings[i % strings.count], addSpecial: true), cache: cache)],
                                     workspace: ws, logits: logits)
                caches.append(cache)
                next.append(argmax(logits, vocab))
            }
            let t = now()
            for _ in 0..<opt.steps {
                let batch = (0..<n).map { SequenceInput(tokens: [next[$0]], cache: caches[$0]) }
                try model.decodeStep(batch, workspace: ws, logits: logits)
                for i in 0..<n { next[i] = argmax(logits + i * vocab, vocab) }
            }
            best = min(best, now() - t)
        }
        let rate = Double(n * opt.steps) / best
        if n == 1 { single = rate }
        report("batched_decode_\(n)_tok_per_s", rate, "tokens/s")
        report("batched_decode_\(n)_step_ms", best / Double(opt.steps) * 1000, "ms")
        if single > 0 { report("batched_decode_\(n)_vs_one", rate / single, "x") }
    }
    printJSON()
}

func argmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int32 {
    var best = 0
    for i in 1..<n where p[i] > p[best] { best = i }
    return Int32(best)
}

/// The decode-step kernel alone on one thread against a 302 MB matrix (576 columns, like
/// SmolLM2's), as weight bytes read per second, beside OpenBLAS sgemv; then the sampler's cost
/// per token on the model's logits after a real prompt, for common settings.
@MainActor func benchKernels(_ model: any LanguageModel, tokenizer tok: any Tokenizer) throws {
    BLAS.setThreads(1)
    if !opt.json { print("kernel and sampler timings below run on 1 thread") }
    let cols = 576, rows = 131_072
    let w = FloatBuffer(count: rows * cols), x = FloatBuffer(count: 16 * cols), y = FloatBuffer(count: 16 * rows)
    for i in 0..<(rows * cols) { w.pointer[i] = Float(i % 7) * 0.01 }
    for i in 0..<(16 * cols) { x.pointer[i] = 0.5 }
    func rate(_ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            let t = now()
            body()
            best = min(best, now() - t)
        }
        return Double(rows * cols * MemoryLayout<Float>.stride) / best / 1e9
    }
    report("sgemv_1_row_gb_per_s", rate { BLAS.sgemv(w.pointer, x.pointer, y.pointer, out: rows, inner: cols) }, "GB/s")
    for n in [1, 4, 8, 16] {
        let r = rate { BLAS.streamingNT(x.pointer, w.pointer, y.pointer, rows: n, out: rows, inner: cols) }
        report("streaming_\(n)_rows_gb_per_s", r, "GB/s")
        report("streaming_\(n)_rows_gmac_per_s", r / 4 * Double(n), "GMAC/s")
    }
    let prompt = tok.encode("Once upon a time, in a small village by the sea,", addSpecial: true)
    let logits = try model.forward([SequenceInput(tokens: prompt)], options: ForwardOptions(logits: .last),
                                   workspace: ForwardWorkspace())[0].logits
    let settings: [(String, SamplingParameters)] = [
        ("temperature_0.8", SamplingParameters(temperature: 0.8)),
        ("top_k_40_top_p_0.95", SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95)),
        ("top_p_0.95", SamplingParameters(temperature: 0.8, topP: 0.95)),
        ("temperature_1.5_top_p_0.99", SamplingParameters(temperature: 1.5, topP: 0.99)),
    ]
    var scratch = logits
    for (name, p) in settings {
        var sampler = Sampler(parameters: p, vocabSize: logits.count)
        let t = now()
        for _ in 0..<200 {
            scratch.withUnsafeMutableBufferPointer { buf in
                for i in 0..<logits.count { buf[i] = logits[i] }
                _ = sampler.sample(buf.baseAddress!)
            }
        }
        report("sample_\(name)_ms", (now() - t) / 200 * 1000, "ms/token")
    }
    printJSON()
}

/// Prefill of one long prompt run whole (chunk 0) or in chunks of each size, as the daemon's
/// scheduler runs it: tokens/s and the time of one chunk (what a decode step may wait behind).
@MainActor func benchChunkedPrefill(_ model: any LanguageModel, tokenizer tok: any Tokenizer, chunks: [Int]) throws {
    let strings = try JSONDecoder().decode([String].self, from: Data(contentsOf: URL(fileURLWithPath: opt.strings)))
    var prompt: [Int32] = []
    while prompt.count < opt.promptTokens { for s in strings where prompt.count < opt.promptTokens { prompt += tok.encode(s + " ", addSpecial: false) } }
    prompt = Array(prompt.prefix(opt.promptTokens))
    let ws = ForwardWorkspace()
    let logits = FloatBuffer(count: model.config.vocabSize)
    func run(_ chunk: Int) throws -> (seconds: Double, longestChunk: Double) {
        let state = try GenerationState(model: model, request: GenerationRequest(prompt: prompt, maxTokens: 1, prefillChunk: chunk))
        let t0 = now()
        var longest = 0.0
        while true {
            let c0 = now()
            let input = [SequenceInput(tokens: state.nextInput, cache: state.cache)]
            if state.nextInputNeedsLogits {
                try model.decodeStep(input, workspace: ws, logits: logits.pointer)
            } else {
                _ = try model.forward(input, options: ForwardOptions(logits: .none), workspace: ws)
            }
            longest = max(longest, now() - c0)
            if state.ran() { break }
        }
        return (now() - t0, longest)
    }
    _ = try run(256)  // warm-up
    for chunk in chunks {
        var best = (seconds: Double.infinity, longestChunk: 0.0)
        for _ in 0..<2 {
            let r = try run(chunk)
            if r.seconds < best.seconds { best = r }
        }
        let name = chunk == 0 ? "whole" : "chunk\(chunk)"
        report("prefill_\(name)_tok_s", Double(prompt.count) / best.seconds, "tokens/s (\(prompt.count)-token prompt)")
        report("prefill_\(name)_longest_pass_s", best.longestChunk, "s (longest single pass)")
    }
}
