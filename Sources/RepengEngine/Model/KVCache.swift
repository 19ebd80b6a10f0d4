// Per-sequence key/value cache: for each block, rows of keys and values for past positions.

/// Keys and values of the positions a sequence has run, per block. Not thread-safe: one
/// sequence, one owner.
public final class KVCache: @unchecked Sendable {
    public let blockCount: Int
    public let kvDim: Int
    /// Positions held.
    public internal(set) var length: Int = 0
    /// Positions that fit before the buffers grow.
    public private(set) var capacity: Int
    var keys: [FloatBuffer]
    var values: [FloatBuffer]

    public init(blockCount: Int, kvDim: Int, capacity: Int = 256) {
        self.blockCount = blockCount
        self.kvDim = kvDim
        self.capacity = max(capacity, 1)
        keys = (0..<blockCount).map { _ in FloatBuffer(count: max(capacity, 1) * kvDim) }
        values = (0..<blockCount).map { _ in FloatBuffer(count: max(capacity, 1) * kvDim) }
    }

    /// Makes room for `positions` positions, keeping what is held.
    func reserve(_ positions: Int) {
        guard positions > capacity else { return }
        let n = max(positions, capacity * 2)
        for b in 0..<blockCount {
            keys[b].reserve(n * kvDim, keep: true)
            values[b].reserve(n * kvDim, keep: true)
        }
        capacity = n
    }

    /// Forgets positions from `length` on (keeps the memory).
    public func truncate(to length: Int) {
        self.length = max(0, min(length, self.length))
    }

    /// A copy holding the same positions (for sharing a prompt prefix between sequences).
    public func copy() -> KVCache {
        let c = KVCache(blockCount: blockCount, kvDim: kvDim, capacity: max(length, 1))
        for b in 0..<blockCount {
            c.keys[b].pointer.update(from: keys[b].pointer, count: length * kvDim)
            c.values[b].pointer.update(from: values[b].pointer, count: length * kvDim)
        }
        c.length = length
        return c
    }

    /// Bytes allocated.
    public var residentBytes: Int { 2 * blockCount * capacity * kvDim * MemoryLayout<Float>.stride }
}
