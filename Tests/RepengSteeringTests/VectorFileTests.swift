// Control-vector files: GGUF (repeng / llama.cpp layout) and JSON round trips, files laid out
// as repeng writes them, and hostile GGUF and JSON inputs.
import Foundation
import RepengEngine
import XCTest
@testable import RepengSteering

final class VectorFileTests: XCTestCase {
    /// A vector whose values include the awkward cases: ±0, subnormals, extremes, random bits.
    static func awkwardVector(d: Int = 67, layers: [Int] = [1, 2, 7, 29]) -> ControlVector {
        var rng = SystemRandomNumberGenerator()
        var dirs: [Int: [Float]] = [:]
        let special: [Float] = [0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude,
                                -.greatestFiniteMagnitude, 0.1, 1 / 3, 1e-38, 16_777_215, .ulpOfOne]
        for l in layers {
            var v = special
            while v.count < d {
                var bits: UInt32
                repeat { bits = rng.next() } while !Float(bitPattern: bits).isFinite
                v.append(Float(bitPattern: bits))
            }
            dirs[l] = Array(v.prefix(d))
        }
        return ControlVector(modelType: "llama", directions: dirs,
                             metadata: ControlVectorMetadata(hiddenSize: d, blockCount: 30, method: "pca_diff",
                                                             modelName: "Ünïcode \"name\"\n", trainingSummary: "pca_diff, 3 pairs"))
    }

    static func bitsEqual(_ x: ControlVector, _ y: ControlVector) -> Bool {
        guard x.layers == y.layers else { return false }
        for l in x.layers where x.directions[l]!.map(\.bitPattern) != y.directions[l]!.map(\.bitPattern) { return false }
        return true
    }

