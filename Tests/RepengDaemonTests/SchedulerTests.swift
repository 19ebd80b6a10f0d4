// The batched scheduler on its own: a client that does not read its stream holds a bounded
// number of pieces, its sequence waits without slowing others, and it is stopped after the
// slow-reader limit.
import Foundation
import RepengDaemon
import RepengEngine
import XCTest

final class SchedulerTests: XCTestCase {
    func request(_ text: String, maxTokens: Int) throws -> GenerationRequest {
        let model = try DaemonFixtures.model()
        let ids = model.tokenizer!.encode(text, addSpecial: true)
        return GenerationRequest(prompt: ids, maxTokens: maxTokens)
    }

    /// Waits until `condition` holds or `seconds` pass.
    func wait(_ seconds: Double, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(seconds)
        while !condition() && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
    }

    func testSlowReaderWaitsAndResumesWithBoundedBuffer() async throws {
        let model = try DaemonFixtures.model()
        let scheduler = Scheduler(model: model, maxQueue: 4, maxBatch: 4, maxBacklog: 5, slowReaderSeconds: 30, name: "t")
        defer { scheduler.stop(cancelRunning: true) }
        let slow = GenerationJob(request: try request("Once upon a time", maxTokens: 40))
        let fast = GenerationJob(request: try request("The weather today", maxTokens: 20))
        try scheduler.submit(slow)
        try scheduler.submit(fast)

        // The fast client reads everything and finishes although the slow one reads nothing.
        var fastPieces = 0
        var fastDone = false
        for await ev in fast.events {
            switch ev {
            case .piece: fastPieces += 1; fast.delivered()
            case .finished: fastDone = true
            case .failed(let e): XCTFail("\(e)")
            }
        }
        XCTAssertTrue(fastDone)
        XCTAssertEqual(fastPieces, 20)
        // The slow one stopped at the backlog bound and is still active, waiting.
        wait(1) { slow.backlog == 5 }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(slow.backlog, 5, "the slow stream kept growing")
        XCTAssertEqual(scheduler.load.active, 1)

        // Reading resumes it; it completes with every piece, in order, and the same text as alone.
        var text = ""
        var pieces = 0
        var finish: FinishReason?
        for await ev in slow.events {
            switch ev {
            case let .piece(t, _): text += t; pieces += 1; if slow.delivered() == 4 { scheduler.poke() }
            case let .finished(r, _): finish = r
            case .failed(let e): XCTFail("\(e)")
            }
        }
        XCTAssertEqual(finish, .length)
        XCTAssertEqual(pieces, 40)
        var alone = ""
        try model.generate(try request("Once upon a time", maxTokens: 40)) { ev in alone += ev.text; return true }
        XCTAssertEqual(text, alone)
    }

    func testReaderThatNeverReadsIsStopped() async throws {
        let model = try DaemonFixtures.model()
        let scheduler = Scheduler(model: model, maxQueue: 4, maxBatch: 4, maxBacklog: 3, slowReaderSeconds: 0.3, name: "t")
        defer { scheduler.stop(cancelRunning: true) }
        let job = GenerationJob(request: try request("Once upon a time", maxTokens: 100))
        try scheduler.submit(job)
        // Queued, then active (it stays active for at least slowReaderSeconds), then stopped.
        wait(5) { scheduler.load.active == 1 }
        wait(5) { scheduler.load.active == 0 && scheduler.load.queued == 0 }
        XCTAssertEqual(scheduler.load.active, 0, "a stream nobody reads was not stopped")
        var pieces = 0
        var failure: DaemonError?
        for await ev in job.events {
            switch ev {
            case .piece: pieces += 1
            case .finished: XCTFail("finished although nobody read")
            case .failed(let e): failure = e
            }
        }
        XCTAssertEqual(pieces, 3)
        guard case .resourceExhausted(let m)? = failure else { return XCTFail("\(String(describing: failure))") }
        XCTAssertTrue(m.contains("did not read"), m)
    }
}
