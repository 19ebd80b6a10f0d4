// Splitting the forward pass's work across threads: a parallel for-each over independent
// items on the engine's worker pool, with items claimed one at a time.
import Dispatch

/// Runs independent pieces of work on several threads. Each item's arithmetic must not depend
/// on which thread runs it or on the other items, so results are the same for any thread count.
enum Parallel {
    /// Rows × values per row below which splitting rows is not worth waking a thread
    /// (about ten microseconds of element-wise work).
    static let minimumElementsPerChunk = 32_768

    /// Calls `body(worker, item)` once for every item in `0..<count`, on up to `workers`
    /// threads (the calling thread included). Items are claimed in increasing order as threads
    /// become free; `worker` is in `0..<min(workers, count)` and no two threads share one, so
    /// it can index per-thread scratch memory. Runs inline, in order, on the calling thread
    /// when `workers <= 1` or `count <= 1`. `body` must only write memory that belongs to its
    /// item or its worker.
    static func forEach(count: Int, workers: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
        let threads = min(workers, count)
        if threads <= 1 {
            for i in 0..<count { body(0, i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let job = WorkerPool.Job(count: count, body: body)
            // The engine's pool; Dispatch when another thread is using it (two models decoding,
            // training beside generation) or from inside a pool loop.
            if WorkerPool.shared.run(job, helpers: threads - 1) { return }
            DispatchQueue.concurrentPerform(iterations: threads) { worker in job.run(worker: worker) }
        }
    }

    /// Lets the pool's spinning threads sleep now, before work that brings its own threads
    /// (OpenBLAS sgemm).
    static func parkWorkers() { WorkerPool.shared.park() }

    /// Calls `body(range)` on consecutive ranges covering `0..<rows`, in parallel when the rows
    /// hold at least two chunks' worth of values (`valuesPerRow` each) and `workers > 1`;
    /// otherwise once with the whole range on the calling thread.
    static func forRows(_ rows: Int, valuesPerRow: Int, workers: Int, _ body: (Range<Int>) -> Void) {
        let minRows = max(1, minimumElementsPerChunk / max(1, valuesPerRow))
        let chunks = min(rows / minRows, 4 * workers)
        if workers <= 1 || chunks <= 1 {
            if rows > 0 { body(0..<rows) }
            return
        }
        let size = (rows + chunks - 1) / chunks
        forEach(count: (rows + size - 1) / size, workers: workers) { _, c in
            body((c * size)..<min(rows, (c + 1) * size))
        }
    }
}
