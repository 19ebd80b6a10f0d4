// Request bodies of the HTTP API (OpenAI's chat/completions and completions shapes, as of the
// openai-python 1.x client, plus repengd's steering fields) and a small JSON writer for replies.
import Foundation
import RepengEngine
import RepengProtocol

// MARK: JSON out

/// A JSON value written with its object keys in the order given.
enum JSON: Sendable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(nilLiteral: ()) { self = .null }
    static func int(_ v: Int) -> JSON { .int(Int64(v)) }
    static func number(_ v: Float) -> JSON { .double(Double(v)) }
    static func strings(_ v: [String]) -> JSON { .array(v.map(JSON.string)) }
    static func ints<T: BinaryInteger>(_ v: [T]) -> JSON { .array(v.map { .int(Int64($0)) }) }

    /// Compact UTF-8 text.
    var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite { out += "null" } else if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) } else { out += "\(d)" }
        case .string(let s): out += jsonString(s)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { out += "," }
                out += jsonString(k)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }
}

// MARK: JSON in

/// One of a control's terms: `{"vector": "happy", "coeff": 1.5}` (`coefficient` is accepted too).
struct ControlTermBody: Decodable, Sendable {
    var vector: String
    var coeff: Float

    enum CodingKeys: String, CodingKey { case vector, coeff, coefficient }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vector = try c.decode(String.self, forKey: .vector)
        if let k = try c.decodeIfPresent(Float.self, forKey: .coeff) {
            coeff = k
        } else if let k = try c.decodeIfPresent(Float.self, forKey: .coefficient) {
            coeff = k
        } else {
            throw DecodingError.keyNotFound(CodingKeys.coeff, .init(codingPath: c.codingPath, debugDescription: "coeff is required"))
        }
    }
}

/// `layers`: a SPEC string as repengctl takes ("-5..-18", "3,5,7..9") or a list of numbers.
struct LayersBody: Decodable, Sendable {
    var layers: [Int32]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            do { layers = try LayerSpec.parse(s) } catch {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "\(error)")
            }
        } else if let a = try? c.decode([Int32].self) {
            layers = a
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a layer SPEC string such as \"-5..-18\" or a list of layer numbers")
        }
    }
}

/// A string or a list of strings (`stop`, `prompt`).
struct StringsBody: Decodable, Sendable {
    var values: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            values = [s]
        } else if let a = try? c.decode([String].self) {
            values = a
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a string or a list of strings")
        }
    }
}

/// A field read only to refuse it when it asks for something repengd does not do: null,
/// false and 0 are accepted.
struct IgnoredUnlessSet: Decodable, Sendable {
    var isSet: Bool
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { isSet = false } else if let b = try? c.decode(Bool.self) { isSet = b } else if let d = try? c.decode(Double.self) {
            isSet = d != 0
        } else {
            isSet = true
        }
    }
}

struct StreamOptionsBody: Decodable, Sendable {
    var include_usage: Bool?
}

/// The fields /v1/completions and /v1/chat/completions share.
struct SamplingBody: Decodable, Sendable {
    var model: String?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var top_k: Int?
    var min_p: Float?
    var repetition_penalty: Float?
    var frequency_penalty: Float?
    var presence_penalty: Float?
    var seed: Int64?
    var stop: StringsBody?
    var stream: Bool?
    var stream_options: StreamOptionsBody?
    var n: Int?
    var logprobs: IgnoredUnlessSet?
    var top_logprobs: IgnoredUnlessSet?
    var echo: IgnoredUnlessSet?
    var best_of: Int?
    var suffix: String?
    var tools: IgnoredUnlessSet?
    var response_format: ResponseFormatBody?
    // Steering.
    var control: [ControlTermBody]?
    var layers: LayersBody?
    var normalize: Bool?
}

struct ResponseFormatBody: Decodable, Sendable {
    var type: String
}

/// POST /v1/completions.
struct CompletionBody: Decodable, Sendable {
    var prompt: StringsBody?
}

/// One chat message; `content` is a string or a list of `{"type": "text", "text": …}` parts.
struct ChatMessageBody: Decodable, Sendable {
    var role: String
    var content: String

    struct Part: Decodable { var type: String; var text: String? }
    enum CodingKeys: String, CodingKey { case role, content }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        if try c.decodeNil(forKey: .content) {
            content = ""
        } else if let s = try? c.decode(String.self, forKey: .content) {
            content = s
        } else if let parts = try? c.decode([Part].self, forKey: .content) {
            var text = ""
            for p in parts {
                guard p.type == "text", let t = p.text else {
                    throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "only text parts are supported, got a '\(quoted(p.type))' part")
                }
                text += t
            }
            content = text
        } else {
            throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "must be a string or a list of text parts")
        }
    }
}

/// POST /v1/chat/completions.
struct ChatBody: Decodable, Sendable {
    var messages: [ChatMessageBody]?
    /// repengd: chatml, gemma or plain instead of the model's own template.
    var chat_format: String?
}

/// PUT /v1/control.
struct ControlBody: Decodable, Sendable {
    var model: String?
    var control: [ControlTermBody]?
    var layers: LayersBody?
    var normalize: Bool?
}

/// POST /v1/train.
struct TrainBody: Decodable, Sendable {
    struct Pair: Decodable, Sendable {
        var positive: String
        var negative: String
        var reply: String?
    }
    var model: String?
    var name: String?
    var dataset: [Pair]?
    var method: String?
    var layers: LayersBody?
    var overwrite: Bool?
    var batch_size: Int?
    var chat: Bool?
    var chat_format: String?
    var sae: String?
    var keep_features: Bool?
    var sae_repeng_pairing: Bool?
    var stream: Bool?
}

/// Decodes a request body, with an error naming the field at fault.
func decodeBody<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    guard !bytes.isEmpty else { throw DaemonError.invalidArgument("the request has no body; send a JSON object") }
    do {
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch let e as DecodingError {
        throw DaemonError.invalidArgument(describe(e))
    } catch {
        throw DaemonError.invalidArgument("the body is not valid JSON: \(error)")
    }
}

/// "field 'messages[0].content': must be …" from a decoding error.
func describe(_ e: DecodingError) -> String {
    func path(_ p: [any CodingKey]) -> String {
        var s = ""
        for k in p {
            if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
        }
        return s.isEmpty ? "the body" : "field '\(s)'"
    }
    switch e {
    case let .typeMismatch(t, c): return "\(path(c.codingPath)): expected \(jsonName(t))"
    case let .valueNotFound(t, c): return "\(path(c.codingPath)): expected \(jsonName(t)), got null"
    case let .keyNotFound(k, c): return "\(path(c.codingPath + [k])) is required"
    case let .dataCorrupted(c):
        if c.codingPath.isEmpty { return "the body is not valid JSON" + (c.underlyingError.map { ": \($0.localizedDescription)" } ?? "") }
        return "\(path(c.codingPath)): \(c.debugDescription)"
    @unknown default: return "the body does not match the expected shape"
    }
}

private func jsonName(_ t: Any.Type) -> String {
    switch t {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is Float.Type, is Double.Type: return "a number"
    case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
    default:
        let n = "\(t)"
        if n.hasPrefix("Array") { return "a list" }
        if n.hasPrefix("Dictionary") { return "an object" }
        return "an object"
    }
}
