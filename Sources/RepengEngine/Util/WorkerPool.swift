// A persistent pool of worker threads for the engine's parallel loops. A decode step runs
// ~150 short parallel regions (every weight product, attention); handing each to Dispatch
// wakes threads through the kernel every time, which cost ~25% of a single-sequence step.
// Here workers spin briefly between regions and sleep on a semaphore when idle.
import CKernelSupport
import Dispatch
import Foundation
import Synchronization

/// Worker threads that join the calling thread on one parallel loop at a time.
///
/// Publication: the caller stores the job, then one atomic `entry` word holding the job's
/// generation, the most helpers it wants, a closed flag and the count of helpers that joined.
/// A worker joins by incrementing that count while the generation matches and the job is
/// open, so the caller never waits for a worker that has not started (one descheduled by the
/// OS just misses the job). When the items run out the caller closes the job and waits only
/// for the helpers that joined.
final class WorkerPool: @unchecked Sendable {
    /// One pool per process, with a worker per core beyond the first.
    static let shared = WorkerPool(workers: max(0, ProcessInfo.processInfo.activeProcessorCount - 1))

    /// How long an idle worker spins for the next job before it sleeps.
    static let spinSeconds = 100e-6

    /// The work of one loop: the body and the next unclaimed item.
    final class Job: @unchecked Sendable {
        let count: Int
        let body: (Int, Int) -> Void
        let next = Atomic<Int>(0)
        init(count: Int, body: @escaping (Int, Int) -> Void) {
            self.count = count
            self.body = body
        }

        /// Claims and runs items until none are left.
        @inline(__always) func run(worker: Int) {
            while true {
                let item = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if item >= count { return }
                body(worker, item)
            }
        }
    }

    private final class Worker: @unchecked Sendable {
        /// 0: awake (spinning or working); 1: asleep on `wake`.
        let state = Atomic<Int>(0)
        let wake = DispatchSemaphore(value: 0)
    }

    // entry: bits 0–7 joined helpers, bit 8 closed, bits 16–23 helper limit, bits 32–63 generation.
    private static let closedBit: UInt64 = 1 << 8
    private let entry = Atomic<UInt64>(0)
    private let done = Atomic<Int>(0)
    /// Set while the pool has a caller; a second concurrent caller is told to go elsewhere.
    private let busy = Atomic<Bool>(false)
    /// Asks spinning workers to sleep now (before work that brings its own threads).
    private let parking = Atomic<Bool>(false)
    private var job: Job?
    private let workers: [Worker]

    /// Helper threads (the caller is one more).
    var helperCount: Int { workers.count }

    init(workers count: Int) {
        workers = (0..<count).map { _ in Worker() }
        for (i, w) in workers.enumerated() {
            let t = Thread { [self] in self.workerLoop(w) }
            t.name = "repeng-worker-\(i + 1)"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Runs `job` on the calling thread (worker 0) and up to `helpers` pool threads (workers
    /// 1…). Returns false without running anything when another thread is using the pool.
    func run(_ job: Job, helpers: Int) -> Bool {
        let helpers = min(helpers, workers.count, 255)
        guard helpers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        defer { busy.store(false, ordering: .releasing) }
        self.job = job
        done.store(0, ordering: .relaxed)
        parking.store(false, ordering: .relaxed)
        let generation = (entry.load(ordering: .relaxed) >> 32) &+ 1
        entry.store((generation << 32) | (UInt64(helpers) << 16), ordering: .sequentiallyConsistent)
        for w in workers.prefix(helpers) where w.state.exchange(0, ordering: .sequentiallyConsistent) == 1 {
            w.wake.signal()
        }
        job.run(worker: 0)
        // Close the job; only helpers that joined before this point can be running it.
        let joined = Int(entry.bitwiseOr(Self.closedBit, ordering: .acquiringAndReleasing).oldValue & 0xFF)
        var spins = 0
        while done.load(ordering: .acquiring) < joined {
            spins += 1
            if spins & 1023 == 0 { sched_yield() } else { repeng_cpu_relax() }
        }
        self.job = nil
        return true
    }

    /// Lets spinning workers sleep at once (before a call into OpenBLAS, whose own threads
    /// need the cores).
    func park() {
        parking.store(true, ordering: .relaxed)
    }

    private func workerLoop(_ w: Worker) {
        var seen: UInt64 = 0
        while true {
            let e = waitForJob(after: seen, w)
            seen = e >> 32
            // Join while the job is open and wants more helpers.
            var cur = e
            var index = -1
            while cur >> 32 == seen, cur & Self.closedBit == 0, cur & 0xFF < (cur >> 16) & 0xFF {
                let (exchanged, original) = entry.compareExchange(expected: cur, desired: cur + 1, ordering: .acquiringAndReleasing)
                if exchanged {
                    index = Int(cur & 0xFF) + 1
                    break
                }
                cur = original
            }
            guard index > 0 else { continue }
            runCurrentJob(worker: index)
            done.add(1, ordering: .releasing)
        }
    }

    /// Runs the published job as helper `worker`. A function of its own so that this thread's
    /// reference to the job (and the caller's non-escaping body) ends before it reports done.
    @inline(never) private func runCurrentJob(worker: Int) {
        job?.run(worker: worker)
    }

    /// Returns the entry word once its generation differs from `seen`: spins for
    /// `spinSeconds`, then sleeps until a caller wakes this worker.
    private func waitForJob(after seen: UInt64, _ w: Worker) -> UInt64 {
        var start = monotonicNow()
        var spins = 0
        while true {
            let e = entry.load(ordering: .acquiring)
            if e >> 32 != seen { return e }
            spins += 1
            if spins & 63 == 0, parking.load(ordering: .relaxed) || monotonicNow() - start > Self.spinSeconds {
                w.state.store(1, ordering: .sequentiallyConsistent)
                let again = entry.load(ordering: .sequentiallyConsistent)
                if again >> 32 != seen {
                    // A job came in meanwhile: take the flag back, or consume the wake-up the
                    // caller already sent for it.
                    if !w.state.compareExchange(expected: 1, desired: 0, ordering: .sequentiallyConsistent).exchanged {
                        w.wake.wait()
                    }
                    return again
                }
                w.wake.wait()
                start = monotonicNow()
                spins = 0
            } else {
                repeng_cpu_relax()
            }
        }
    }

    @inline(__always) private func monotonicNow() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
