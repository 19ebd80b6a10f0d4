// Where a model's weights come from — a GGUF file, a Hugging Face safetensors checkpoint or named
// arrays — and the loading of a block's and the model's tensors by an architecture's table.

/// A source of named tensors, read as f32 and checked against the shapes the table expects.
protocol WeightSource {
    func has(_ name: String) -> Bool
    /// Rows of a [rows, cols] tensor, nil when absent or not of that shape.
    func rowCount(_ name: String, cols: Int) -> Int?
    /// A tensor of `count` values as stored.
    func rawVector(_ name: String, count: Int) throws -> FloatBuffer
    /// Several [rows_i, cols] tensors stacked into one [Σ rows_i, cols] matrix.
    func stacked(_ parts: [(TensorRef, Int)], cols: Int) throws -> WeightMatrix
}

extension WeightSource {
    func matrix(_ ref: TensorRef, rows: Int, cols: Int) throws -> WeightMatrix { try stacked([(ref, rows)], cols: cols) }

    /// A vector, with 1 added where the table says the file stores offsets.
    func vector(_ ref: TensorRef, count: Int) throws -> FloatBuffer {
        let v = try rawVector(ref.name, count: count)
        if ref.plusOne { for i in 0..<count { v.pointer[i] += 1 } }
        return v
    }

    /// A required tensor, or an optional one when present (nil when absent or not in the family).
    func optionalVector(_ ref: TensorRef?, count: Int) throws -> FloatBuffer? {
        guard let ref else { return nil }
        if ref.optional && !has(ref.name) { return nil }
        return try vector(ref, count: count)
    }

    func stackedVector(_ parts: [(TensorRef, Int)]) throws -> FloatBuffer {
        let total = parts.reduce(0) { $0 + $1.1 }
        let out = FloatBuffer(count: total)
        var off = 0
        for (ref, c) in parts {
            let v = try vector(ref, count: c)
            (out.pointer + off).update(from: v.pointer, count: c)
            off += c
        }
        return out
    }

    /// The weights of block `i` as `t` names them.
    func block(_ t: BlockTensors, config cfg: ModelConfig) throws -> DecoderBlock {
        let dim = cfg.hiddenSize, ffn = cfg.feedForwardSize
        var bias: FloatBuffer?
        if let qb = t.qBias, let kb = t.kBias, let vb = t.vBias, !qb.optional || has(qb.name) {
            bias = try stackedVector([(qb, cfg.qDim), (kb, cfg.kvDim), (vb, cfg.kvDim)])
        } else if t.qkvBias != nil {
            bias = try optionalVector(t.qkvBias, count: cfg.qDim + 2 * cfg.kvDim)
        }
        let qkvRows = [cfg.qDim, cfg.kvDim, cfg.kvDim], gateUpRows = cfg.gatedMLP ? [ffn, ffn] : [ffn]
        /// Separate tensors stacked, or one fused tensor holding all the rows.
        func projection(_ refs: [TensorRef], _ rows: [Int]) throws -> WeightMatrix {
            if refs.count == 1 { return try matrix(refs[0], rows: rows.reduce(0, +), cols: dim) }
            return try stacked(Array(zip(refs, rows)), cols: dim)
        }
        let block = DecoderBlock(
            attnNorm: try vector(t.attnNorm, count: dim),
            attnNormBias: try optionalVector(t.attnNormBias, count: dim),
            qkv: try projection(t.qkv, qkvRows),
            qkvBias: bias,
            qNorm: try optionalVector(t.qNorm, count: cfg.headDim),
            kNorm: try optionalVector(t.kNorm, count: cfg.headDim),
            attnOut: try matrix(t.attnOut, rows: dim, cols: cfg.qDim),
            attnOutBias: try optionalVector(t.attnOutBias, count: dim),
            postAttnNorm: try optionalVector(t.postAttnNorm, count: dim),
            ffnNorm: try vector(t.ffnNorm, count: dim),
            ffnNormBias: try optionalVector(t.ffnNormBias, count: dim),
            gateUp: try projection(t.gateUp, gateUpRows),
            gateUpBias: try optionalVector(t.gateUpBias, count: gateUpRows.reduce(0, +)),
            down: try matrix(t.down, rows: dim, cols: ffn),
            downBias: try optionalVector(t.downBias, count: dim),
            postFFNNorm: try optionalVector(t.postFFNNorm, count: dim))
        if cfg.qkNorm, block.qNorm == nil || block.kNorm == nil {
            throw EngineError.missingTensor(t.qNorm?.name ?? "q/k norm of block \(t.attnNorm.name)")
        }
        if cfg.postNorms, block.postAttnNorm == nil || block.postFFNNorm == nil {
            throw EngineError.missingTensor(t.postAttnNorm?.name ?? "post-norms of block \(t.attnNorm.name)")
        }
        if cfg.normalization == .layer, block.attnNormBias == nil || block.ffnNormBias == nil {
            throw EngineError.missingTensor(t.attnNormBias?.name ?? "LayerNorm biases of block \(t.attnNorm.name)")
        }
        return block
    }

