// Hash tables for tokenizers: byte-string → token id, and token-id pair → merge, open addressing.

/// Maps byte strings to token ids. Keys are compared byte for byte (Swift `String` equality
/// would treat canonically equivalent spellings such as "é" and "e\u{301}" as one key, which two
/// distinct vocabulary entries may well be). When a byte string is inserted twice, the later id
/// wins, like a Python dict built from the vocabulary in id order.
struct ByteStringTable: Sendable {
    /// All keys, back to back.
    private var storage: [UInt8] = []
    /// Key `k` is `storage[starts[k] ..< starts[k + 1]]`.
    private var starts: [Int] = [0]
    /// The id stored for key `k`.
    private var ids: [Int32] = []
    /// Open-addressing slots holding key indices, -1 when empty. Count is a power of two.
    private var slots: [Int32]
    private var mask: Int

    /// A table sized for about `capacity` keys.
    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        storage.reserveCapacity(capacity * 8)
        starts.reserveCapacity(capacity + 1)
        ids.reserveCapacity(capacity)
    }

    /// Number of distinct keys.
    var count: Int { ids.count }

    /// FNV-1a over the bytes, then a final avalanche so the low bits spread well.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    private func keyEquals(_ k: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = starts[k]
        let length = starts[k + 1] - start
        guard length == bytes.count else { return false }
        return storage.withUnsafeBufferPointer { s in
            var i = 0
            while i < length {
                if s[start + i] != bytes[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// The id stored for `bytes`, if any.
    @inline(__always)
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        var slot = ByteStringTable.hash(bytes) & mask
        while true {
            let k = slots[slot]
            if k < 0 { return nil }
            if keyEquals(Int(k), bytes) { return ids[Int(k)] }
            slot = (slot + 1) & mask
        }
    }

    /// The id stored for `bytes`, if any.
    func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }

    /// The id stored for the UTF-8 bytes of `string`, if any.
    func lookup(_ string: String) -> Int32? {
        var s = string
        return s.withUTF8 { lookup($0) }
    }

    /// Stores `id` for `bytes`, replacing any earlier id for the same bytes.
    mutating func insert(_ bytes: UnsafeBufferPointer<UInt8>, id: Int32) {
        if ids.count * 2 >= slots.count { grow() }
        var slot = ByteStringTable.hash(bytes) & mask
        while true {
            let k = slots[slot]
            if k < 0 { break }
            if keyEquals(Int(k), bytes) {
                ids[Int(k)] = id
                return
            }
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(ids.count)
        storage.append(contentsOf: bytes)
        starts.append(storage.count)
        ids.append(id)
    }

    /// Stores `id` for `bytes`, replacing any earlier id for the same bytes.
    mutating func insert(_ bytes: [UInt8], id: Int32) {
        bytes.withUnsafeBufferPointer { insert($0, id: id) }
    }

    private mutating func grow() {
        let size = slots.count * 2
        var fresh = [Int32](repeating: -1, count: size)
        let newMask = size - 1
        storage.withUnsafeBufferPointer { s in
            for k in 0 ..< ids.count {
                let key = UnsafeBufferPointer(rebasing: s[starts[k] ..< starts[k + 1]])
                var slot = ByteStringTable.hash(key) & newMask
                while fresh[slot] >= 0 { slot = (slot + 1) & newMask }
                fresh[slot] = Int32(k)
            }
        }
        slots = fresh
        mask = newMask
    }
}

/// Maps an ordered pair of token ids to a merge: its rank (lower merges first) and the id of the
/// merged token. Inserting a pair twice keeps the later entry, like a map built from a merges list.
struct MergeTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var used: [Bool]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: 0, count: size)
        values = [UInt64](repeating: 0, count: size)
        used = [Bool](repeating: false, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        (UInt64(UInt32(bitPattern: left)) << 32) | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private static func hash(_ key: UInt64) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    /// `(rank, merged id)` for the pair, if it is a merge.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: UInt32, merged: Int32)? {
        let k = MergeTable.key(left, right)
        var slot = MergeTable.hash(k) & mask
        while used[slot] {
            if keys[slot] == k {
                let v = values[slot]
                return (UInt32(truncatingIfNeeded: v >> 32), Int32(bitPattern: UInt32(truncatingIfNeeded: v)))
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Records the merge `left right → merged` with `rank`.
    mutating func insert(_ left: Int32, _ right: Int32, rank: UInt32, merged: Int32) {
        if count * 2 >= keys.count { grow() }
        let k = MergeTable.key(left, right)
        let v = (UInt64(rank) << 32) | UInt64(UInt32(bitPattern: merged))
        var slot = MergeTable.hash(k) & mask
        while used[slot] {
            if keys[slot] == k {
                values[slot] = v
                return
            }
            slot = (slot + 1) & mask
        }
        used[slot] = true
        keys[slot] = k
        values[slot] = v
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values, oldUsed = used
        let size = keys.count * 2
        keys = [UInt64](repeating: 0, count: size)
        values = [UInt64](repeating: 0, count: size)
        used = [Bool](repeating: false, count: size)
        mask = size - 1
        count = 0
        for i in 0 ..< oldKeys.count where oldUsed[i] {
            var slot = MergeTable.hash(oldKeys[i]) & mask
            while used[slot] { slot = (slot + 1) & mask }
            used[slot] = true
            keys[slot] = oldKeys[i]
            values[slot] = oldValues[i]
            count += 1
        }
    }
}
