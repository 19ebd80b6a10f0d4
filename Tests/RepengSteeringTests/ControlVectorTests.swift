// Control-vector arithmetic: repeng's union-of-layers semantics, warnings and size checks.
import XCTest
@testable import RepengSteering

final class ControlVectorTests: XCTestCase {
    let a = ControlVector(modelType: "llama", directions: [1: [1, 2, 3], 2: [0.5, -1, 0]])
    let b = ControlVector(modelType: "llama", directions: [2: [1, 1, 1], 5: [-2, 0, 4]])

    func testUnionAddition() throws {
        let s = a + b
        XCTAssertEqual(s.layers, [1, 2, 5])
        XCTAssertEqual(s.directions[1], [1, 2, 3])
        XCTAssertEqual(s.directions[2], [1.5, 0, 1])
        XCTAssertEqual(s.directions[5], [-2, 0, 4])
        XCTAssertEqual(s.modelType, "llama")
        XCTAssertTrue(s.warnings.isEmpty)
        XCTAssertEqual(try a.adding(b), s)
    }

    func testUnionSubtraction() throws {
        let d = a - b
        XCTAssertEqual(d.directions[1], [1, 2, 3])
        XCTAssertEqual(d.directions[2], [-0.5, -2, -1])
        XCTAssertEqual(d.directions[5], [2, 0, -4])
        XCTAssertEqual(try a.subtracting(b), d)
        // v - v is all +0 on every layer.
        let z = a - a
        XCTAssertEqual(z.layers, [1, 2])
        for v in z.directions.values { XCTAssertTrue(v.allSatisfy { $0 == 0 && $0.sign == .plus }) }
    }

    func testScalarOperations() {
        XCTAssertEqual((a * 2).directions[1], [2, 4, 6])
        XCTAssertEqual((2 * a).directions[2], [1, -2, 0])
        XCTAssertEqual((a / 2).directions[1], [0.5, 1, 1.5])
        XCTAssertEqual((-a).directions[2], [-0.5, 1, -0])
        XCTAssertTrue((a * 0).directions.values.allSatisfy { $0.allSatisfy { $0 == 0 } })
        // Division is element-wise division, not multiplication by a reciprocal.
        let third = ControlVector(modelType: "llama", directions: [1: [1, 10, 0.7]])
        XCTAssertEqual((third / 3).directions[1], [1 / Float(3), 10 / Float(3), 0.7 / Float(3)])
        XCTAssertTrue((a / 0).warnings.contains { $0.contains("divided by 0") })
        XCTAssertTrue((a * .infinity).warnings.contains { $0.contains("non-finite") })
        XCTAssertTrue((a * 3).warnings.isEmpty)
    }

    func testModelTypeMismatchWarns() throws {
        let q = ControlVector(modelType: "qwen2", directions: [1: [1, 1, 1]])
        let s = a + q
        XCTAssertEqual(s.modelType, "llama")
        XCTAssertEqual(s.directions[1], [2, 3, 4])
        XCTAssertEqual(s.warnings.count, 1)
        XCTAssertTrue(s.warnings[0].contains("'llama'") && s.warnings[0].contains("'qwen2'"), s.warnings[0])
        // Warnings carry through later operations, once each.
        XCTAssertEqual((s * 2 + s).warnings.count, 1)
        // Warnings are not part of equality.
        var w = a
        w.warnings = ["x"]
        XCTAssertEqual(w, a)
    }

    func testHiddenSizeMismatch() {
        let wide = ControlVector(modelType: "llama", directions: [3: [1, 2, 3, 4]])
        XCTAssertThrowsError(try a.adding(wide)) {
            XCTAssertEqual($0 as? ControlVectorError, .hiddenSizeMismatch(lhs: 3, rhs: 4))
        }
        XCTAssertThrowsError(try a.subtracting(wide))
        // Operators never trap: they return the lhs unchanged, with a warning.
        let r = a + wide
        XCTAssertEqual(r.directions, a.directions)
        XCTAssertTrue(r.warnings.contains { $0.contains("different hidden sizes") }, "\(r.warnings)")
        let r2 = a - wide
        XCTAssertEqual(r2.directions, a.directions)

        let broken = ControlVector(modelType: "llama", directions: [1: [1, 2], 2: [1, 2, 3]])
        XCTAssertThrowsError(try broken.validate())
        XCTAssertThrowsError(try a.adding(broken))
        XCTAssertThrowsError(try ControlVector(modelType: "llama", directions: [-1: [1]]).validate()) {
            XCTAssertEqual($0 as? ControlVectorError, .negativeLayer(-1))
        }
    }

    func testMetadataMerging() throws {
        var x = a, y = b
        x.metadata = ControlVectorMetadata(hiddenSize: 3, blockCount: 30, method: "pca_diff", modelName: "m", trainingSummary: "s1")
        y.metadata = ControlVectorMetadata(hiddenSize: 3, blockCount: 30, method: "pca_center", modelName: "m", trainingSummary: "s2")
        let s = x + y
        XCTAssertEqual(s.metadata, ControlVectorMetadata(hiddenSize: 3, blockCount: 30, method: nil, modelName: "m", trainingSummary: nil))
        XCTAssertEqual((x * 2).metadata, x.metadata)
        // An empty vector adopts the other side's size.
        let empty = ControlVector(modelType: "llama", directions: [:])
        XCTAssertEqual((empty + a).directions, a.directions)
        XCTAssertEqual((empty + a).hiddenSize, 3)
    }

    func testKeepingAndRemoving() {
        XCTAssertEqual(a.keeping(layers: [2, 9]).layers, [2])
        XCTAssertEqual(a.removing(layers: [2]).layers, [1])
        XCTAssertEqual(a.norms[1] ?? 0, Float(14).squareRoot(), accuracy: 1e-6)
    }
}
