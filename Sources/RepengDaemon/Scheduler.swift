// Batched generation for one model: a dedicated thread admits queued requests (each prefilled
// in its own forward pass), then advances every active sequence together with one batched
// decodeStep per token, each with its own KV cache and steering. Requests talk to it through
// a lock-protected queue and receive events on an AsyncStream.
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
public final class Scheduler: @unchecked Sendable {
    public let model: LlamaModel
    let maxQueue: Int
    let maxBatch: Int
    /// A sequence whose client has this many pieces unread skips decode steps until it reads.
    public let maxBacklog: Int
    /// A sequence parked that long for a slow reader is stopped.
    let slowReaderSeconds: Double
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
    /// When the loop last went round, and whether it is idle (waiting for work).
    private var lastBeat = monotonicSeconds()
    private var idle = false

    public init(model: LlamaModel, maxQueue: Int, maxBatch: Int, maxBacklog: Int = 64, slowReaderSeconds: Double = 60,
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

    /// Queued and active generations.
    public var load: (queued: Int, active: Int) {
        cond.lock(); defer { cond.unlock() }
        return (pending.count, activeCount)
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
        guard pending.count < maxQueue else {
            throw DaemonError.resourceExhausted("generation queue of this model is full (\(maxQueue) waiting); retry later")
        }
        pending.append(job)
        cond.signal()
    }

    /// Wakes the loop so it notices a cancelled job now.
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
        var active: [Running] = []
        while true {
            cond.lock()
            idle = true
            while pending.isEmpty && active.isEmpty && !stopping && !cancelAll { cond.wait() }
            idle = false
            lastBeat = monotonicSeconds()
            let cancelNow = cancelAll
            if stopping && pending.isEmpty && active.isEmpty {
                cond.unlock()
                return
            }
            var admitted: [GenerationJob] = []
            if cancelNow {
                admitted = pending
                pending.removeAll()
            } else {
                while active.count + admitted.count < maxBatch, !pending.isEmpty { admitted.append(pending.removeFirst()) }
            }
            activeCount = active.count + admitted.count
            cond.unlock()

            if cancelNow {
                for j in admitted { end(j, .cancelled, GenerationStats()) }
                for r in active { end(r.job, .cancelled, r.stats) }
                active.removeAll()
                setActive(0)
                cond.lock()
                let done = stopping
                cancelAll = !stopping ? false : cancelAll
                cond.unlock()
                if done { return }
                continue
            }

            // Prefill each new request on its own.
            for job in admitted {
                if job.isCancelled { job.continuation.finish(); continue }
                let t0 = monotonicSeconds()
                var stats = GenerationStats()
                stats.queueSeconds = t0 - job.received
                stats.promptTokens = job.request.prompt.count
                do {
                    let state = try GenerationState(model: model, request: job.request)
                    try model.decodeStep([SequenceInput(tokens: state.nextInput, cache: state.cache, steering: job.request.steering)],
                                         workspace: ws, logits: logits)
                    let ev = state.accept(logits: logits)
                    let t1 = monotonicSeconds()
                    stats.prefillSeconds = t1 - t0
                    var r = Running(job: job, state: state, stats: stats, firstTokenAt: t1)
                    if emit(ev, &r) { active.append(r) }
                } catch {
                    job.continuation.yield(.failed(daemonError(error)))
                    job.continuation.finish()
                }
            }

            // Drop sequences whose client went away.
            active.removeAll { r in
                if r.job.isCancelled { r.job.continuation.finish(); return true }
                return false
            }
            setActive(active.count)
            guard !active.isEmpty else { continue }

            // Sequences whose client has not read its last `maxBacklog` pieces sit this step out
            // (a sequence's arithmetic does not depend on the batch, so only timing changes);
            // one parked past `slowReaderSeconds` is stopped. Memory per stream stays bounded.
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
                    r.job.continuation.yield(.failed(.resourceExhausted(
                        "the client did not read its stream for \(Int(limit)) s; generation stopped")))
                    r.job.continuation.finish()
                    return true
                }
                setActive(active.count)
                continue
            }
            guard !ready.isEmpty else {
                cond.lock()
                if pending.isEmpty && !stopping && !cancelAll { _ = cond.wait(until: Date(timeIntervalSinceNow: 0.05)) }
                cond.unlock()
                continue
            }

            // One token for every ready sequence, in one batched forward pass.
            let batch = ready.map {
                SequenceInput(tokens: active[$0].state.nextInput, cache: active[$0].state.cache, steering: active[$0].job.request.steering)
            }
            do {
                try model.decodeStep(batch, workspace: ws, logits: logits)
            } catch {
                let e = daemonError(error)
                for r in active {
                    r.job.continuation.yield(.failed(e))
                    r.job.continuation.finish()
                }
                active.removeAll()
                setActive(0)
                continue
            }
            cond.lock()
            stepCount += 1
            batchedSequences += batch.count
            maxBatchSeen = max(maxBatchSeen, batch.count)
            cond.unlock()
            var finished = Set<Int>()
            for (k, i) in ready.enumerated() {
                let ev = active[i].state.accept(logits: logits + k * vocab)
                if !emit(ev, &active[i]) { finished.insert(i) }
            }
            var keep: [Running] = []
            keep.reserveCapacity(active.count)
            for i in active.indices where !finished.contains(i) { keep.append(active[i]) }
            active = keep
            setActive(active.count)
        }
    }

    private func setActive(_ n: Int) {
        cond.lock(); activeCount = n; cond.unlock()
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
