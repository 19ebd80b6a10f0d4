// The engine's worker pool: every item runs exactly once with a worker index no other thread
// holds at the same time, across many back-to-back loops (spinning hand-offs), after idle
// periods (sleeping workers woken), from several threads at once (one uses the pool, the
// others fall back to Dispatch) and from inside a loop's body.
import Dispatch
import Foundation
@testable import RepengEngine
import Synchronization
import XCTest

final class WorkerPoolTests: XCTestCase {
    /// Runs one loop and checks that every item ran once and each worker index was used by
    /// one thread only, below the allowed count.
    static func check(count: Int, workers: Int, file: StaticString = #filePath, line: UInt = #line) {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        let owners = UnsafeMutablePointer<pthread_t?>.allocate(capacity: 64)
        owners.initialize(repeating: nil, count: 64)
        let badIndex = Atomic<Int>(0), shared = Atomic<Int>(0)
        defer {
            hits.deallocate()
            owners.deallocate()
        }
        Parallel.forEach(count: count, workers: workers) { worker, item in
            if worker < 0 || worker >= max(1, min(workers, count)) { badIndex.add(1, ordering: .relaxed); return }
            let me = pthread_self()
            if let o = owners[worker], pthread_equal(o, me) == 0 { shared.add(1, ordering: .relaxed) }
            owners[worker] = me
            hits[item] += 1
        }
        XCTAssertEqual(badIndex.load(ordering: .relaxed), 0, "worker index out of range", file: file, line: line)
        XCTAssertEqual(shared.load(ordering: .relaxed), 0, "a worker index used by two threads", file: file, line: line)
        XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 1 }, "count \(count), workers \(workers)", file: file, line: line)
    }

    func testEveryItemOnceAcrossManyLoops() {
        for round in 0..<3000 {
            Self.check(count: 1 + round % 37, workers: 1 + round % 4)
        }
    }

    func testWorkersSleepAndWakeBetweenLoops() {
        for _ in 0..<20 {
            usleep(UInt32(WorkerPool.spinSeconds * 3e6))  // past the spin: helpers are asleep
            Self.check(count: 64, workers: 2)
            Parallel.parkWorkers()
            Self.check(count: 16, workers: 3)
        }
    }

    /// With items long enough to outlast a hand-off, the pool's threads take part.
    func testHelpersTakePart() throws {
        try XCTSkipIf(WorkerPool.shared.helperCount == 0, "one core: no helper threads")
        let helped = Atomic<Int>(0)
        for round in 0..<50 {
            if round % 10 == 0 { usleep(1000) }  // some rounds start with sleeping helpers
            Parallel.forEach(count: 8, workers: 2) { worker, _ in
                if worker > 0 { helped.add(1, ordering: .relaxed) }
                let end = DispatchTime.now().uptimeNanoseconds + 50_000
                while DispatchTime.now().uptimeNanoseconds < end {}
            }
        }
        print("worker pool: \(helped.load(ordering: .relaxed)) of 400 items ran on a helper thread")
        XCTAssertGreaterThan(helped.load(ordering: .relaxed), 0)
    }

    func testConcurrentCallersAndNestedLoops() {
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for round in 0..<300 {
                Self.check(count: 5 + (round + t) % 29, workers: 2)
            }
        }
        let total = Atomic<Int>(0)
        Parallel.forEach(count: 6, workers: 2) { _, _ in
            Parallel.forEach(count: 10, workers: 2) { _, _ in total.add(1, ordering: .relaxed) }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 60)
    }
}
