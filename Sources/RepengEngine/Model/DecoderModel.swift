// The shared decoder runtime: weights of every family this engine runs (Architectures/) and the
// batched forward pass with read and steer hooks. Per block, in the order of transformers'
// decoder layers (norm: RMSNorm, or LayerNorm with bias; [·]: parts a family may lack; x starts
// as the token embeddings, scaled, plus learned positions where the family has them):
//   h = x + [postnorm](o(attention(rope([qknorm] q), rope([qknorm] k), v; window, scale)) [+ b]) of norm(x)
//   out = h + [postnorm](down(act(gate [+ b])·up | act(up + b)) [+ b]) of norm(h);  out = steer(out, block)
// The read hook sees `out` after steering (index block + 1, as `output_hidden_states`).
import CBLAS
import RepengKernels
import Dispatch
import Foundation

/// Weights of one transformer block.
struct DecoderBlock: @unchecked Sendable {
    var attnNorm: FloatBuffer          // [dim]
    var attnNormBias: FloatBuffer?     // [dim] (LayerNorm)
    var qkv: WeightMatrix              // [qDim + 2·kvDim, dim] (q, k, v stacked)
    var qkvBias: FloatBuffer?          // [qDim + 2·kvDim] (Qwen2)
    var qNorm: FloatBuffer?            // [headDim] (Qwen3, Gemma-3)
    var kNorm: FloatBuffer?            // [headDim]
    var attnOut: WeightMatrix          // [dim, qDim]
    var attnOutBias: FloatBuffer?      // [dim] (GPT-2)
    var postAttnNorm: FloatBuffer?     // [dim] (Gemma)
    var ffnNorm: FloatBuffer           // [dim]
    var ffnNormBias: FloatBuffer?      // [dim] (LayerNorm)
    var gateUp: WeightMatrix           // [2·ffn, dim] (gate, up stacked), [ffn, dim] (up) ungated
    var gateUpBias: FloatBuffer?       // as gateUp's rows (GPT-2)
    var down: WeightMatrix             // [dim, ffn]
    var downBias: FloatBuffer?         // [dim] (GPT-2)
    var postFFNNorm: FloatBuffer?      // [dim] (Gemma)
}

/// A loaded decoder-only model of any family in Architectures/: configuration, tokenizer and f32
/// weights, immutable and shareable across threads.
public final class DecoderModel: LanguageModel, @unchecked Sendable {
    public let config: ModelConfig
    public let tokenizer: (any Tokenizer)?
    public let source: GGUFFile?
    public let fileWeightTypes: [String: Int]

    let tokenEmbedding: WeightMatrix   // [vocab, dim]
    let positionEmbedding: WeightMatrix? // [positions, dim] (learned positions)
    let outputNorm: FloatBuffer        // [dim]
    let outputNormBias: FloatBuffer?   // [dim] (LayerNorm)
    let output: WeightMatrix           // [vocab, dim] (the embedding matrix when tied)
    let blocks: [DecoderBlock]
    /// Distinct RoPE inverse-frequency tables ([ropeDim / 2] each) and the one each block uses.
    let ropeTables: [[Float]]
    let blockRope: [Int]

    // MARK: Loading

