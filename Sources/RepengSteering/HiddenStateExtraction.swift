// Last-token hidden states of many token sequences on the engine, with the work shared across
// sequences: identical sequences run once, a sequence that is a prefix of another is read from
// the longer one's run (causal attention: position i sees only tokens ≤ i), and common prefixes
// run once into a KV cache that their continuations copy.
import Foundation
import RepengEngine

/// Last-token hidden states of token sequences at the outputs of the given blocks (block i =
/// transformers hidden state i + 1; the last block after the final norm). Returns one matrix
/// per block with one row per input sequence, in input order.
///
/// - `batchSize`: most sequences (or, with prefix sharing, token runs) per forward pass.
/// - `sharePrefixes`: run shared token prefixes once (see the file comment). The result is the
///   same up to float rounding; `false` runs every distinct sequence whole (reference path).
/// - `progress(done)`: distinct sequences whose states have been read so far.
public func lastTokenHiddenStates(
    model: any LanguageModel, sequences: [[Int32]], layers blocks: [Int], batchSize: Int = 32,
    sharePrefixes: Bool = true, progress: ((Int) throws -> Void)? = nil
) throws -> [Int: HiddenMatrix] {
    guard batchSize >= 1 else { throw TrainingError.badBatchSize(batchSize) }
    let d = model.config.hiddenSize
    for b in blocks { _ = try model.config.blockIndex(b, fromEnd: false) }
    guard !sequences.isEmpty else { throw TrainingError.emptyDataset }
    for (i, s) in sequences.enumerated() {
        let side = i % 2 == 0 ? "positive" : "negative"
        guard !s.isEmpty else { throw TrainingError.emptyText(index: i / 2, side: side) }
        // Checked before anything is allocated in proportion to the tokens.
        guard s.count <= model.config.contextLength else {
            throw TrainingError.textTooLong(index: i / 2, side: side, tokens: s.count, limit: model.config.contextLength)
        }
    }
    // Distinct sequences, in first-seen order.
    var slot: [[Int32]: Int] = [:]
    var unique: [[Int32]] = []
    var rowOf = [Int](repeating: 0, count: sequences.count)
    for (i, s) in sequences.enumerated() {
        if let k = slot[s] { rowOf[i] = k } else {
            slot[s] = unique.count
            rowOf[i] = unique.count
            unique.append(s)
        }
    }
    let indices = Array(Set(blocks.map { $0 + 1 })).sorted()
    var states = StateTable(indices: indices, rows: unique.count, width: d)
    if sharePrefixes {
        try runShared(model: model, unique: unique, indices: indices, batchSize: batchSize, into: &states, progress: progress)
    } else {
        try runWhole(model: model, unique: unique, indices: indices, batchSize: batchSize, into: &states, progress: progress)
    }
    var out: [Int: HiddenMatrix] = [:]
    for b in blocks {
        let src = states.values[b + 1] ?? []
        var values = [Float](repeating: 0, count: sequences.count * d)
        src.withUnsafeBufferPointer { sp in
            values.withUnsafeMutableBufferPointer { vp in
                guard let s = sp.baseAddress, let v = vp.baseAddress else { return }
                for (i, k) in rowOf.enumerated() { (v + i * d).update(from: s + k * d, count: d) }
            }
        }
        out[b] = try HiddenMatrix(rows: sequences.count, columns: d, values: values)
    }
    return out
}

/// Per hidden-state index, a [rows × width] matrix being filled.
struct StateTable {
    var values: [Int: [Float]]
    let width: Int

    init(indices: [Int], rows: Int, width: Int) {
        self.width = width
        values = [:]
        for i in indices { values[i] = [Float](repeating: 0, count: rows * width) }
    }

    /// Copies row `sourceRow` of `source` into row `row` of index `index`.
    mutating func set(index: Int, row: Int, from source: [Float], sourceRow: Int) throws {
        let w = width
        guard (sourceRow + 1) * w <= source.count else {
            throw TrainingError.badMatrix(rows: sourceRow + 1, columns: w, values: source.count)
        }
        values[index, default: []].withUnsafeMutableBufferPointer { dst in
            source.withUnsafeBufferPointer { src in
                guard let d = dst.baseAddress, let s = src.baseAddress, (row + 1) * w <= dst.count else { return }
                (d + row * w).update(from: s + sourceRow * w, count: w)
            }
        }
    }
}

/// Reference path: every distinct sequence run whole, `batchSize` per pass.
private func runWhole(
    model: any LanguageModel, unique: [[Int32]], indices: [Int], batchSize: Int, into states: inout StateTable,
    progress: ((Int) throws -> Void)?
) throws {
    let workspace = ForwardWorkspace()
    let options = ForwardOptions(hiddenStates: indices, hiddenPositions: .last, logits: .none)
    var start = 0
    while start < unique.count {
        let end = min(start + batchSize, unique.count)
        let out = try model.forward(unique[start..<end].map { SequenceInput(tokens: $0) }, options: options, workspace: workspace)
        for (k, o) in out.enumerated() {
            for i in indices { try states.set(index: i, row: start + k, from: o.hidden[i] ?? [], sourceRow: 0) }
        }
        start = end
        try progress?(start)
    }
}