    func testGGUFRoundTripIsByteExact() throws {
        let v = Self.awkwardVector()
        let bytes = try v.ggufBytes()
        let back = try ControlVector(ggufBytes: bytes)
        XCTAssertTrue(Self.bitsEqual(v, back))
        XCTAssertEqual(back.modelType, "llama")
        XCTAssertEqual(back.metadata, v.metadata)
        XCTAssertTrue(back.warnings.isEmpty, "\(back.warnings)")
        XCTAssertEqual(try back.ggufBytes(), bytes, "re-export differs")

        // Layout: the keys repeng writes first, then ours; tensors direction.<block> ascending.
        let file = try GGUFFile(bytes: bytes)
        XCTAssertEqual(Array(file.metadataKeys.prefix(3)),
                       ["general.architecture", "controlvector.model_hint", "controlvector.layer_count"])
        XCTAssertEqual(file.metadata["general.architecture"], .string("controlvector"))
        XCTAssertEqual(file.metadata["controlvector.layer_count"], .uint32(4))
        XCTAssertEqual(file.metadata["controlvector.n_embd"], .uint32(67))
        XCTAssertEqual(file.tensors.map(\.name), ["direction.1", "direction.2", "direction.7", "direction.29"])
        XCTAssertTrue(file.tensors.allSatisfy { $0.type == .f32 && $0.dims == [67] })

        // Through a real file as well.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cv-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try v.exportGGUF(to: path)
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), bytes)
        XCTAssertTrue(Self.bitsEqual(try ControlVector.importGGUF(path: path), v))
        XCTAssertTrue(Self.bitsEqual(try ControlVector.load(path: path), v))
    }

    func testJSONRoundTripIsBitExact() throws {
        let v = Self.awkwardVector()
        let data = try v.jsonData()
        let back = try ControlVector(jsonData: data)
        XCTAssertTrue(Self.bitsEqual(v, back))
        XCTAssertEqual(back.metadata, v.metadata)
        XCTAssertEqual(back.modelType, v.modelType)
        XCTAssertEqual(try back.jsonData(), data, "re-export differs")
        // Negative zero survives.
        XCTAssertEqual(back.directions[1]![1].bitPattern, (-0.0 as Float).bitPattern)
        // And it is plain JSON that other tools read.
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: data))

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cv-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try v.exportJSON(to: path)
        XCTAssertTrue(Self.bitsEqual(try ControlVector.load(path: path), v))
        // GGUF → JSON → GGUF keeps the bytes.
        XCTAssertEqual(try ControlVector(jsonData: v.jsonData()).ggufBytes(), try v.ggufBytes())
    }

    func testExportRefusals() {
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [0: [1, 2], 1: [1, 2]]).ggufBytes()) {
            XCTAssertEqual($0 as? VectorFileError, .blockZero)
        }
        XCTAssertNoThrow(try ControlVector(modelType: "llama", directions: [0: [1, 2], 1: [1, 2]]).removing(layers: [0]).ggufBytes())
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [:]).ggufBytes()) {
            XCTAssertEqual($0 as? VectorFileError, .noDirections)
        }
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [3: [1, .nan]]).ggufBytes()) {
            XCTAssertEqual($0 as? VectorFileError, .nonFinite(layer: 3, index: 1))
        }
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [3: [1, .infinity]]).jsonData())
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [3: [1], 4: [1, 2]]).ggufBytes())
    }

    // MARK: Files laid out as repeng writes them

    /// repeng's export_gguf: general.architecture, model_hint, layer_count, then direction.<layer>
    /// in its dict order (descending for its default layers); nothing else.
    static func repengFile(layerCount: GGUFValue? = .uint32(3), hint: GGUFValue? = .string("llama"),
                           arch: GGUFValue? = .string("controlvector"),
                           tensors: [(String, [Int], GGMLType, [UInt8])]? = nil) throws -> [UInt8] {
        var w = GGUFWriter()
        if let arch { w.add(key: "general.architecture", arch) }
        if let hint { w.add(key: "controlvector.model_hint", hint) }
        if let layerCount { w.add(key: "controlvector.layer_count", layerCount) }
        let ts = tensors ?? [3, 2, 1].map { l in ("direction.\(l)", [4], GGMLType.f32, floatBytes((0..<4).map { Float(l * 10 + $0) })) }
        for (name, dims, type, data) in ts { w.addTensor(name: name, dims: dims, type: type, data: data) }
        return try w.serialize()
    }

    static func floatBytes(_ v: [Float]) -> [UInt8] { v.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) } }

    func testImportRepengLayout() throws {
        for count in [GGUFValue.uint32(3), .int32(3)] {
            let v = try ControlVector(ggufBytes: Self.repengFile(layerCount: count))
            XCTAssertEqual(v.modelType, "llama")
            XCTAssertEqual(v.layers, [1, 2, 3])
            XCTAssertEqual(v.directions[2], [20, 21, 22, 23])
            XCTAssertEqual(v.hiddenSize, 4)
            XCTAssertEqual(v.metadata, ControlVectorMetadata(hiddenSize: 4))
            XCTAssertTrue(v.warnings.isEmpty, "\(v.warnings)")
        }
        // No layer_count at all is fine; a wrong one warns.
        XCTAssertNoThrow(try ControlVector(ggufBytes: Self.repengFile(layerCount: nil)))
        let wrongCount = try ControlVector(ggufBytes: Self.repengFile(layerCount: .uint32(5)))
        XCTAssertTrue(wrongCount.warnings.contains { $0.contains("layer_count is 5") }, "\(wrongCount.warnings)")
        let stringCount = try ControlVector(ggufBytes: Self.repengFile(layerCount: .string("3")))
        XCTAssertFalse(stringCount.warnings.isEmpty)
    }

    func testArchitectureAndHint() throws {
        let wrongArch = try ControlVector(ggufBytes: Self.repengFile(arch: .string("llama")))
        XCTAssertEqual(wrongArch.layers, [1, 2, 3])
        XCTAssertTrue(wrongArch.warnings.contains { $0.contains("'llama', not 'controlvector'") }, "\(wrongArch.warnings)")
        let noArch = try ControlVector(ggufBytes: Self.repengFile(arch: nil))
        XCTAssertEqual(noArch.warnings.count, 1)
        XCTAssertThrowsError(try ControlVector(ggufBytes: Self.repengFile(hint: nil))) {
            XCTAssertEqual($0 as? VectorFileError, .missingModelHint)
        }
        XCTAssertThrowsError(try ControlVector(ggufBytes: Self.repengFile(hint: .uint32(1)))) { error in
            guard case .wrongType(let key, _, _)? = error as? VectorFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "controlvector.model_hint")
        }
    }

    func testHostileGGUF() throws {
        let ok = Self.floatBytes([1, 2, 3, 4])
        func file(_ tensors: [(String, [Int], GGMLType, [UInt8])]) throws -> [UInt8] {
            try Self.repengFile(tensors: tensors)
        }
        func expect(_ tensors: [(String, [Int], GGMLType, [UInt8])], _ check: (VectorFileError) -> Bool,
                    line: UInt = #line) throws {
            let bytes = try file(tensors)
            XCTAssertThrowsError(try ControlVector(ggufBytes: bytes), line: line) { error in
                guard let e = error as? VectorFileError, check(e) else { return XCTFail("unexpected \(error)", line: line) }
                XCTAssertFalse(e.description.isEmpty)
            }
        }
        for name in ["direction.-1", "direction.x", "direction.", "direction.1.5", "direction. 3", "direction.+3", "direction.0x1"] {
            try expect([(name, [4], .f32, ok)]) { $0 == .badDirectionName(name) }
        }
        try expect([("direction.99999999999", [4], .f32, ok)]) { if case .layerOutOfRange = $0 { return true }; return false }
        try expect([("direction.65536", [4], .f32, ok)]) { if case .layerOutOfRange = $0 { return true }; return false }
        try expect([("direction.5", [4], .f32, ok), ("direction.05", [4], .f32, ok)]) { $0 == .duplicateLayer(5) }
        try expect([("direction.1", [4], .f16, [UInt8](repeating: 0, count: 8))]) { $0 == .tensorType(tensor: "direction.1", type: GGMLType.f16.description) }
        try expect([("direction.1", [2, 2], .f32, ok)]) { $0 == .tensorShape(tensor: "direction.1", dims: [2, 2]) }
        try expect([("direction.1", [4], .f32, ok), ("direction.2", [2], .f32, Self.floatBytes([1, 2]))]) {
            $0 == .lengthMismatch(tensor: "direction.2", expected: 4, found: 2)
        }
        try expect([("direction.1", [0], .f32, [])]) { $0 == .emptyTensor("direction.1") }
        try expect([("direction.1", [4], .f32, Self.floatBytes([1, .nan, 3, 4]))]) { $0 == .nonFinite(layer: 1, index: 1) }
        try expect([("direction.1", [4], .f32, Self.floatBytes([1, 2, -.infinity, 4]))]) { $0 == .nonFinite(layer: 1, index: 2) }
        try expect([("other", [4], .f32, ok)]) { $0 == .noDirections }
        try expect([]) { $0 == .noDirections }

        // Trailing unit dimensions are one-dimensional in ggml's sense.
        XCTAssertEqual(try ControlVector(ggufBytes: file([("direction.4", [4, 1], .f32, ok)])).directions[4], [1, 2, 3, 4])
        // Stray tensors are skipped with a warning, as repeng does.
        let stray = try ControlVector(ggufBytes: file([("direction.4", [4], .f32, ok), ("extra.weight", [4], .f32, ok)]))
        XCTAssertEqual(stray.layers, [4])
        XCTAssertTrue(stray.warnings.contains { $0.contains("extra.weight") })
        // direction.0 loads, with a warning.
        let zero = try ControlVector(ggufBytes: file([("direction.0", [4], .f32, ok)]))
        XCTAssertEqual(zero.layers, [0])
        XCTAssertTrue(zero.warnings.contains { $0.contains("direction.0") })

        // Our own keys are checked against the tensors.
        var w = GGUFWriter()
        w.add(key: "controlvector.model_hint", .string("llama"))
        w.add(key: "controlvector.n_embd", .uint32(8))
        w.addTensor(name: "direction.1", dims: [4], type: .f32, data: ok)
        XCTAssertThrowsError(try ControlVector(ggufBytes: w.serialize())) {
            XCTAssertEqual($0 as? VectorFileError, .lengthMismatch(tensor: "direction.1", expected: 8, found: 4))
        }
        var w2 = GGUFWriter()
        w2.add(key: "controlvector.model_hint", .string("llama"))
        w2.add(key: "controlvector.block_count", .uint32(4))
        w2.addTensor(name: "direction.4", dims: [4], type: .f32, data: ok)
        XCTAssertThrowsError(try ControlVector(ggufBytes: w2.serialize())) {
            XCTAssertEqual($0 as? VectorFileError, .layerOutOfRange(tensor: "direction.4", layer: 4, limit: 3))
        }
        var w3 = GGUFWriter()
        w3.add(key: "controlvector.model_hint", .string("llama"))
        w3.add(key: "controlvector.method", .int32(1))
        w3.addTensor(name: "direction.1", dims: [4], type: .f32, data: ok)
        XCTAssertThrowsError(try ControlVector(ggufBytes: w3.serialize()))

        // Not GGUF at all, and truncated GGUF.
        XCTAssertThrowsError(try ControlVector(ggufBytes: Array("hello world, not a gguf file".utf8))) { error in
            guard case .gguf? = error as? VectorFileError else { return XCTFail("\(error)") }
        }
        let good = try file([("direction.1", [4], .f32, ok)])
        // Any cut before the end of the tensor data (the trailing alignment padding is optional).
        let end = try GGUFFile(bytes: good).dataOffset + 16
        for cut in stride(from: 0, to: end, by: 3) {
            XCTAssertThrowsError(try ControlVector(ggufBytes: Array(good.prefix(cut))))
        }
        XCTAssertThrowsError(try ControlVector.importGGUF(path: "/nonexistent/dir/x.gguf"))
    }

    func testHostileJSON() throws {
        func doc(_ directions: String, nEmbd: Int = 2, extra: String = "") -> Data {
            Data(#"{"format": "repeng-control-vector", "version": 1, "model_type": "llama", "n_embd": \#(nEmbd)\#(extra), "directions": \#(directions)}"#.utf8)
        }
        XCTAssertEqual(try ControlVector(jsonData: doc(#"{"3": [1, -0.5]}"#)).directions, [3: [1, -0.5]])
        // Values not representable as Float are rounded to the nearest Float.
        XCTAssertEqual(try ControlVector(jsonData: doc(#"{"3": [0.1, 1e-50]}"#)).directions[3], [0.1, 0])
        let bad: [(Data, String)] = [
            (doc(#"{"3": [1]}"#), "lengthMismatch"),
            (doc(#"{"-3": [1, 2]}"#), "badDirectionName"),
            (doc(#"{"x": [1, 2]}"#), "badDirectionName"),
            (doc(#"{"3": [1, 2], "03": [1, 2]}"#), "duplicateLayer"),
            (doc(#"{"70000": [1, 2]}"#), "layerOutOfRange"),
            (doc(#"{"3": [1, 2]}"#, extra: #", "block_count": 3"#), "layerOutOfRange"),
            (doc(#"{"3": [1, "2"]}"#), "json"),
            (doc(#"{"3": [1, 1e39]}"#), "nonFinite"),
            (doc("{}"), "noDirections"),
            (doc(#"{"3": [1, 2]}"#, nEmbd: 0), "json"),
            (Data(#"{"format": "other", "version": 1, "model_type": "l", "n_embd": 2, "directions": {}}"#.utf8), "json"),
            (Data(#"{"format": "repeng-control-vector", "version": 2, "model_type": "l", "n_embd": 2, "directions": {}}"#.utf8), "json"),
            (Data(#"{"format": "repeng-control-vector", "version": 1, "n_embd": 2, "directions": {}}"#.utf8), "json"),
            (Data("[1, 2]".utf8), "json"),
            (Data("{".utf8), "json"),
        ]
        for (data, kind) in bad {
            XCTAssertThrowsError(try ControlVector(jsonData: data), String(decoding: data, as: UTF8.self)) { error in
                guard let e = error as? VectorFileError else { return XCTFail("\(error)") }
                XCTAssertEqual(caseLabel(e), kind,
                              "\(String(decoding: data, as: UTF8.self)): \(e)")
            }
        }
    }
}

private func caseLabel(_ e: VectorFileError) -> String {
    switch e {
    case .io: return "io"
    case .gguf: return "gguf"
    case .missingModelHint: return "missingModelHint"
    case .wrongType: return "wrongType"
    case .badDirectionName: return "badDirectionName"
    case .layerOutOfRange: return "layerOutOfRange"
    case .duplicateLayer: return "duplicateLayer"
    case .tensorType: return "tensorType"
    case .tensorShape: return "tensorShape"
    case .emptyTensor: return "emptyTensor"
    case .lengthMismatch: return "lengthMismatch"
    case .nonFinite: return "nonFinite"
    case .noDirections: return "noDirections"
    case .blockZero: return "blockZero"
    case .invalidVector: return "invalidVector"
    case .json: return "json"
    }
}
