// Batched generation for one model: a dedicated thread admits queued requests, runs their
// prompts a chunk at a time (each chunk in its own forward pass), and between chunks advances
// every decoding sequence together with one batched decodeStep per token, each with its own KV
// cache and steering. Requests talk to it through a lock-protected queue and receive events on
// an AsyncStream.
import Dispatch
import Foundation
import RepengEngine

/// Timings and counts of one finished generation.
public struct GenerationStats: Sendable, Equatable {
    public var promptTokens = 0
    public var completionTokens = 0
    public var queueSeconds = 0.0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var totalSeconds = 0.0
}

/// What a job reports, in order: pieces, then exactly one `finished` or `failed`.
public enum JobEvent: Sendable {
    case piece(text: String, tokens: [Int32])
    case finished(FinishReason, GenerationStats)
    case failed(DaemonError)
}

/// Monotonic seconds.
@inline(__always) public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// One generation request on its way through the scheduler.
public final class GenerationJob: @unchecked Sendable {
    let request: GenerationRequest
    let received: Double
    let continuation: AsyncStream<JobEvent>.Continuation
    /// Events of this job; iterate it to follow the generation.
    public let events: AsyncStream<JobEvent>
    private let lock = NSLock()
    private var cancelled = false
    private var undelivered = 0

    public init(request: GenerationRequest, received: Double = monotonicSeconds()) {
        self.request = request
        self.received = received
        (events, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .unbounded)
    }

    /// Stops the job at the next step (the client went away).
    public func cancel() {
        lock.withLock { cancelled = true }
    }

    var isCancelled: Bool { lock.withLock { cancelled } }

    /// Pieces sent to `events` that the client has not taken yet.
    public var backlog: Int { lock.withLock { undelivered } }

    fileprivate func sent() { lock.withLock { undelivered += 1 } }

    /// The consumer has written one piece to its client. Returns the backlog left.
    @discardableResult
    public func delivered() -> Int {
        lock.withLock {
            undelivered = max(0, undelivered - 1)
            return undelivered
        }
    }
}

/// The batched decode loop of one model.
///
/// Slots: at most `maxBatch` sequences are prefilling or decoding for clients that read their
/// streams. A sequence whose client has `maxBacklog` pieces unread is parked: it sits out the
/// decode steps (its arithmetic does not depend on the batch, so only timing changes) and frees
/// its slot. At most `maxBatch` parked sequences are kept; a parked sequence is stopped after
/// `slowReaderSeconds`, or earlier when its place is needed for a queued request.
public final class Scheduler: @unchecked Sendable {
    public let model: any LanguageModel
    let maxQueue: Int
    let maxBatch: Int
    /// A sequence whose client has this many pieces unread skips decode steps until it reads.
    public let maxBacklog: Int
    /// A sequence parked that long for a slow reader is stopped.
    let slowReaderSeconds: Double
    /// Parked sequences kept (with their KV caches) besides the `maxBatch` working ones.
    var maxParked: Int { maxBatch }
    private let cond = NSCondition()
    private var pending: [GenerationJob] = []
    private var activeCount = 0
    private var stopping = false
    private var cancelAll = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    /// Batched steps run so far and the sequences they advanced (for tests and status).
    private var stepCount = 0
    private var batchedSequences = 0
    private var maxBatchSeen = 0
    private var parkedCount = 0
    /// When the loop last went round, and whether it is idle (waiting for work).
    private var lastBeat = monotonicSeconds()
    private var idle = false

