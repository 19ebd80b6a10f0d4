// A 64-byte aligned, growable buffer of Float used for weights and scratch space.
import Foundation

/// Owns a 64-byte aligned block of `Float`s. Not thread-safe; weights wrap it immutably.
public final class FloatBuffer: @unchecked Sendable {
    /// Start of the storage (valid for `capacity` elements).
    public private(set) var pointer: UnsafeMutablePointer<Float>
    /// Number of elements allocated.
    public private(set) var capacity: Int

    /// Allocates `count` zeroed floats.
    public init(count: Int) {
        let n = max(count, 1)
        pointer = FloatBuffer.allocate(n)
        capacity = n
        pointer.initialize(repeating: 0, count: n)
    }

    /// Copies `values` into a new buffer.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { free(pointer) }

    /// Makes room for at least `count` elements; contents are not preserved unless `keep`.
    public func reserve(_ count: Int, keep: Bool = false) {
        guard count > capacity else { return }
        let n = max(count, capacity + capacity / 2)
        let p = FloatBuffer.allocate(n)
        if keep { p.update(from: pointer, count: capacity) }
        p.advanced(by: keep ? capacity : 0).initialize(repeating: 0, count: keep ? n - capacity : n)
        free(pointer)
        pointer = p
        capacity = n
    }

    /// The elements as an array (copies).
    public func toArray(count: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: pointer, count: min(count, capacity)))
    }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        var raw: UnsafeMutableRawPointer?
        let bytes = n * MemoryLayout<Float>.stride
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        return raw!.bindMemory(to: Float.self, capacity: n)
    }
}