    /// Loads a GGUF file (dequantizing every weight to f32) or a Hugging Face model folder.
    public convenience init(path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            try self.init(huggingFace: path)
        } else {
            try self.init(gguf: GGUFFile(path: path))
        }
    }

    /// Builds the model from an opened GGUF file, with the tensors its architecture names;
    /// `precision` says whether weights are decoded to f32 at load or kept in their encoding.
    public convenience init(gguf: GGUFFile, precision: WeightPrecision = .exact) throws {
        let arch = try gguf.string("general.architecture")
        guard let family = Architectures.lookup(arch) else { throw EngineError.unsupportedArchitecture(arch) }
        let cfg = try family.config(gguf: gguf, architecture: arch)
        var types: [String: Int] = [:]
        for t in gguf.tensors { types[t.type.description, default: 0] += 1 }
        let loader = GGUFWeightLoader(file: gguf, precision: precision)
        var freqFactors: [Float]?
        if gguf.tensor(named: "rope_freqs.weight") != nil {
            freqFactors = try loader.rawVector("rope_freqs.weight", count: cfg.ropeDim / 2).toArray(count: cfg.ropeDim / 2)
        }
        try self.init(config: cfg, weights: loader, globals: family.globalTensors(config: cfg),
                      blocks: { family.blockTensors($0, config: cfg) }, tokenizer: makeTokenizer(gguf: gguf),
                      source: gguf, fileWeightTypes: types, ropeFactors: freqFactors)
    }

    /// Builds the model from a Hugging Face folder: config.json, the safetensors weights (one
    /// file or shards; F32 weights used in place in the mapped files) and tokenizer.json.
    public convenience init(huggingFace folder: String) throws {
        let hf = try HFConfig(path: folder + "/config.json")
        let type = try hf.modelType
        guard let family = Architectures.lookup(hfModelType: type) else {
            throw EngineError.unsupportedHFModelType(type)
        }
        let cfg = try family.config(hf: hf)
        let checkpoint = try SafeTensorsCheckpoint(folder: folder)
        let globals = family.hfGlobalTensors(config: cfg)
        let weights = try SafeTensorsWeights(checkpoint: checkpoint, anchor: globals.tokenEmbedding.name)
        var types: [String: Int] = [:]
        for f in checkpoint.files { for t in f.tensors { types[t.dtype.rawValue, default: 0] += 1 } }
        // A folder without tokenizer.json loads without a tokenizer (token ids only).
        let hasTokenizer = FileManager.default.fileExists(atPath: folder + "/tokenizer.json")
        try self.init(config: cfg, weights: weights, globals: globals, blocks: { family.hfBlockTensors($0, config: cfg) },
                      tokenizer: hasTokenizer ? makeTokenizer(huggingFaceFolder: folder) : nil, source: nil,
                      fileWeightTypes: types, ropeFactors: try hf.ropeFrequencyFactors(config: cfg))
    }

    /// Builds a model from explicit f32 weights (tests and synthetic configurations).
    /// `weights` maps GGUF tensor names to row-major values; the tensors are those of
    /// `config.architecture` (llama when unknown).
    public convenience init(config cfg: ModelConfig, weights: [String: [Float]], tokenizer: (any Tokenizer)? = nil) throws {
        let family = Architectures.lookup(cfg.architecture) ?? LlamaArchitecture.self
        try self.init(config: cfg, weights: ArrayWeights(weights: weights), globals: family.globalTensors(config: cfg),
                      blocks: { family.blockTensors($0, config: cfg) }, tokenizer: tokenizer, source: nil,
                      fileWeightTypes: [:], ropeFactors: nil)
    }

    /// Loads every tensor `globals` and `blocks` name from `weights`.
    init(config cfg: ModelConfig, weights: some WeightSource, globals: GlobalTensors, blocks tensors: (Int) -> BlockTensors,
         tokenizer: (any Tokenizer)?, source: GGUFFile?, fileWeightTypes: [String: Int], ropeFactors: [Float]?) throws {
        config = cfg
        self.tokenizer = tokenizer
        self.source = source
        self.fileWeightTypes = fileWeightTypes
        let g = try weights.globals(globals, config: cfg)
        (tokenEmbedding, positionEmbedding, outputNorm, outputNormBias, output) =
            (g.tokenEmbedding, g.positionEmbedding, g.outputNorm, g.outputNormBias, g.output)
        var blocks: [DecoderBlock] = []
        blocks.reserveCapacity(cfg.blockCount)
        for i in 0..<cfg.blockCount { blocks.append(try weights.block(tensors(i), config: cfg)) }
        self.blocks = blocks
        (ropeTables, blockRope) = DecoderModel.ropeTables(cfg, factors: ropeFactors)
    }

    /// One inverse-frequency table per distinct RoPE base, and each block's table.
    static func ropeTables(_ cfg: ModelConfig, factors: [Float]?) -> ([[Float]], [Int]) {
        guard cfg.positionEncoding == .rope else { return ([], []) }
        var bases: [Float] = []
        var index: [Int] = []
        for b in cfg.layerRopeBases {
            if let i = bases.firstIndex(of: b) { index.append(i) } else { bases.append(b); index.append(bases.count - 1) }
        }
        return (bases.map { inverseFrequencies(cfg, base: $0, factors: factors) }, index)
    }

    /// RoPE inverse frequencies computed as transformers does (f32): 1 / base^(2i/d).
    static func inverseFrequencies(_ cfg: ModelConfig, base: Float, factors: [Float]?) -> [Float] {
        let d = cfg.ropeDim
        return (0..<(d / 2)).map { i in
            let exponent = Float(2 * i) / Float(d)
            var f = 1 / Float(Foundation.pow(Double(base), Double(exponent)))
            if let factors, i < factors.count, factors[i] > 0 { f /= factors[i] }
            return f
        }
    }

    /// Bytes of weights resident in memory.
    public var residentBytes: Int {
        var n = tokenEmbedding.residentBytes + (config.tiedEmbeddings ? 0 : output.residentBytes)
            + (positionEmbedding?.residentBytes ?? 0)
        for b in blocks { n += b.qkv.residentBytes + b.attnOut.residentBytes + b.gateUp.residentBytes + b.down.residentBytes }
        return n
    }

    /// A new, empty KV cache for one sequence.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(blockCount: config.blockCount, kvDim: config.kvDim, capacity: capacity)
    }

    /// Validates steering against this model and lays it out for the forward pass. Layers
    /// whose vector is all zeros are dropped, so zero steering is bit-identical to none.
    public func prepareSteering(_ steering: Steering) throws -> PreparedSteering {
        let L = config.blockCount, dim = config.hiddenSize
        var blocks = [FloatBuffer?](repeating: nil, count: L)
        for (layer, v) in steering.vectors {
            _ = try config.blockIndex(layer, fromEnd: false)
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
        _ batch: [SequenceInput], options: ForwardOptions, workspace: ForwardWorkspace
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
                if config.logitSoftcap > 0 { Kernels.softcap(ws.logits.pointer, n * vocab, cap: config.logitSoftcap) }
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
        let int8 = workspace.int8Decode
        run(batch, plan: plan, workspace: workspace, read: nil, int8: int8)
        let ws = workspace, dim = config.hiddenSize
        if plan.sequences.allSatisfy({ $0.count == 1 }) {
            output.apply(ws.final.pointer, n: batch.count, into: logits, int8: int8)
        } else {
            for (s, seq) in plan.sequences.enumerated() {
                output.apply(ws.final.pointer + (seq.row + seq.count - 1) * dim, n: 1, into: logits + s * config.vocabSize,
                             int8: int8)
            }
        }
        if config.logitSoftcap > 0 { Kernels.softcap(logits, batch.count * config.vocabSize, cap: config.logitSoftcap) }
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
        // Blocks past the deepest one read are skipped, except when a sequence has a cache: a
        // cache must hold every block's keys and values for whoever continues from it.
        let blocksToRun = needFinal || batch.contains(where: { $0.cache != nil }) ? L : deepest

        let plan = Plan(sequences: seqs, rows: rows, blocksToRun: blocksToRun, needFinalNorm: needFinal,
                        readIndices: Set(options.hiddenStates))
        workspace.reserve(rows: rows, config: cfg)
        for (s, seq) in zip(batch, seqs) {
            s.cache?.reserve(seq.start + seq.count)
        }
        return plan
    }

    /// The packed forward pass; `read(index, rows)` sees hidden state `index` for all rows.
    /// `int8`: encoded weight products of up to `streamingBatchLimit` rows take int8 activations
    /// (decode steps only; `forward`, which serves extraction, keeps them f32).
    private func run(
        _ batch: [SequenceInput], plan: Plan, workspace ws: ForwardWorkspace,
        read: ((Int, UnsafePointer<Float>) -> Void)?, int8: Bool = false
    ) {
        let cfg = config
        let dim = cfg.hiddenSize, T = plan.rows
        let qDim = cfg.qDim, kvDim = cfg.kvDim, qkvDim = qDim + 2 * kvDim, ffn = cfg.feedForwardSize
        let x = ws.x.pointer, xn = ws.xn.pointer, qkv = ws.qkv.pointer
        let attn = ws.attn.pointer, gu = ws.gateUp.pointer, hidden = ws.ffn.pointer

        // Embeddings (scaled for Gemma).
        var r = 0
        for s in batch {
            for t in s.tokens {
                tokenEmbedding.copyRow(Int(t), into: x + r * dim)
                r += 1
            }
        }
        if cfg.embeddingScale != 1 { Kernels.scale(x, cfg.embeddingScale, T * dim) }
        if let positions = positionEmbedding {
            for seq in plan.sequences {
                for i in 0..<seq.count {
                    // xn is free until the first norm: the position row is decoded there.
                    let row = xn + (seq.row + i) * dim
                    positions.copyRow(seq.start + i, into: row)
                    Kernels.add(row, into: x + (seq.row + i) * dim, dim)
                }
            }
        }
        if plan.readIndices.contains(0) { read?(0, x) }

        let workers = ws.workerCount

        // RoPE angles per row, one table per distinct base (shared by the blocks using it).
        let half = cfg.ropeDim / 2
        ws.reserveRope(tables: ropeTables.count, values: T * half)
        let ropeScale = cfg.ropeLinearFactor
        for (ti, invFreq) in ropeTables.enumerated() {
            let cosT = ws.ropeCos[ti].pointer, sinT = ws.ropeSin[ti].pointer
            for seq in plan.sequences {
                Parallel.forRows(seq.count, valuesPerRow: 16 * half, workers: workers) { rows in
                    for i in rows {
                        let pos = Float(seq.start + i) / ropeScale
                        let row = seq.row + i
                        for j in 0..<half {
                            let a = pos * invFreq[j]
                            cosT[row * half + j] = Foundation.cos(a)
                            sinT[row * half + j] = Foundation.sin(a)
                        }
                    }
                }
            }
        }

        let scale = cfg.attentionScale
        let eps = cfg.rmsNormEps
        let hd = cfg.headDim
        let proj = ws.proj.pointer
        for b in 0..<plan.blocksToRun {
            let blk = blocks[b]
            let rope = b < blockRope.count
            let cosT = rope ? ws.ropeCos[blockRope[b]].pointer : x, sinT = rope ? ws.ropeSin[blockRope[b]].pointer : x
            // Attention.
            normalize(x, blk.attnNorm, blk.attnNormBias, into: xn, rows: T, workers: workers)
            blk.qkv.apply(xn, n: T, into: qkv, int8: int8)
            Parallel.forRows(T, valuesPerRow: qkvDim, workers: workers) { r in
                for row in r {
                    let q = qkv + row * qkvDim
                    if let bias = blk.qkvBias { Kernels.add(bias.pointer, into: q, qkvDim) }
                    if let qn = blk.qNorm, let kn = blk.kNorm {
                        // Per head, in place (each row is read before it is written).
                        Kernels.rmsNorm(q, qn.pointer, q, rows: cfg.headCount, dim: hd, eps: eps)
                        Kernels.rmsNorm(q + qDim, kn.pointer, q + qDim, rows: cfg.kvHeadCount, dim: hd, eps: eps)
                    }
                    if rope {
                        applyRope(q, heads: cfg.headCount, cos: cosT + row * half, sin: sinT + row * half)
                        applyRope(q + qDim, heads: cfg.kvHeadCount, cos: cosT + row * half, sin: sinT + row * half)
                    }
                }
            }
            attention(block: b, batch: batch, plan: plan, qkv: qkv, out: attn, scale: scale,
                      window: cfg.layerWindows[b], ws: ws, workers: workers)
            residual(blk.attnOut, attn, bias: blk.attnOutBias, postNorm: blk.postAttnNorm, into: x, rows: T,
                     scratch: proj, workers: workers, int8: int8)

            // MLP.
            normalize(x, blk.ffnNorm, blk.ffnNormBias, into: xn, rows: T, workers: workers)
            blk.gateUp.apply(xn, n: T, into: gu, int8: int8)
            let activation = cfg.activation, gated = cfg.gatedMLP, guWidth = gated ? 2 * ffn : ffn
            Parallel.forRows(T, valuesPerRow: 4 * ffn, workers: workers) { r in
                let rows = gu + r.lowerBound * guWidth
                if let bias = blk.gateUpBias {
                    for i in 0..<r.count { Kernels.add(bias.pointer, into: rows + i * guWidth, guWidth) }
                }
                switch (activation, gated) {
                case (.silu, true): Kernels.swiglu(rows, hidden + r.lowerBound * ffn, rows: r.count, ffn: ffn)
                case (.geluTanh, true): Kernels.geglu(rows, hidden + r.lowerBound * ffn, rows: r.count, ffn: ffn)
                case (_, false): Kernels.geluTanh(rows, r.count * ffn)   // validate() allows only GELU here
                }
            }
            residual(blk.down, gated ? hidden : gu, bias: blk.downBias, postNorm: blk.postFFNNorm, into: x, rows: T,
                     scratch: proj, workers: workers, int8: int8)

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
            normalize(x, outputNorm, outputNormBias, into: ws.final.pointer, rows: T, workers: workers)
            if plan.readIndices.contains(cfg.blockCount) { read?(cfg.blockCount, ws.final.pointer) }
        }
    }

    /// The family's norm of `rows` rows of x into y: RMSNorm, or LayerNorm with `bias`.
    private func normalize(_ x: UnsafePointer<Float>, _ w: FloatBuffer, _ bias: FloatBuffer?,
                           into y: UnsafeMutablePointer<Float>, rows: Int, workers: Int) {
        let dim = config.hiddenSize, eps = config.rmsNormEps
        Parallel.forRows(rows, valuesPerRow: dim, workers: workers) { r in
            let x0 = x + r.lowerBound * dim, y0 = y + r.lowerBound * dim
            if let bias {
                Kernels.layerNorm(x0, w.pointer, bias.pointer, y0, rows: r.count, dim: dim, eps: eps)
            } else {
                Kernels.rmsNorm(x0, w.pointer, y0, rows: r.count, dim: dim, eps: eps)
            }
        }
    }

    /// x += [postnorm](W·a [+ bias]) for `rows` rows, through `scratch` when there is a post-norm.
    private func residual(_ w: WeightMatrix, _ a: UnsafeMutablePointer<Float>, bias: FloatBuffer?, postNorm: FloatBuffer?,
                          into x: UnsafeMutablePointer<Float>, rows: Int, scratch: UnsafeMutablePointer<Float>,
                          workers: Int, int8: Bool) {
        let dim = config.hiddenSize
        if let postNorm {
            w.apply(a, n: rows, into: scratch, int8: int8)
            if let bias { for r in 0..<rows { Kernels.add(bias.pointer, into: scratch + r * dim, dim) } }
            addNormalized(scratch, postNorm, into: x, rows: rows, workers: workers)
        } else {
            w.apply(a, n: rows, into: x, accumulate: true, int8: int8)
            if let bias { for r in 0..<rows { Kernels.add(bias.pointer, into: x + r * dim, dim) } }
        }
    }

    /// x[r] += rmsnorm(v[r]) · w for `rows` rows (v is overwritten).
    private func addNormalized(_ v: UnsafeMutablePointer<Float>, _ w: FloatBuffer, into x: UnsafeMutablePointer<Float>,
                               rows: Int, workers: Int) {
        let dim = config.hiddenSize, eps = config.rmsNormEps
        Parallel.forRows(rows, valuesPerRow: 2 * dim, workers: workers) { r in
            let v0 = v + r.lowerBound * dim
            Kernels.rmsNorm(v0, w.pointer, v0, rows: r.count, dim: dim, eps: eps)
            Kernels.add(v0, into: x + r.lowerBound * dim, r.count * dim)
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

    /// Causal grouped-query attention for every sequence of the batch; writes [rows, qDim]
    /// into `out`. Each sequence gets a kernel chosen from its own shape only (so its results
    /// do not depend on the rest of the batch): short contexts the per-row SIMD kernel, longer
    /// multi-row runs the tiled causal kernel, single rows with long contexts and head sizes
    /// that are not a multiple of 16 the BLAS path. The SIMD kernels' work is cut into
    /// (sequence, head, query tile) units that run on `workers` threads when it is large enough.
    private func attention(
        block b: Int, batch: [SequenceInput], plan: Plan, qkv: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, scale: Float, window: Int, ws: ForwardWorkspace, workers: Int
    ) {
        let cfg = config
        let qDim = cfg.qDim, kvDim = cfg.kvDim, qkvDim = qDim + 2 * kvDim, hd = cfg.headDim
        let heads = cfg.headCount, kvHeads = cfg.kvHeadCount, group = heads / kvHeads
        // Soft-capped scores (Gemma-2) go through the BLAS path, which caps them before the softmax.
        let simd = hd % 16 == 0 && ws.simdAttention && cfg.attentionSoftcap == 0
        ws.attentionSequences.removeAll(keepingCapacity: true)
        ws.attentionUnits.removeAll(keepingCapacity: true)
        var packedKeys = 0, scratch = 0, work = 0
        for (si, s) in batch.enumerated() {
            let seq = plan.sequences[si]
            let n = seq.count, ctx = seq.start + n
            let qBase = qkv + seq.row * qkvDim
            let kPtr: UnsafeMutablePointer<Float>, vPtr: UnsafeMutablePointer<Float>, ld: Int
            if let cache = s.cache {
                let kc = cache.keys[b].pointer, vc = cache.values[b].pointer
                for i in 0..<n {
                    (kc + (seq.start + i) * kvDim).update(from: qBase + i * qkvDim + qDim, count: kvDim)
                    (vc + (seq.start + i) * kvDim).update(from: qBase + i * qkvDim + qDim + kvDim, count: kvDim)
                }
                (kPtr, vPtr, ld) = (kc, vc, kvDim)
            } else {
                (kPtr, vPtr, ld) = (qBase + qDim, qBase + qDim + kvDim, qkvDim)
            }
            // A window shorter than the context: each row sees its own last `window` keys (per-row kernels).
            let windowed = window > 0 && ctx > window
            let tiled: Bool
            if simd && (ctx <= ws.smallAttentionLimit || windowed) {
                tiled = false
            } else if simd && n > 1 && ws.tiledAttention {
                tiled = true
            } else {
                attentionBLAS(seq: seq, q: qBase, keys: kPtr, values: vPtr, ld: ld,
                              out: out + seq.row * qDim, scale: scale, window: windowed ? window : 0, ws: ws)
                continue
            }
            let ldk = tiled ? Kernels.packedKeyStride(ctx) : 0
            let index = ws.attentionSequences.count
            ws.attentionSequences.append(AttentionSequence(
                q: qBase, keys: kPtr, values: vPtr, ld: ld, out: out + seq.row * qDim,
                start: seq.start, count: n, keysT: packedKeys, ldk: ldk, window: windowed ? window : 0))
            if tiled {
                packedKeys += kvHeads * hd * ldk
                scratch = max(scratch, Kernels.causalRowBlock * ldk)
                // Later tiles see more keys: queue them first so the slowest units start early.
                let rowsPerTile = ForwardWorkspace.attentionTileRows
                let tiles = (n + rowsPerTile - 1) / rowsPerTile
                for t in stride(from: tiles - 1, through: 0, by: -1) {
                    let r0 = t * rowsPerTile, r1 = min(n, r0 + rowsPerTile)
                    for h in 0..<heads { ws.attentionUnits.append(AttentionUnit(sequence: index, head: h, rows: r0..<r1)) }
                }
            } else {
                scratch = max(scratch, ctx)
                for h in 0..<heads { ws.attentionUnits.append(AttentionUnit(sequence: index, head: h, rows: 0..<n)) }
            }
            // Multiply-adds of QKᵀ and SV over the visible keys (×2 flops).
            work += 4 * heads * hd * n * (seq.start + (n + 1) / 2)
        }
        let units = ws.attentionUnits, seqs = ws.attentionSequences
        guard !units.isEmpty else { return }
        let threads = plan.rows > 1 && work >= ws.parallelAttentionWork ? workers : 1
        ws.reserveAttentionScratch(workers: threads, scores: scratch, packedKeys: packedKeys)
        let keysT = ws.keysT.pointer, scores = ws.workerScores

        // Keys of the tiled sequences, transposed per KV head.
        if packedKeys > 0 {
            Parallel.forEach(count: seqs.count * kvHeads, workers: threads) { _, i in
                let a = seqs[i / kvHeads], g = i % kvHeads
                guard a.ldk > 0 else { return }
                Kernels.packKeysTransposed(a.keys + g * hd, ld: a.ld, count: a.start + a.count, headDim: hd,
                                           into: keysT + a.keysT + g * hd * a.ldk, stride: a.ldk)
            }
        }
        Parallel.forEach(count: units.count, workers: threads) { worker, u in
            let unit = units[u], a = seqs[unit.sequence]
            let h = unit.head, g = h / group
            let S = scores[worker].pointer
            if a.ldk > 0 {
                var i = unit.rows.lowerBound
                while i < unit.rows.upperBound {
                    let r = min(Kernels.causalRowBlock, unit.rows.upperBound - i)
                    Kernels.attendCausalRows(
                        q: a.q + i * qkvDim + h * hd, ldq: qkvDim, rows: r, visible: a.start + i + 1,
                        keysT: keysT + a.keysT + g * hd * a.ldk, ldk: a.ldk, values: a.values + g * hd, ldv: a.ld,
                        headDim: hd, scale: scale, scores: S, out: a.out + i * qDim + h * hd, ldo: qDim)
                    i += r
                }
            } else {
                // Short contexts: SIMD dot products beat BLAS call overhead.
                for i in unit.rows {
                    let visible = a.start + i + 1
                    let first = a.window > 0 ? max(0, visible - a.window) : 0
                    Kernels.attendOne(q: a.q + i * qkvDim + h * hd, keys: a.keys + first * a.ld + g * hd,
                                      values: a.values + first * a.ld + g * hd, ld: a.ld, count: visible - first,
                                      headDim: hd, scale: scale, scores: S, out: a.out + i * qDim + h * hd)
                }
            }
        }
    }

    /// Attention of one sequence through BLAS (sgemv for one row, otherwise sgemm over the
    /// full score matrix, masked in the softmax), one head after another on this thread. With a
    /// `window` (> 0), row by row over each row's last `window` keys.
    private func attentionBLAS(
        seq: Plan.Seq, q qBase: UnsafeMutablePointer<Float>, keys kPtr: UnsafeMutablePointer<Float>,
        values vPtr: UnsafeMutablePointer<Float>, ld: Int, out: UnsafeMutablePointer<Float>,
        scale: Float, window: Int, ws: ForwardWorkspace
    ) {
        let cfg = config
        let qDim = cfg.qDim, qkvDim = qDim + 2 * cfg.kvDim, hd = cfg.headDim
        let n = seq.count, ctx = seq.start + n
        ws.scores.reserve(n * ctx)
        let S = ws.scores.pointer
        let group = cfg.headCount / cfg.kvHeadCount
        let cap = cfg.attentionSoftcap
        for h in 0..<cfg.headCount {
            let g = h / group
            let q = qBase + h * hd
            let k = kPtr + g * hd, v = vPtr + g * hd
            let o = out + h * hd
            if window > 0 {
                for i in 0..<n {
                    let visible = seq.start + i + 1, first = max(0, visible - window), m = visible - first
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(hd), scale, k + first * ld, Int32(ld),
                                q + i * qkvDim, 1, 0, S, 1)
                    if cap > 0 { Kernels.softcap(S, m, cap: cap) }
                    Kernels.softmax(S, n: m, valid: m)
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(m), Int32(hd), 1, v + first * ld, Int32(ld), S, 1, 0,
                                o + i * qDim, 1)
                }
            } else if n == 1 {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(ctx), Int32(hd), scale, k, Int32(ld), q, 1, 0, S, 1)
                if cap > 0 { Kernels.softcap(S, ctx, cap: cap) }
                Kernels.softmax(S, n: ctx, valid: ctx)
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(ctx), Int32(hd), 1, v, Int32(ld), S, 1, 0, o, 1)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(ctx), Int32(hd), scale,
                            q, Int32(qkvDim), k, Int32(ld), 0, S, Int32(ctx))
                for i in 0..<n {
                    if cap > 0 { Kernels.softcap(S + i * ctx, seq.start + i + 1, cap: cap) }
                    Kernels.softmax(S + i * ctx, n: ctx, valid: seq.start + i + 1)
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(hd), Int32(ctx), 1,
                            S, Int32(ctx), v, Int32(ld), 0, o, Int32(qDim))
            }
        }
    }
}

