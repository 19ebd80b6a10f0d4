// Request bodies of the HTTP API as hostile input: every decoder over thousands of mutated
// bodies returns a value or a readable error, never a crash; JSON written back is valid.
import Foundation
@testable import RepengDaemon
import XCTest

final class HTTPBodyTests: XCTestCase {
    static let seeds = [
        #"{"model":"smollm2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"temperature":0.7,"top_p":0.9,"top_k":40,"seed":-3,"stop":["\n\n","END"],"stream":true,"stream_options":{"include_usage":true},"control":[{"vector":"happy","coeff":1.5},{"vector":"calm","coefficient":-2}],"layers":"-5..-18","normalize":true,"max_completion_tokens":32,"logprobs":false,"n":1}"#,
        #"{"prompt":["Once upon a time"],"max_tokens":16,"stop":"x","control":[],"layers":[3,4,5],"frequency_penalty":0,"echo":null}"#,
        #"{"name":"mood","dataset":[{"positive":"a","negative":"b","reply":"c"}],"method":"pca_center","layers":"1..5","overwrite":true,"batch_size":8,"chat":true,"chat_format":"chatml","sae":"x","keep_features":false,"stream":false}"#,
        #"{"model":"","control":[{"vector":"happy","coeff":4}],"layers":"-1","normalize":false}"#,
    ]

    func testMutatedBodiesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = ["{", "}", "[", "]", "\"", ":", ",", "null", "-1e999", "1e308", "\\u0000", "\\ud800", "true", "0.5", "..", "-"]
            .map { Array($0.utf8) }
        var decoded = 0, refused = 0
        for i in 0..<6000 {
            var b = Array(Self.seeds[i % Self.seeds.count].utf8)
            for _ in 0..<(1 + Int.random(in: 0..<4, using: &rng)) {
                let at = Int.random(in: 0...b.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where !b.isEmpty: b.remove(at: min(at, b.count - 1))
                case 1: b.insert(contentsOf: pieces.randomElement(using: &rng)!, at: at)
                case 2 where !b.isEmpty: b[min(at, b.count - 1)] = UInt8.random(in: 0...255, using: &rng)
                default: b = Array(b.prefix(at))
                }
            }
            func attempt<T: Decodable>(_ t: T.Type) {
                do {
                    _ = try decodeBody(t, from: b)
                    decoded += 1
                } catch let e as DaemonError {
                    refused += 1
                    XCTAssertFalse(e.description.isEmpty)
                } catch {
                    XCTFail("\(t): not a DaemonError: \(error)")
                }
            }
            attempt(SamplingBody.self)
            attempt(ChatBody.self)
            attempt(CompletionBody.self)
            attempt(ControlBody.self)
            attempt(TrainBody.self)
        }
        print("HTTP bodies: \(decoded) decoded, \(refused) refused with a message")
        XCTAssertGreaterThan(refused, 0)
        for seed in Self.seeds { XCTAssertNoThrow(try decodeBody(SamplingBody.self, from: Array(seed.utf8))) }
    }

    func testErrorsNameTheField() {
        func message(_ body: String) -> String {
            do { _ = try decodeBody(ChatBody.self, from: Array(body.utf8)); _ = try decodeBody(SamplingBody.self, from: Array(body.utf8)) } catch {
                return "\(error)"
            }
            return ""
        }
        XCTAssertTrue(message(#"{"messages":[{"role":"user","content":5}]}"#).contains("messages[0].content"), message(#"{"messages":[{"role":"user","content":5}]}"#))
        XCTAssertTrue(message(#"{"messages":[{"content":"x"}]}"#).contains("messages[0].role"))
        XCTAssertTrue(message(#"{"messages":[],"temperature":"hot"}"#).contains("temperature"))
        XCTAssertTrue(message(#"{"messages":[],"control":[{"vector":"a"}]}"#).contains("field 'control[0].coeff' is required"))
        XCTAssertTrue(message("").contains("no body"))
    }

    func testJSONWriterOutputParses() throws {
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} line sep \u{2028} emoji 🙂"
        let value = JSON.object([("s", .string(tricky)), ("n", .double(.nan)), ("i", .int(-5)), ("d", .double(0.25)),
                                 ("a", .array([.bool(true), nil, .ints([1, 2])]))])
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(value.text.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["s"] as? String, tricky)
        XCTAssertTrue(parsed["n"] is NSNull)
        XCTAssertEqual(parsed["d"] as? Double, 0.25)
        XCTAssertFalse(value.text.contains("\n"), "one line: safe in a server-sent event")
    }
}
