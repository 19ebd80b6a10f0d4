// Llama-family decoder (llama, Mistral- and Qwen2-style GGUF files): weights and the batched
// forward pass with read and steer hooks. Math as in transformers' LlamaModel (v4.5x):
//   h = x + attention(rmsnorm1(x)); out = h + mlp(rmsnorm2(h)); out = steer(out, layer)
import CBLAS
import Dispatch
import Foundation

/// Weights of one transformer block.
struct LlamaBlock: @unchecked Sendable {
    var attnNorm: FloatBuffer          // [dim]
    var qkv: WeightMatrix              // [qDim + 2·kvDim, dim] (q, k, v stacked)
    var qkvBias: FloatBuffer?          // [qDim + 2·kvDim] (Qwen2)
    var attnOut: WeightMatrix          // [dim, qDim]
    var ffnNorm: FloatBuffer           // [dim]
    var gateUp: WeightMatrix           // [2·ffn, dim] (gate, up stacked)
    var down: WeightMatrix             // [dim, ffn]
}

/// A loaded llama-family model: configuration, tokenizer and f32 weights, immutable and
/// shareable across threads. Forward passes run on a caller-owned `ForwardWorkspace`.
public final class LlamaModel: @unchecked Sendable {
    /// `general.architecture` values this file implements.
    public static let supportedArchitectures: Set<String> = ["llama", "qwen2"]

    public let config: ModelConfig
    public let tokenizer: (any Tokenizer)?
    /// The GGUF metadata the model came from (chat template, names, …), when loaded from GGUF.
    public let source: GGUFFile?

    let tokenEmbedding: WeightMatrix   // [vocab, dim]
    let outputNorm: FloatBuffer        // [dim]
    let output: WeightMatrix           // [vocab, dim] (the embedding matrix when tied)
    let blocks: [LlamaBlock]
    let invFreq: [Float]               // [ropeDim / 2]

    // MARK: Loading

    /// Loads a GGUF file, dequantizing every weight to f32.
    public convenience init(path: String) throws {
        let file = try GGUFFile(path: path)
        try self.init(gguf: file)
    }

    /// Builds the model from an opened GGUF file.
    public init(gguf: GGUFFile) throws {
        let cfg = try ModelConfig(gguf: gguf)
        config = cfg
        source = gguf
        tokenizer = try makeTokenizer(gguf: gguf)
        let dim = cfg.hiddenSize, ffn = cfg.feedForwardSize
        let loader = GGUFWeightLoader(file: gguf)

        tokenEmbedding = try loader.matrix("token_embd.weight", rows: cfg.vocabSize, cols: dim)
        outputNorm = try loader.vector("output_norm.weight", count: dim)
        output = cfg.tiedEmbeddings
            ? tokenEmbedding
            : try loader.matrix("output.weight", rows: cfg.vocabSize, cols: dim)
        var blocks: [LlamaBlock] = []
        blocks.reserveCapacity(cfg.blockCount)
        for i in 0..<cfg.blockCount {
            let p = "blk.\(i)."
            let qkv = try loader.stacked(
                [(p + "attn_q.weight", cfg.qDim), (p + "attn_k.weight", cfg.kvDim), (p + "attn_v.weight", cfg.kvDim)],
                cols: dim)
            var bias: FloatBuffer?
            if gguf.tensor(named: p + "attn_q.bias") != nil {
                bias = try loader.stackedVector(
                    [(p + "attn_q.bias", cfg.qDim), (p + "attn_k.bias", cfg.kvDim), (p + "attn_v.bias", cfg.kvDim)])
            }
            blocks.append(LlamaBlock(
                attnNorm: try loader.vector(p + "attn_norm.weight", count: dim),
                qkv: qkv,
                qkvBias: bias,
                attnOut: try loader.matrix(p + "attn_output.weight", rows: dim, cols: cfg.qDim),
                ffnNorm: try loader.vector(p + "ffn_norm.weight", count: dim),
                gateUp: try loader.stacked([(p + "ffn_gate.weight", ffn), (p + "ffn_up.weight", ffn)], cols: dim),
                down: try loader.matrix(p + "ffn_down.weight", rows: dim, cols: ffn)))
        }
        self.blocks = blocks
        var freqFactors: [Float]?
        if gguf.tensor(named: "rope_freqs.weight") != nil {
            freqFactors = try loader.vector("rope_freqs.weight", count: cfg.ropeDim / 2).toArray(count: cfg.ropeDim / 2)
        }
        invFreq = LlamaModel.inverseFrequencies(cfg, factors: freqFactors)
    }