/// A token trie over the distinct sequences.
private struct TokenTrie {
    var children: [[Int32]] = [[]]       // node → child nodes, in insertion order
    var token: [Int32] = [0]             // token on the edge into the node
    var childIndex: [UInt64: Int32] = [:] // (node << 32 | token bits) → child
    var endOf: [Int32] = [-1]            // node → distinct sequence ending there, or -1

    init(_ sequences: [[Int32]]) {
        for (s, seq) in sequences.enumerated() {
            var node: Int32 = 0
            for t in seq {
                let key = UInt64(UInt32(bitPattern: node)) << 32 | UInt64(UInt32(bitPattern: t))
                if let c = childIndex[key] { node = c; continue }
                let c = Int32(token.count)
                token.append(t)
                children.append([])
                endOf.append(-1)
                children[Int(node)].append(c)
                childIndex[key] = c
                node = c
            }
            endOf[Int(node)] = Int32(s)
        }
    }

    /// A maximal non-branching run of tokens: from a child of a branch point (or of the root)
    /// down to the next node with zero or several children.
    struct Edge {
        var tokens: [Int32] = []
        /// (offset in `tokens`, distinct sequence) for each sequence ending on the run.
        var ends: [(offset: Int, sequence: Int)] = []
        var last: Int32 = 0
    }

    func edges(from anchor: Int32) -> [Edge] {
        children[Int(anchor)].map { first in
            var e = Edge()
            var node = first
            while true {
                e.tokens.append(token[Int(node)])
                if endOf[Int(node)] >= 0 { e.ends.append((e.tokens.count - 1, Int(endOf[Int(node)]))) }
                let kids = children[Int(node)]
                guard kids.count == 1 else { break }
                node = kids[0]
            }
            e.last = node
            return e
        }
    }
}

/// The KV cache of a branch point, shared by the runs below it (the last one takes it over).
private final class BranchCache {
    let cache: KVCache
    var pending: Int
    init(cache: KVCache, pending: Int) {
        self.cache = cache
        self.pending = pending
    }
}

/// Runs the trie's edges depth-first, up to `batchSize` edges (and a bounded number of tokens)
/// per forward pass, each continuing from a copy of its branch point's cache.
private func runShared(
    model: any LanguageModel, unique: [[Int32]], indices: [Int], batchSize: Int, into states: inout StateTable,
    progress: ((Int) throws -> Void)?
) throws {
    let trie = TokenTrie(unique)
    let maxRows = max(4096, unique.map(\.count).max() ?? 0)
    let workspace = ForwardWorkspace()
    var stack: [(parent: BranchCache?, edge: TokenTrie.Edge)] = trie.edges(from: 0).reversed().map { (nil, $0) }
    var done = 0
    while !stack.isEmpty {
        var batch: [(parent: BranchCache?, edge: TokenTrie.Edge)] = []
        var rows = 0
        while let top = stack.last, batch.count < batchSize, batch.isEmpty || rows + top.edge.tokens.count <= maxRows {
            batch.append(top)
            rows += top.edge.tokens.count
            stack.removeLast()
        }
        var inputs: [SequenceInput] = []
        var caches: [KVCache] = []
        for (parent, edge) in batch {
            let cache: KVCache
            if let parent {
                parent.pending -= 1
                cache = parent.pending == 0 ? parent.cache : parent.cache.copy()
            } else {
                cache = model.makeCache(capacity: edge.tokens.count)
            }
            caches.append(cache)
            inputs.append(SequenceInput(tokens: edge.tokens, cache: cache))
        }
        let everyPosition = batch.contains { item in item.edge.ends.contains { $0.offset != item.edge.tokens.count - 1 } }
        let options = ForwardOptions(hiddenStates: indices, hiddenPositions: everyPosition ? .all : .last, logits: .none)
        let out = try model.forward(inputs, options: options, workspace: workspace)
        var groups: [[(parent: BranchCache?, edge: TokenTrie.Edge)]] = []
        for (k, item) in batch.enumerated() {
            for end in item.edge.ends {
                let row = everyPosition ? end.offset : 0
                for i in indices { try states.set(index: i, row: end.sequence, from: out[k].hidden[i] ?? [], sourceRow: row) }
            }
            done += item.edge.ends.count
            let below = trie.edges(from: item.edge.last)
            if !below.isEmpty {
                let branch = BranchCache(cache: caches[k], pending: below.count)
                groups.append(below.reversed().map { (branch, $0) })
            }
        }
        // Depth-first: continue below the runs just made (the first run's children on top), so
        // branch caches are freed early.
        stack += groups.reversed().flatMap { $0 }
        try progress?(done)
    }
}