    public init(model: any LanguageModel, maxQueue: Int, maxBatch: Int, maxBacklog: Int = 64, slowReaderSeconds: Double = 60,
                name: String) {
        self.model = model
        self.maxQueue = maxQueue
        self.maxBatch = max(1, maxBatch)
        self.maxBacklog = max(1, maxBacklog)
        self.slowReaderSeconds = slowReaderSeconds
        let t = Thread { self.loop() }
        t.name = "repengd-decode-\(name)"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Queued and active (prefilling, decoding or parked) generations.
    public var load: (queued: Int, active: Int) {
        cond.lock(); defer { cond.unlock() }
        return (pending.count, activeCount)
    }

    /// Sequences parked for a client that does not read.
    public var parked: Int {
        cond.lock(); defer { cond.unlock() }
        return parkedCount
    }

    /// Whether the decode loop is idle or went round within the last `seconds` (a step that
    /// hangs makes it false, and the watchdog stops pinging).
    public func isResponsive(within seconds: Double) -> Bool {
        cond.lock(); defer { cond.unlock() }
        return idle || stopping || monotonicSeconds() - lastBeat < seconds
    }

    /// Largest number of sequences advanced by one batched step so far.
    public var largestBatch: Int {
        cond.lock(); defer { cond.unlock() }
        return maxBatchSeen
    }

    /// Queues a job; throws `.resourceExhausted` when the queue is full, `.shuttingDown` after stop.
    public func submit(_ job: GenerationJob) throws {
        cond.lock(); defer { cond.unlock() }
        guard !stopping else { throw DaemonError.shuttingDown }
        dropCancelledLocked()
        guard pending.count < maxQueue else {
            throw DaemonError.resourceExhausted("generation queue of this model is full (\(maxQueue) waiting); retry later")
        }
        pending.append(job)
        cond.signal()
    }

    /// Cancels `job`: a queued job leaves the queue at once, a running one stops at the next step.
    public func cancel(_ job: GenerationJob) {
        job.cancel()
        cond.lock()
        if let i = pending.firstIndex(where: { $0 === job }) {
            pending.remove(at: i)
            job.continuation.finish()
        }
        cond.signal()
        cond.unlock()
    }

    /// Wakes the loop (a client read its stream, or a job was cancelled).
    public func poke() {
        cond.lock(); cond.signal(); cond.unlock()
    }

    /// Stops the loop: with `cancelRunning` the active and queued jobs end as cancelled at the
    /// next step; without it they run to completion first. Blocks until the thread has exited.
    public func stop(cancelRunning: Bool) {
        cond.lock()
        let wasRunning = !stopping
        stopping = true
        if cancelRunning { cancelAll = true }
        cond.signal()
        cond.unlock()
        if wasRunning { finished.wait() }
    }

    /// Makes running jobs end as cancelled at the next step (the drain period ran out).
    public func cancelRunning() {
        cond.lock(); cancelAll = true; cond.signal(); cond.unlock()
    }

    private func dropCancelledLocked() {
        pending.removeAll { job in
            guard job.isCancelled else { return false }
            job.continuation.finish()
            return true
        }
    }

    private struct Running {
        let job: GenerationJob
        let state: GenerationState
        var stats: GenerationStats
        var firstTokenAt: Double
        /// When the sequence started waiting for its client to read (nil: not waiting).
        var parkedSince: Double?
    }

    private func loop() {
        let ws = ForwardWorkspace()
        let vocab = model.config.vocabSize
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: vocab * maxBatch)
        defer {
            logits.deallocate()
            finished.signal()
        }
        var prefilling: [Running] = []
        var active: [Running] = []
        /// Seconds of prompt chunks that may run before the next decode step, and how long the
        /// last chunk took: a chunk runs beside decoding sequences only when the credit covers it.
        var prefillCredit = 0.0
        var lastChunkSeconds = 0.0
        while true {
            cond.lock()
            dropCancelledLocked()
            idle = true
            while pending.isEmpty && prefilling.isEmpty && active.isEmpty && !stopping && !cancelAll { cond.wait() }
            idle = false
            lastBeat = monotonicSeconds()
            let cancelNow = cancelAll
            if stopping && pending.isEmpty && prefilling.isEmpty && active.isEmpty {
                cond.unlock()
                return
            }
            var admitted: [GenerationJob] = []
            var evict = 0
            if cancelNow {
                admitted = pending
                pending.removeAll()
            } else {
                let parked = active.filter { $0.parkedSince != nil }.count
                var working = prefilling.count + active.count - parked
                var resident = prefilling.count + active.count
                while working < maxBatch, !pending.isEmpty {
                    if resident >= maxBatch + maxParked {
                        // A queued request needs the place of a sequence nobody reads.
                        guard evict < parked else { break }
                        evict += 1
                        resident -= 1
                    }
                    admitted.append(pending.removeFirst())
                    working += 1
                    resident += 1
                }
            }
            activeCount = prefilling.count + active.count + admitted.count - evict
            cond.unlock()

            if cancelNow {
                for j in admitted { end(j, .cancelled, GenerationStats()) }
                for r in prefilling + active { end(r.job, .cancelled, r.stats) }
                prefilling.removeAll()
                active.removeAll()
                setActive(0, parked: 0)
                cond.lock()
                let done = stopping
                cancelAll = !stopping ? false : cancelAll
                cond.unlock()
                if done { return }
                continue
            }

            if evict > 0 {
                // The longest-parked sequences go first.
                let victims = active.indices.filter { active[$0].parkedSince != nil }
                    .sorted { active[$0].parkedSince! < active[$1].parkedSince! }.prefix(evict)
                let gone = Set(victims)
                for i in victims {
                    fail(active[i].job, .resourceExhausted(
                        "the client stopped reading its stream; generation stopped to serve queued requests"))
                }
                active = active.indices.filter { !gone.contains($0) }.map { active[$0] }
            }

            let now0 = monotonicSeconds()
            for job in admitted {
                if job.isCancelled { job.continuation.finish(); continue }
                var stats = GenerationStats()
                stats.queueSeconds = now0 - job.received
                stats.promptTokens = job.request.prompt.count
                do {
                    let state = try GenerationState(model: model, request: job.request)
                    prefilling.append(Running(job: job, state: state, stats: stats, firstTokenAt: 0))
                } catch {
                    fail(job, daemonError(error))
                }
            }

            // Prompt chunks, each in its own pass (so a chunk's arithmetic depends only on its own
            // prompt). While other sequences decode, chunks get about a quarter of the loop's
            // time: a chunk runs once the decode steps since the last one earned a third of its
            // duration (`prefillCredit`). A chunk that completes a prompt always runs, so short
            // requests start at once, and a long prompt holds up the decoders by at most one
            // chunk at a time.
            let decoding = active.contains { $0.parkedSince == nil }
            if !decoding || prefilling.isEmpty { prefillCredit = 0 }
            prefilling.sort { $0.state.remainingPrompt < $1.state.remainingPrompt }
            var stillPrefilling: [Running] = []
            for var r in prefilling {
                if r.job.isCancelled { r.job.continuation.finish(); continue }
                guard !decoding || prefillCredit >= lastChunkSeconds || r.state.nextInputNeedsLogits else {
                    stillPrefilling.append(r)
                    continue
                }
                let t0 = monotonicSeconds()
                do {
                    let input = [SequenceInput(tokens: r.state.nextInput, cache: r.state.cache, steering: r.job.request.steering)]
                    if r.state.nextInputNeedsLogits {
                        try model.decodeStep(input, workspace: ws, logits: logits)
                    } else {
                        _ = try model.forward(input, options: ForwardOptions(logits: .none), workspace: ws)
                    }
                    let t1 = monotonicSeconds()
                    r.stats.prefillSeconds += t1 - t0
                    if decoding { prefillCredit -= t1 - t0 }
                    if !r.state.nextInputNeedsLogits { lastChunkSeconds = t1 - t0 }
                    guard r.state.ran() else {
                        stillPrefilling.append(r)
                        continue
                    }
                    r.firstTokenAt = t1
                    let ev = r.state.accept(logits: logits)
                    if emit(ev, &r) { active.append(r) }
                } catch {
                    fail(r.job, daemonError(error))
                }
            }
            prefilling = stillPrefilling

            // Drop sequences whose client went away.
            active.removeAll { r in
                if r.job.isCancelled { r.job.continuation.finish(); return true }
                return false
            }

            // Sequences whose client has not read its last `maxBacklog` pieces are parked; one
            // parked past `slowReaderSeconds` is stopped. Memory per stream stays bounded.
            let now = monotonicSeconds()
            var ready: [Int] = []
            var timedOut = false
            for i in active.indices {
                if active[i].job.backlog < maxBacklog {
                    active[i].parkedSince = nil
                    ready.append(i)
                } else if let since = active[i].parkedSince {
                    if now - since > slowReaderSeconds { timedOut = true }
                } else {
                    active[i].parkedSince = now
                }
            }
            if timedOut {
                let limit = slowReaderSeconds
                active.removeAll { r in
                    guard let since = r.parkedSince, now - since > limit else { return false }
                    fail(r.job, .resourceExhausted("the client did not read its stream for \(Int(limit)) s; generation stopped"))
                    return true
                }
                ready = active.indices.filter { active[$0].parkedSince == nil }
            }
            setActive(prefilling.count + active.count, parked: active.count - ready.count)
            if ready.isEmpty {
                guard prefilling.isEmpty else {
                    prefillCredit = 0
                    continue
                }
                // Nothing to run until a client reads, a job arrives or is cancelled, or a
                // parked sequence's time runs out; queued jobs that fit were admitted above.
                cond.lock()
                if pending.isEmpty && !stopping && !cancelAll { _ = cond.wait(until: Date(timeIntervalSinceNow: 0.05)) }
                cond.unlock()
                continue
            }

            // One token for every ready sequence, `maxBatch` per batched forward pass.
            let stepStart = monotonicSeconds()
            defer {
                if !prefilling.isEmpty {
                    prefillCredit = min(prefillCredit + (monotonicSeconds() - stepStart) / 3, 2 * max(lastChunkSeconds, 0.05))
                }
            }
            var finished = Set<Int>()
            var failed: DaemonError?
            var g = 0
            while g < ready.count {
                let group = Array(ready[g..<min(ready.count, g + maxBatch)])
                g += group.count
                let batch = group.map {
                    SequenceInput(tokens: active[$0].state.nextInput, cache: active[$0].state.cache, steering: active[$0].job.request.steering)
                }
                do {
                    try model.decodeStep(batch, workspace: ws, logits: logits)
                } catch {
                    failed = daemonError(error)
                    break
                }
                cond.lock()
                stepCount += 1
                batchedSequences += batch.count
                maxBatchSeen = max(maxBatchSeen, batch.count)
                cond.unlock()
                for (k, i) in group.enumerated() {
                    active[i].state.ran()
                    let ev = active[i].state.accept(logits: logits + k * vocab)
                    if !emit(ev, &active[i]) { finished.insert(i) }
                }
            }
            if let failed {
                for i in active.indices where !finished.contains(i) { fail(active[i].job, failed) }
                active.removeAll()
                setActive(prefilling.count, parked: 0)
                continue
            }
            var keep: [Running] = []
            keep.reserveCapacity(active.count)
            for i in active.indices where !finished.contains(i) { keep.append(active[i]) }
            active = keep
            setActive(prefilling.count + active.count, parked: active.filter { $0.parkedSince != nil }.count)
        }
    }