    /// Builds a model from explicit f32 weights (tests and synthetic configurations).
    /// `weights` maps GGUF tensor names to row-major values.
    public init(config cfg: ModelConfig, weights: [String: [Float]], tokenizer: (any Tokenizer)? = nil) throws {
        config = cfg
        source = nil
        self.tokenizer = tokenizer
        let dim = cfg.hiddenSize, ffn = cfg.feedForwardSize
        func get(_ n: String, _ count: Int) throws -> [Float] {
            guard let w = weights[n] else { throw EngineError.missingTensor(n) }
            guard w.count == count else { throw EngineError.tensorShape(name: n, expected: [count], found: [w.count]) }
            return w
        }
        func mat(_ parts: [(String, Int)], cols: Int) throws -> WeightMatrix {
            var all: [Float] = []
            for (n, r) in parts { all += try get(n, r * cols) }
            return WeightMatrix(rows: parts.reduce(0) { $0 + $1.1 }, cols: cols, f32: FloatBuffer(all))
        }
        tokenEmbedding = try mat([("token_embd.weight", cfg.vocabSize)], cols: dim)
        outputNorm = FloatBuffer(try get("output_norm.weight", dim))
        output = cfg.tiedEmbeddings ? tokenEmbedding : try mat([("output.weight", cfg.vocabSize)], cols: dim)
        blocks = try (0..<cfg.blockCount).map { i in
            let p = "blk.\(i)."
            return LlamaBlock(
                attnNorm: FloatBuffer(try get(p + "attn_norm.weight", dim)),
                qkv: try mat([(p + "attn_q.weight", cfg.qDim), (p + "attn_k.weight", cfg.kvDim), (p + "attn_v.weight", cfg.kvDim)], cols: dim),
                qkvBias: weights[p + "attn_q.bias"] == nil ? nil : FloatBuffer(
                    try get(p + "attn_q.bias", cfg.qDim) + get(p + "attn_k.bias", cfg.kvDim) + get(p + "attn_v.bias", cfg.kvDim)),
                attnOut: try mat([(p + "attn_output.weight", dim)], cols: cfg.qDim),
                ffnNorm: FloatBuffer(try get(p + "ffn_norm.weight", dim)),
                gateUp: try mat([(p + "ffn_gate.weight", ffn), (p + "ffn_up.weight", ffn)], cols: dim),
                down: try mat([(p + "ffn_down.weight", dim)], cols: ffn))
        }
        invFreq = LlamaModel.inverseFrequencies(cfg, factors: nil)
    }

    /// RoPE inverse frequencies computed as transformers does (f32): 1 / base^(2i/d).
    static func inverseFrequencies(_ cfg: ModelConfig, factors: [Float]?) -> [Float] {
        let d = cfg.ropeDim
        return (0..<(d / 2)).map { i in
            let exponent = Float(2 * i) / Float(d)
            var f = 1 / Float(Foundation.pow(Double(cfg.ropeBase), Double(exponent)))
            if let factors, i < factors.count, factors[i] > 0 { f /= factors[i] }
            return f
        }
    }

    /// Bytes of weights resident in memory.
    public var residentBytes: Int {
        var n = tokenEmbedding.residentBytes + (config.tiedEmbeddings ? 0 : output.residentBytes)
        for b in blocks { n += b.qkv.residentBytes + b.attnOut.residentBytes + b.gateUp.residentBytes + b.down.residentBytes }
        return n
    }

    /// A new, empty KV cache for one sequence.
    public func makeCache(capacity: Int = 256) -> KVCache {
        KVCache(blockCount: config.blockCount, kvDim: config.kvDim, capacity: capacity)
    }

    /// Normalizes a layer id (negative ids count from the end) to a block index, or throws.
    public func blockIndex(_ layer: Int) throws -> Int {
        let l = layer < 0 ? config.blockCount + layer : layer
        guard l >= 0, l < config.blockCount else {
            throw EngineError.layerOutOfRange(layer: layer, blockCount: config.blockCount)
        }
        return l
    }

