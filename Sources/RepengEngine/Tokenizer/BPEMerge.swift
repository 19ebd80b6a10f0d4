// The BPE merge loop (Sennrich et al. 2016) with Hugging Face tokenizers' `Word::merge_all` order: lowest rank, leftmost on ties.

/// Decides whether two adjacent symbols merge, and with which priority.
protocol BPEPairRanker {
    /// `(rank, merged id)` when `left right` is a merge; lower ranks merge first, compared as
    /// `(rank.major, rank.minor)`.
    func merge(_ left: Int32, _ right: Int32) -> (rank: BPERank, merged: Int32)?
}

/// Scratch buffers reused across the pieces of one `encode` call.
struct BPEWorkspace {
    var ids: [Int32] = []
    var next: [Int32] = []
    var prev: [Int32] = []
    var heap: [BPECandidate] = []
    /// Scratch for building concatenated keys.
    var bytes: [UInt8] = []
    /// Characters of the text being encoded and their classes.
    var scalars: [UInt32] = []
    var classes: [UInt8] = []
    /// UTF-8 offset of each character, plus the end.
    var offsets: [Int] = []
}

/// The priority of a merge: lower merges first, compared as `(major, minor)`.
struct BPERank: Sendable {
    var major: UInt64
    var minor: UInt64

    @inline(__always)
    init(_ major: UInt64, _ minor: UInt64 = 0) {
        self.major = major
        self.minor = minor
    }

    @inline(__always)
    static func < (a: BPERank, b: BPERank) -> Bool {
        a.major < b.major || (a.major == b.major && a.minor < b.minor)
    }

    @inline(__always)
    static func == (a: BPERank, b: BPERank) -> Bool {
        a.major == b.major && a.minor == b.minor
    }
}

/// One candidate merge in the queue: the pair starting at symbol `position`, as it was when queued.
struct BPECandidate {
    var rank: BPERank
    var position: Int32
    var left: Int32
    var right: Int32
    var merged: Int32

    @inline(__always)
    func precedes(_ other: BPECandidate) -> Bool {
        rank < other.rank || (rank == other.rank && position < other.position)
    }
}

enum BPE {
    /// Merges `symbols` (token ids, in order) in place until no adjacent pair is a merge.
    ///
    /// Equivalent to repeatedly merging the adjacent pair of lowest rank (leftmost among equal
    /// ranks), done in O(n log n) with a heap of candidates that are re-checked when popped.
    static func merge<R: BPEPairRanker>(_ symbols: inout [Int32], ranker: R, workspace w: inout BPEWorkspace) {
        let n = symbols.count
        if n < 2 { return }
        w.ids.removeAll(keepingCapacity: true)
        w.ids.append(contentsOf: symbols)
        w.next.removeAll(keepingCapacity: true)
        w.prev.removeAll(keepingCapacity: true)
        for i in 0 ..< n {
            w.next.append(i + 1 < n ? Int32(i + 1) : -1)
            w.prev.append(Int32(i - 1))
        }
        w.heap.removeAll(keepingCapacity: true)
        for i in 0 ..< n - 1 {
            if let m = ranker.merge(w.ids[i], w.ids[i + 1]) {
                push(&w.heap, BPECandidate(rank: m.rank, position: Int32(i), left: w.ids[i], right: w.ids[i + 1], merged: m.merged))
            }
        }
        var alive = n
        while let top = pop(&w.heap) {
            let p = Int(top.position)
            // Stale if this symbol was absorbed, or either side changed since it was queued.
            guard w.ids[p] == top.left else { continue }
            let r = Int(w.next[p])
            guard r >= 0, w.ids[r] == top.right else { continue }
            w.ids[p] = top.merged
            w.ids[r] = -1
            let after = w.next[r]
            w.next[p] = after
            if after >= 0 { w.prev[Int(after)] = Int32(p) }
            alive -= 1
            let before = Int(w.prev[p])
            if before >= 0, let m = ranker.merge(w.ids[before], top.merged) {
                push(&w.heap, BPECandidate(rank: m.rank, position: Int32(before), left: w.ids[before], right: top.merged, merged: m.merged))
            }
            if after >= 0, let m = ranker.merge(top.merged, w.ids[Int(after)]) {
                push(&w.heap, BPECandidate(rank: m.rank, position: Int32(p), left: top.merged, right: w.ids[Int(after)], merged: m.merged))
            }
        }
        symbols.removeAll(keepingCapacity: true)
        symbols.reserveCapacity(alive)
        var i = 0
        while i >= 0 {
            symbols.append(w.ids[i])
            i = Int(w.next[i])
        }
    }