    /// The tensors outside the blocks.
    func globals(_ g: GlobalTensors, config cfg: ModelConfig) throws -> ModelGlobals {
        let dim = cfg.hiddenSize
        let embedding = try matrix(g.tokenEmbedding, rows: cfg.vocabSize, cols: dim)
        var positions: WeightMatrix?
        if cfg.positionEncoding == .learned {
            guard let p = g.positionEmbedding else { throw EngineError.missingTensor("position embeddings") }
            // The table may be longer than the context the config allows; only its first rows are read.
            positions = try matrix(p, rows: rowCount(p.name, cols: dim) ?? cfg.contextLength, cols: dim)
        }
        let outputNormBias = try optionalVector(g.outputNormBias, count: dim)
        if cfg.normalization == .layer, outputNormBias == nil { throw EngineError.missingTensor("output norm bias") }
        return ModelGlobals(
            tokenEmbedding: embedding, positionEmbedding: positions,
            outputNorm: try vector(g.outputNorm, count: dim), outputNormBias: outputNormBias,
            output: cfg.tiedEmbeddings ? embedding : try matrix(g.output, rows: cfg.vocabSize, cols: dim))
    }
}

/// The weights outside the blocks.
struct ModelGlobals {
    var tokenEmbedding: WeightMatrix     // [vocab, dim]
    var positionEmbedding: WeightMatrix? // [positions, dim]
    var outputNorm: FloatBuffer          // [dim]
    var outputNormBias: FloatBuffer?     // [dim] (LayerNorm)
    var output: WeightMatrix             // [vocab, dim] (the embedding matrix when tied)
}

/// Named f32 arrays as a weight source (tests and synthetic models; no transposed tensors).
struct ArrayWeights: WeightSource {
    let weights: [String: [Float]]

    func has(_ name: String) -> Bool { weights[name] != nil }

    func rowCount(_ name: String, cols: Int) -> Int? {
        guard let w = weights[name], cols > 0, w.count % cols == 0 else { return nil }
        return w.count / cols
    }

    func get(_ n: String, _ count: Int) throws -> [Float] {
        guard let w = weights[n] else { throw EngineError.missingTensor(n) }
        guard w.count == count else { throw EngineError.tensorShape(name: n, expected: [count], found: [w.count]) }
        return w
    }

    func rawVector(_ name: String, count: Int) throws -> FloatBuffer { FloatBuffer(try get(name, count)) }

    func stacked(_ parts: [(TensorRef, Int)], cols: Int) throws -> WeightMatrix {
        var all: [Float] = []
        for (ref, r) in parts { all += try get(ref.name, r * cols) }
        return WeightMatrix(rows: parts.reduce(0) { $0 + $1.1 }, cols: cols, f32: FloatBuffer(all))
    }
}

/// Reads tensors from a GGUF file into f32 weight storage, checking names and shapes.
struct GGUFWeightLoader: WeightSource {
    let file: GGUFFile
    var precision: WeightPrecision = .exact

    func has(_ name: String) -> Bool { file.tensor(named: name) != nil }

    func rowCount(_ name: String, cols: Int) -> Int? {
        guard let t = file.tensor(named: name), t.dims.count == 2, t.dims[0] == cols else { return nil }
        return t.dims[1]
    }

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

    func rawVector(_ name: String, count: Int) throws -> FloatBuffer {
        let t = try info(name, elements: count)
        let b = FloatBuffer(count: count)
        try decode(t, into: b.pointer)
        return b
    }