    /// Validates steering against this model and lays it out for the forward pass. Layers
    /// whose vector is all zeros are dropped, so zero steering is bit-identical to none.
    public func prepareSteering(_ steering: Steering) throws -> PreparedSteering {
        let L = config.blockCount, dim = config.hiddenSize
        var blocks = [FloatBuffer?](repeating: nil, count: L)
        for (layer, v) in steering.vectors {
            guard layer >= 0, layer < L else { throw EngineError.layerOutOfRange(layer: layer, blockCount: L) }
            guard v.count == dim else { throw EngineError.steeringSize(layer: layer, expected: dim, found: v.count) }
            guard v.allSatisfy({ $0.isFinite }) else {
                throw EngineError.invalidArgument("steering vector for layer \(layer) has a non-finite value")
            }
            if v.allSatisfy({ $0 == 0 }) { continue }
            blocks[layer] = FloatBuffer(v)
        }
        return PreparedSteering(blocks: blocks, normalize: steering.normalize, hiddenSize: dim)
    }

    // MARK: Forward

    /// Runs a batch of sequences of any lengths packed into one matrix (no padding) and
    /// returns what `options` asks for, per sequence. Sequences with a cache append to it.
    /// Stops after the deepest requested hidden state when no logits are wanted.
    public func forward(
        _ batch: [SequenceInput], options: ForwardOptions = ForwardOptions(), workspace: ForwardWorkspace
    ) throws -> [SequenceOutput] {
        let plan = try prepare(batch, options: options, workspace: workspace)
        var outputs = [SequenceOutput](repeating: SequenceOutput(), count: batch.count)
        let dim = config.hiddenSize
        run(batch, plan: plan, workspace: workspace) { index, rows in
            // Read hook: copy requested rows of hidden state `index`.
            for (s, seq) in plan.sequences.enumerated() {
                let (r0, n) = options.hiddenPositions == .last ? (seq.row + seq.count - 1, 1) : (seq.row, seq.count)
                outputs[s].hidden[index] = Array(UnsafeBufferPointer(start: rows + r0 * dim, count: n * dim))
            }
        }
        if options.logits != .none {
            let vocab = config.vocabSize
            let ws = workspace
            for (s, seq) in plan.sequences.enumerated() {
                let (r0, n) = options.logits == .last ? (seq.row + seq.count - 1, 1) : (seq.row, seq.count)
                ws.logits.reserve(n * vocab)
                output.apply(ws.final.pointer + r0 * config.hiddenSize, n: n, into: ws.logits.pointer)
                outputs[s].logits = Array(UnsafeBufferPointer(start: ws.logits.pointer, count: n * vocab))
            }
        }
        return outputs
    }

    /// One decode step for many sequences, one new token each: writes the last-position logits
    /// of sequence i to `logits + i * vocabSize`. Every sequence must have a cache. Allocates
    /// nothing once the workspace and caches have grown to size.
    public func decodeStep(
        _ batch: [SequenceInput], workspace: ForwardWorkspace, logits: UnsafeMutablePointer<Float>
    ) throws {
        let plan = try prepare(batch, options: ForwardOptions(logits: .last), workspace: workspace)
        run(batch, plan: plan, workspace: workspace, read: nil)
        let ws = workspace, dim = config.hiddenSize
        if plan.sequences.allSatisfy({ $0.count == 1 }) {
            output.apply(ws.final.pointer, n: batch.count, into: logits)
        } else {
            for (s, seq) in plan.sequences.enumerated() {
                output.apply(ws.final.pointer + (seq.row + seq.count - 1) * dim, n: 1, into: logits + s * config.vocabSize)
            }
        }
    }

    /// Where each sequence's rows sit in the packed batch.
    struct Plan {
        struct Seq { var row: Int; var count: Int; var start: Int }
        var sequences: [Seq]
        var rows: Int
        /// Blocks to run (the deepest requested block + 1).
        var blocksToRun: Int
        var needFinalNorm: Bool
        var readIndices: Set<Int>
    }