/// One sequence's operands for the SIMD attention kernels.
struct AttentionSequence {
    var q: UnsafeMutablePointer<Float>          // first query row; rows qkvDim apart
    var keys: UnsafeMutablePointer<Float>       // key rows `ld` apart (KV head g at + g·headDim)
    var values: UnsafeMutablePointer<Float>
    var ld: Int
    var out: UnsafeMutablePointer<Float>        // first output row; rows qDim apart
    var start: Int                              // positions already in the cache
    var count: Int                              // query rows
    var keysT: Int                              // offset of the packed keys in the workspace (tiled only)
    var ldk: Int                                // packed key stride; 0 = per-row kernel
    var window: Int                             // keys each row sees, its own included (0: all)
}

/// A piece of attention work: some query rows of one head of one sequence.
struct AttentionUnit {
    var sequence: Int
    var head: Int
    var rows: Range<Int>
}

/// Scratch memory for forward passes, grown on demand and reused: one per thread of work.
public final class ForwardWorkspace: @unchecked Sendable {
    let x = FloatBuffer(count: 1), xn = FloatBuffer(count: 1), qkv = FloatBuffer(count: 1)
    let attn = FloatBuffer(count: 1), gateUp = FloatBuffer(count: 1), ffn = FloatBuffer(count: 1)
    let final = FloatBuffer(count: 1), scores = FloatBuffer(count: 1), logits = FloatBuffer(count: 1)
    let proj = FloatBuffer(count: 1)
    /// RoPE cos/sin per row, one pair per distinct RoPE base of the model.
    private(set) var ropeCos: [FloatBuffer] = [], ropeSin: [FloatBuffer] = []
    /// Packed (transposed) keys for the tiled attention kernel.
    let keysT = FloatBuffer(count: 1)
    /// Attention scores scratch, one buffer per worker thread.
    private(set) var workerScores: [FloatBuffer] = []
    /// Per-pass attention bookkeeping, kept to reuse its storage.
    var attentionSequences: [AttentionSequence] = []
    var attentionUnits: [AttentionUnit] = []

