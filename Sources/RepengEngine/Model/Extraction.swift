// Hidden-state extraction for many strings: sequences packed into passes of bounded size.

extension LanguageModel {
    /// Hidden states at the last token of every sequence, for the given hidden-state indices
    /// (transformers numbering, see `ForwardOptions.hiddenStates`). Sequences are packed without
    /// padding into passes of at most `maxRowsPerPass` tokens; the output head is never run.
    /// Returns, per index, a row-major [sequences, hiddenSize] matrix.
    public func lastTokenHiddenStates(
        _ sequences: [[Int32]], indices: [Int], maxRowsPerPass: Int = 2048,
        workspace: ForwardWorkspace = ForwardWorkspace(),
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> [Int: [Float]] {
        let dim = config.hiddenSize
        var result: [Int: [Float]] = [:]
        for i in indices { result[i] = [Float](repeating: 0, count: sequences.count * dim) }
        let options = ForwardOptions(hiddenStates: indices, hiddenPositions: .last, logits: .none)
        var start = 0
        while start < sequences.count {
            var end = start, rows = 0
            while end < sequences.count, end == start || rows + sequences[end].count <= maxRowsPerPass {
                rows += sequences[end].count
                end += 1
            }
            let batch = sequences[start..<end].map { SequenceInput(tokens: $0) }
            let out = try forward(batch, options: options, workspace: workspace)
            for (k, o) in out.enumerated() {
                for (i, v) in o.hidden {
                    result[i]!.withUnsafeMutableBufferPointer { dst in
                        v.withUnsafeBufferPointer { src in
                            (dst.baseAddress! + (start + k) * dim).update(from: src.baseAddress!, count: dim)
                        }
                    }
                }
            }
            start = end
            progress?(start, sequences.count)
        }
        return result
    }
}