    private func prepare(_ batch: [SequenceInput], options: ForwardOptions, workspace: ForwardWorkspace) throws -> Plan {
        let cfg = config
        var seqs: [Plan.Seq] = []
        var rows = 0
        for s in batch {
            guard !s.tokens.isEmpty else { throw EngineError.emptySequence }
            for t in s.tokens where t < 0 || Int(t) >= cfg.vocabSize {
                throw EngineError.tokenOutOfRange(id: t, vocabSize: cfg.vocabSize)
            }
            let start = s.cache?.length ?? 0
            if let st = s.steering, st.blocks.count != cfg.blockCount || st.hiddenSize != cfg.hiddenSize {
                throw EngineError.invalidArgument("steering was prepared for another model")
            }
            if let c = s.cache, c.blockCount != cfg.blockCount || c.kvDim != cfg.kvDim {
                throw EngineError.invalidArgument("KV cache was made for another model")
            }
            guard start + s.tokens.count <= cfg.contextLength else {
                throw EngineError.contextOverflow(needed: start + s.tokens.count, limit: cfg.contextLength)
            }
            seqs.append(Plan.Seq(row: rows, count: s.tokens.count, start: start))
            rows += s.tokens.count
        }
        let L = cfg.blockCount
        for i in options.hiddenStates where i < 0 || i > L {
            throw EngineError.hiddenIndexOutOfRange(index: i, max: L)
        }
        let deepest = options.hiddenStates.max() ?? 0
        let needFinal = options.logits != .none || options.hiddenStates.contains(L)
        let blocksToRun = needFinal ? L : deepest

        let plan = Plan(sequences: seqs, rows: rows, blocksToRun: blocksToRun, needFinalNorm: needFinal,
                        readIndices: Set(options.hiddenStates))
        workspace.reserve(rows: rows, config: cfg)
        for (s, seq) in zip(batch, seqs) {
            s.cache?.reserve(seq.start + seq.count)
        }
        return plan
    }

    /// The packed forward pass; `read(index, rows)` sees hidden state `index` for all rows.
    private func run(
        _ batch: [SequenceInput], plan: Plan, workspace ws: ForwardWorkspace,
        read: ((Int, UnsafePointer<Float>) -> Void)?
    ) {
        let cfg = config
        let dim = cfg.hiddenSize, T = plan.rows
        let qDim = cfg.qDim, kvDim = cfg.kvDim, qkvDim = qDim + 2 * kvDim, ffn = cfg.feedForwardSize
        let x = ws.x.pointer, xn = ws.xn.pointer, qkv = ws.qkv.pointer
        let attn = ws.attn.pointer, gu = ws.gateUp.pointer, hidden = ws.ffn.pointer

        // Embeddings.
        var r = 0
        for s in batch {
            for t in s.tokens {
                (x + r * dim).update(from: tokenEmbedding.f32 + Int(t) * dim, count: dim)
                r += 1
            }
        }
        if plan.readIndices.contains(0) { read?(0, x) }

        // RoPE angles per row (shared by every block).
        let half = cfg.ropeDim / 2
        let cosT = ws.cos.pointer, sinT = ws.sin.pointer
        for seq in plan.sequences {
            for i in 0..<seq.count {
                let pos = Float(seq.start + i) / cfg.ropeLinearFactor
                let row = seq.row + i
                for j in 0..<half {
                    let a = pos * invFreq[j]
                    cosT[row * half + j] = Foundation.cos(a)
                    sinT[row * half + j] = Foundation.sin(a)
                }
            }
        }

        let scale = 1 / Float(cfg.headDim).squareRoot()
        for b in 0..<plan.blocksToRun {
            let blk = blocks[b]
            // Attention.
            Kernels.rmsNorm(x, blk.attnNorm.pointer, xn, rows: T, dim: dim, eps: cfg.rmsNormEps)
            blk.qkv.apply(xn, n: T, into: qkv)
            if let bias = blk.qkvBias {
                for row in 0..<T { Kernels.add(bias.pointer, into: qkv + row * qkvDim, qkvDim) }
            }
            for row in 0..<T {
                let q = qkv + row * qkvDim
                applyRope(q, heads: cfg.headCount, cos: cosT + row * half, sin: sinT + row * half)
                applyRope(q + qDim, heads: cfg.kvHeadCount, cos: cosT + row * half, sin: sinT + row * half)
            }
            for (si, s) in batch.enumerated() {
                attention(block: b, seq: plan.sequences[si], cache: s.cache, qkv: qkv, out: attn, scale: scale, ws: ws)
            }
            blk.attnOut.apply(attn, n: T, into: x, accumulate: true)

            // MLP.
            Kernels.rmsNorm(x, blk.ffnNorm.pointer, xn, rows: T, dim: dim, eps: cfg.rmsNormEps)
            blk.gateUp.apply(xn, n: T, into: gu)
            Kernels.swiglu(gu, hidden, rows: T, ffn: ffn)
            blk.down.apply(hidden, n: T, into: x, accumulate: true)

            // Steer hook.
            for (si, seq) in plan.sequences.enumerated() {
                guard let st = batch[si].steering, let v = st.blocks[b]?.pointer else { continue }
                for i in 0..<seq.count {
                    let row = x + (seq.row + i) * dim
                    if st.normalize {
                        let pre = Kernels.norm(row, dim)
                        Kernels.add(v, into: row, dim)
                        let post = Kernels.norm(row, dim)
                        for j in 0..<dim { row[j] = row[j] / post * pre }
                    } else {
                        Kernels.add(v, into: row, dim)
                    }
                }
            }
            // Read hook (index L is read after the final norm below).
            if b + 1 < cfg.blockCount, plan.readIndices.contains(b + 1) { read?(b + 1, x) }
        }
        for (si, s) in batch.enumerated() {
            s.cache?.length = plan.sequences[si].start + plan.sequences[si].count
        }
        if plan.needFinalNorm {
            Kernels.rmsNorm(x, outputNorm.pointer, ws.final.pointer, rows: T, dim: dim, eps: cfg.rmsNormEps)
            if plan.readIndices.contains(cfg.blockCount) { read?(cfg.blockCount, ws.final.pointer) }
        }
    }