    private func setActive(_ n: Int, parked: Int) {
        cond.lock(); activeCount = n; parkedCount = max(0, parked); cond.unlock()
    }

    private func fail(_ job: GenerationJob, _ error: DaemonError) {
        job.continuation.yield(.failed(error))
        job.continuation.finish()
    }

    /// Sends one step's event; returns whether the sequence continues.
    private func emit(_ ev: GenerationEvent, _ r: inout Running) -> Bool {
        if ev.token != nil || !ev.text.isEmpty {
            r.job.sent()
            r.job.continuation.yield(.piece(text: ev.text, tokens: ev.token.map { [$0] } ?? []))
        }
        guard let finish = ev.finish else { return true }
        let now = monotonicSeconds()
        r.stats.completionTokens = r.state.generated.count
        r.stats.decodeSeconds = now - r.firstTokenAt
        end(r.job, finish, r.stats, at: now)
        return false
    }

    private func end(_ job: GenerationJob, _ finish: FinishReason, _ stats: GenerationStats, at now: Double = monotonicSeconds()) {
        var s = stats
        s.totalSeconds = now - job.received
        job.continuation.yield(.finished(finish, s))
        job.continuation.finish()
    }

    private func daemonError(_ error: any Error) -> DaemonError {
        if let d = error as? DaemonError { return d }
        let status = rpcError(error)
        return status.code == .invalidArgument ? .invalidArgument(status.message) : .internalFailure(status.message)
    }
}