    func stacked(_ parts: [(TensorRef, Int)], cols: Int) throws -> WeightMatrix {
        if precision == .native,
           try parts.contains(where: { WeightPrecision.nativeTypes.contains(try info($0.0.name, elements: $0.1 * cols).type) }) {
            // Each part in its own encoding (decoded to f32 where native has no kernel for it).
            return WeightMatrix(stacking: try parts.map { ref, r in
                let t = try info(ref.name, elements: r * cols)
                guard t.dims.count == 2, t.dims[0] == cols, t.dims[1] == r else {
                    throw EngineError.tensorShape(name: ref.name, expected: [cols, r], found: t.dims)
                }
                guard WeightPrecision.nativeTypes.contains(t.type) else {
                    return try GGUFWeightLoader(file: file).stacked([(ref, r)], cols: cols)
                }
                let data = file.tensorData(t)
                guard let base = data.baseAddress, let rowBytes = t.type.byteCount(elements: cols), rowBytes * r == data.count else {
                    throw EngineError.tensorShape(name: ref.name, expected: [cols, r], found: t.dims)
                }
                return WeightMatrix(rows: r, cols: cols, encoded: EncodedRows(type: t.type, base: base, rowBytes: rowBytes, owner: file))
            })
        }
        let rows = parts.reduce(0) { $0 + $1.1 }
        let b = FloatBuffer(count: rows * cols)
        var off = 0
        for (ref, r) in parts {
            let t = try info(ref.name, elements: r * cols)
            guard t.dims.count == 2, t.dims[0] == cols, t.dims[1] == r else {
                throw EngineError.tensorShape(name: ref.name, expected: [cols, r], found: t.dims)
            }
            try decode(t, into: b.pointer + off * cols)
            off += r
        }
        return WeightMatrix(rows: rows, cols: cols, f32: b)
    }
}

/// The tensors of a Hugging Face safetensors checkpoint, found under the checkpoint's prefix.
/// F32 matrices stored in place stay in the mapped file (stacked as parts, never copied); F16
/// and BF16 ones, and transposed ones, are converted into memory of their own.
struct SafeTensorsWeights: WeightSource {
    let checkpoint: SafeTensorsCheckpoint
    /// Prepended to every table name (e.g. `transformer.` for GPT-2's LM-head checkpoints,
    /// `language_model.` for multimodal Gemma-3).
    let prefix: String

    /// Finds the prefix under which the checkpoint holds `anchor` (the token embedding): none,
    /// or the shortest one among names ending in `.anchor`.
    init(checkpoint: SafeTensorsCheckpoint, anchor: String) throws {
        self.checkpoint = checkpoint
        if checkpoint.tensor(named: anchor) != nil {
            prefix = ""
            return
        }
        let candidates = checkpoint.tensorNames.filter { $0.hasSuffix("." + anchor) }
        guard let best = candidates.min(by: { $0.utf8.count < $1.utf8.count }) else { throw EngineError.missingTensor(anchor) }
        prefix = String(best.dropLast(anchor.utf8.count))
    }

    func find(_ name: String) throws -> (SafeTensorsFile, SafeTensorsTensorInfo) {
        guard let t = checkpoint.tensor(named: prefix + name), let f = checkpoint.file(of: prefix + name) else {
            throw EngineError.missingTensor(prefix + name)
        }
        guard t.dtype.isFloatWeight else { throw EngineError.tensorType(name: t.name, type: t.dtype.rawValue) }
        return (f, t)
    }

    func has(_ name: String) -> Bool { checkpoint.tensor(named: prefix + name) != nil }

    func rowCount(_ name: String, cols: Int) -> Int? {
        guard let t = checkpoint.tensor(named: prefix + name), t.shape.count == 2, t.shape[1] == cols else { return nil }
        return t.shape[0]
    }

    func rawVector(_ name: String, count: Int) throws -> FloatBuffer {
        let (f, t) = try find(name)
        guard t.elementCount == count, t.shape.reduce(1, *) == count else {
            throw EngineError.tensorShape(name: t.name, expected: [count], found: t.shape)
        }
        let b = FloatBuffer(count: count)
        try f.decode(t, into: b.pointer)
        return b
    }

    func stacked(_ parts: [(TensorRef, Int)], cols: Int) throws -> WeightMatrix {
        var matrices: [WeightMatrix] = []
        for (ref, rows) in parts {
            let (f, t) = try find(ref.name)
            let expected = ref.transposed ? [cols, rows] : [rows, cols]
            guard t.shape == expected else { throw EngineError.tensorShape(name: t.name, expected: expected, found: t.shape) }
            if !ref.transposed, let p = f.f32InPlace(t) {
                matrices.append(WeightMatrix(rows: rows, cols: cols, mapped: p, owner: f))
                continue
            }
            let b = FloatBuffer(count: rows * cols)
            try f.decode(t, into: b.pointer)
            if ref.transposed {
                // Stored [cols][rows]: transpose into [rows][cols].
                let src = FloatBuffer(count: rows * cols)
                src.pointer.update(from: b.pointer, count: rows * cols)
                for c in 0..<cols {
                    for r in 0..<rows { b.pointer[r * cols + c] = src.pointer[c * rows + r] }
                }
            }
            matrices.append(WeightMatrix(rows: rows, cols: cols, f32: b))
        }
        return WeightMatrix(stacking: matrices)
    }
}