    @inline(__always)
    private func applyRope(_ v: UnsafeMutablePointer<Float>, heads: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let hd = config.headDim
        if config.ropeDim == hd {
            Kernels.rope(v, heads: heads, headDim: hd, cos: cos, sin: sin, interleaved: config.ropeInterleaved)
        } else {
            for h in 0..<heads {
                Kernels.rope(v + h * hd, heads: 1, headDim: config.ropeDim, cos: cos, sin: sin, interleaved: config.ropeInterleaved)
            }
        }
    }

    /// Causal grouped-query attention for one sequence's rows; writes [count, qDim] into `out`.
    private func attention(
        block b: Int, seq: Plan.Seq, cache: KVCache?, qkv: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, scale: Float, ws: ForwardWorkspace
    ) {
        let cfg = config
        let qDim = cfg.qDim, kvDim = cfg.kvDim, qkvDim = qDim + 2 * kvDim, hd = cfg.headDim
        let n = seq.count, ctx = seq.start + n
        let qBase = qkv + seq.row * qkvDim
        let kPtr: UnsafeMutablePointer<Float>, vPtr: UnsafeMutablePointer<Float>, ld: Int
        if let cache {
            let kc = cache.keys[b].pointer, vc = cache.values[b].pointer
            for i in 0..<n {
                (kc + (seq.start + i) * kvDim).update(from: qBase + i * qkvDim + qDim, count: kvDim)
                (vc + (seq.start + i) * kvDim).update(from: qBase + i * qkvDim + qDim + kvDim, count: kvDim)
            }
            (kPtr, vPtr, ld) = (kc, vc, kvDim)
        } else {
            (kPtr, vPtr, ld) = (qBase + qDim, qBase + qDim + kvDim, qkvDim)
        }
        ws.scores.reserve(n * ctx)
        let S = ws.scores.pointer
        let group = cfg.headCount / cfg.kvHeadCount
        let small = ctx <= ws.smallAttentionLimit && hd % 16 == 0
        for h in 0..<cfg.headCount {
            let g = h / group
            let q = qBase + h * hd
            let k = kPtr + g * hd, v = vPtr + g * hd
            let o = out + seq.row * qDim + h * hd
            if small {
                // Short contexts: SIMD dot products beat BLAS call overhead.
                for i in 0..<n {
                    Kernels.attendOne(q: q + i * qkvDim, keys: k, values: v, ld: ld, count: seq.start + i + 1,
                                      headDim: hd, scale: scale, scores: S, out: o + i * qDim)
                }
            } else if n == 1 {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(ctx), Int32(hd), scale, k, Int32(ld), q, 1, 0, S, 1)
                Kernels.softmax(S, n: ctx, valid: ctx)
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(ctx), Int32(hd), 1, v, Int32(ld), S, 1, 0, o, 1)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(ctx), Int32(hd), scale,
                            q, Int32(qkvDim), k, Int32(ld), 0, S, Int32(ctx))
                for i in 0..<n {
                    Kernels.softmax(S + i * ctx, n: ctx, valid: seq.start + i + 1)
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(hd), Int32(ctx), 1,
                            S, Int32(ctx), v, Int32(ld), 0, o, Int32(qDim))
            }
        }
    }
}