    /// Contexts up to this length use the per-row SIMD attention kernel.
    var smallAttentionLimit = 128
    /// Multi-row runs over longer contexts use the tiled causal kernel; false sends them to the
    /// BLAS path (full score matrix), kept as the reference the tiled kernel is tested against.
    var tiledAttention = true
    /// False sends all attention to the BLAS path (the reference the SIMD kernels are tested against).
    var simdAttention = true
    /// Threads for the element-wise and attention work; nil follows the BLAS thread count.
    var threadLimit: Int?
    /// Whether `decodeStep` multiplies encoded weights (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
    /// Q6_K) by int8-quantized activations, as llama.cpp does: several times faster, within
    /// the quantization of the activations (see docs/PERFORMANCE.md). False keeps decode steps
    /// f32 like `forward`. Starts from `Kernels.int8Activations` (REPENG_Q8_ACTIVATIONS=0: false).
    public var int8Decode = Kernels.int8Activations

    /// Query rows per unit of tiled attention work (a multiple of `Kernels.causalRowBlock`).
    static let attentionTileRows = 48
    /// Attention flops below which a pass runs its attention on one thread (about 50 µs).
    var parallelAttentionWork = 1 << 21

    public init() {}

    /// Threads a forward pass spreads its non-BLAS work over.
    var workerCount: Int { max(1, threadLimit ?? BLAS.threads) }

    func reserveAttentionScratch(workers: Int, scores: Int, packedKeys: Int) {
        while workerScores.count < workers { workerScores.append(FloatBuffer(count: scores)) }
        for w in 0..<workers { workerScores[w].reserve(scores) }
        keysT.reserve(packedKeys)
    }

    func reserve(rows: Int, config c: ModelConfig) {
        x.reserve(rows * c.hiddenSize)
        xn.reserve(rows * c.hiddenSize)
        final.reserve(rows * c.hiddenSize)
        qkv.reserve(rows * (c.qDim + 2 * c.kvDim))
        attn.reserve(rows * c.qDim)
        gateUp.reserve(rows * 2 * c.feedForwardSize)
        ffn.reserve(rows * c.feedForwardSize)
        proj.reserve(rows * c.hiddenSize)
    }

    func reserveRope(tables: Int, values: Int) {
        while ropeCos.count < tables { ropeCos.append(FloatBuffer(count: values)); ropeSin.append(FloatBuffer(count: values)) }
        for t in 0..<tables { ropeCos[t].reserve(values); ropeSin[t].reserve(values) }
    }
}