    /// Reference implementation: scan every adjacent pair for the best one, merge it, repeat.
    /// O(n²); used by tests to check `merge`.
    static func mergeByScanning<R: BPEPairRanker>(_ symbols: inout [Int32], ranker: R) {
        while symbols.count > 1 {
            var best: (rank: BPERank, position: Int, merged: Int32)? = nil
            for i in 0 ..< symbols.count - 1 {
                guard let m = ranker.merge(symbols[i], symbols[i + 1]) else { continue }
                if let b = best, !(m.rank < b.rank) { continue }
                best = (m.rank, i, m.merged)
            }
            guard let b = best else { return }
            symbols[b.position] = b.merged
            symbols.remove(at: b.position + 1)
        }
    }

    @inline(__always)
    private static func push(_ heap: inout [BPECandidate], _ c: BPECandidate) {
        heap.append(c)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if heap[i].precedes(heap[parent]) {
                heap.swapAt(i, parent)
                i = parent
            } else {
                break
            }
        }
    }

    @inline(__always)
    private static func pop(_ heap: inout [BPECandidate]) -> BPECandidate? {
        guard let last = heap.popLast() else { return nil }
        if heap.isEmpty { return last }
        let top = heap[0]
        heap[0] = last
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var best = l
            if l + 1 < n && heap[l + 1].precedes(heap[l]) { best = l + 1 }
            if heap[best].precedes(heap[i]) {
                heap.swapAt(i, best)
                i = best
            } else {
                break
            }
        }
        return top
    }
}

/// UTF-8 helpers shared by the tokenizers and the streaming decoder.
enum UTF8Util {
    /// Decodes valid UTF-8 (as produced from a Swift `String`) into scalar values, their
    /// classes and byte offsets (with the end offset appended).
    static func decodeValid(
        _ bytes: UnsafeBufferPointer<UInt8>, scalars: inout [UInt32], classes: inout [UInt8], offsets: inout [Int]
    ) {
        scalars.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = UInt32(bytes[i])
            var v: UInt32
            var len: Int
            if b0 < 0x80 {
                v = b0
                len = 1
            } else if b0 < 0xE0 {
                v = b0 & 0x1F
                len = 2
            } else if b0 < 0xF0 {
                v = b0 & 0x0F
                len = 3
            } else {
                v = b0 & 0x07
                len = 4
            }
            if i + len > n { len = n - i }
            var k = 1
            while k < len {
                v = (v << 6) | (UInt32(bytes[i + k]) & 0x3F)
                k += 1
            }
            offsets.append(i)
            scalars.append(v)
            classes.append(Unicode.Scalar(v).map { CharClass.of($0) } ?? 0)
            i += len
        }
        offsets.append(n)
    }

    /// Length of the UTF-8 sequence a lead byte starts (1 for invalid lead bytes).
    @inline(__always)
    static func sequenceLength(_ lead: UInt8) -> Int {
        if lead < 0xC2 { return 1 }
        if lead < 0xE0 { return 2 }
        if lead < 0xF0 { return 3 }
        if lead < 0xF5 { return 4 }
        return 1
    }

    /// How many bytes at the end of `bytes` are the start of a UTF-8 sequence that more bytes
    /// could still complete (0 when the buffer ends on a complete character or invalid bytes).
    static func incompleteTail(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var back = 1
        while back <= min(3, n) {
            let b = bytes[n - back]
            if b & 0xC0 != 0x80 {
                // A lead byte: is it followed by `back - 1` valid continuations, and short of its length?
                let need = sequenceLength(b)
                guard need > back else { return 0 }
                return isValidPrefix(Array(bytes[(n - back)...])) ? back : 0
            }
            back += 1
        }
        return 0
    }

    /// Whether `seq` (a lead byte and some continuation bytes) is a proper prefix of some valid
    /// UTF-8 sequence, following the well-formed ranges of Unicode Table 3-7.
    static func isValidPrefix(_ seq: [UInt8]) -> Bool {
        guard let lead = seq.first else { return false }
        let need = sequenceLength(lead)
        guard need > 1, seq.count < need else { return false }
        for (k, b) in seq.enumerated().dropFirst() {
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            if k == 1 {
                switch lead {
                case 0xE0: lo = 0xA0
                case 0xED: hi = 0x9F
                case 0xF0: lo = 0x90
                case 0xF4: hi = 0x8F
                default: break
                }
            }
            if b < lo || b > hi { return false }
        }
        return true
    }

    /// UTF-8 decoding that replaces each maximal ill-formed subpart with U+FFFD (the Unicode /
    /// WHATWG practice that Rust's `String::from_utf8_lossy` and Python's "replace" follow).
    static func lossy(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