/// Scratch memory for forward passes, grown on demand and reused: one per thread of work.
public final class ForwardWorkspace: @unchecked Sendable {
    let x = FloatBuffer(count: 1), xn = FloatBuffer(count: 1), qkv = FloatBuffer(count: 1)
    let attn = FloatBuffer(count: 1), gateUp = FloatBuffer(count: 1), ffn = FloatBuffer(count: 1)
    let final = FloatBuffer(count: 1), scores = FloatBuffer(count: 1), logits = FloatBuffer(count: 1)
    let cos = FloatBuffer(count: 1), sin = FloatBuffer(count: 1)
    /// Contexts up to this length use the SIMD attention kernel instead of BLAS calls.
    var smallAttentionLimit = 128

    public init() {}

    func reserve(rows: Int, config c: ModelConfig) {
        x.reserve(rows * c.hiddenSize)
        xn.reserve(rows * c.hiddenSize)
        final.reserve(rows * c.hiddenSize)
        qkv.reserve(rows * (c.qDim + 2 * c.kvDim))
        attn.reserve(rows * c.qDim)
        gateUp.reserve(rows * 2 * c.feedForwardSize)
        ffn.reserve(rows * c.feedForwardSize)
        cos.reserve(rows * c.ropeDim / 2)
        sin.reserve(rows * c.ropeDim / 2)
    }
}

/// Reads tensors from a GGUF file into f32 weight storage, checking names and shapes.
struct GGUFWeightLoader {
    let file: GGUFFile

    func info(_ name: String, elements: Int) throws -> GGUFTensorInfo {
        guard let t = file.tensor(named: name) else { throw EngineError.missingTensor(name) }
        guard t.elementCount == elements else {
            throw EngineError.tensorShape(name: name, expected: [elements], found: t.dims)
        }
        guard t.type.isDecodable else { throw EngineError.tensorType(name: name, type: t.type.description) }
        return t
    }

    func decode(_ t: GGUFTensorInfo, into dst: UnsafeMutablePointer<Float>) throws {
        try Dequant.decode(t.type, file.tensorData(t), count: t.elementCount, into: dst)
    }

    func vector(_ name: String, count: Int) throws -> FloatBuffer {
        let t = try info(name, elements: count)
        let b = FloatBuffer(count: count)
        try decode(t, into: b.pointer)
        return b
    }

    func stackedVector(_ parts: [(String, Int)]) throws -> FloatBuffer {
        let total = parts.reduce(0) { $0 + $1.1 }
        let b = FloatBuffer(count: total)
        var off = 0
        for (n, c) in parts {
            try decode(try info(n, elements: c), into: b.pointer + off)
            off += c
        }
        return b
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        try stacked([(name, rows)], cols: cols)
    }

    /// Several [rows_i, cols] tensors stacked into one [Σ rows_i, cols] matrix.
    func stacked(_ parts: [(String, Int)], cols: Int) throws -> WeightMatrix {
        let rows = parts.reduce(0) { $0 + $1.1 }
        let b = FloatBuffer(count: rows * cols)
        var off = 0
        for (n, r) in parts {
            let t = try info(n, elements: r * cols)
            guard t.dims.count == 2, t.dims[0] == cols, t.dims[1] == r else {
                throw EngineError.tensorShape(name: n, expected: [cols, r], found: t.dims)
            }
            try decode(t, into: b.pointer + off * cols)
            off += r
        }
        return WeightMatrix(rows: rows, cols: cols, f32: b)
    }
}
