// First principal component (LAPACK path against the plain Jacobi reference) and the per-layer
// fitting of pca_diff / pca_center / mean_diff on synthetic hidden states with a known answer.
import XCTest
@testable import RepengSteering

final class PCATests: XCTestCase {
    /// Deterministic pseudo-random numbers (SplitMix64) in [-1, 1).
    struct Rand {
        var state: UInt64
        mutating func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) * 0x1.0p-52 - 1
        }
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return dot / (na * nb)
    }

    func testLapackMatchesJacobiReference() throws {
        var r = Rand(state: 7)
        for (n, d) in [(12, 40), (40, 12), (25, 25), (2, 5), (60, 3)] {
            // Anisotropic data so the top component is well defined.
            let x = (0..<(n * d)).map { i in r.next() * Double(1 + (i % d) % 5) + (i % d == 1 ? 3 * r.next() : 0) }
            let fast = try PCA.firstComponent(x, rows: n, cols: d)
            let ref = try PCA.firstComponentReference(x, rows: n, cols: d)
            let cos = Self.cosine(fast.direction, ref.direction)
            let maxDiff = zip(fast.direction, ref.direction).map { abs($0 - $1) }.max() ?? 0
            print("PCA \(n)x\(d): cosine(LAPACK, Jacobi) = \(cos), max |diff| = \(maxDiff), explained \(fast.explainedRatio)")
            XCTAssertGreaterThan(cos, 1 - 1e-12)
            XCTAssertLessThan(maxDiff, 1e-8)
            XCTAssertEqual(fast.variance, ref.variance, accuracy: 1e-9 * max(1, ref.variance))
            XCTAssertEqual(fast.direction.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-12)
        }
    }

    func testRecoversKnownDirectionAndCentres() throws {
        // Points along u plus a large common offset: centering must remove the offset.
        let d = 6
        let u: [Double] = [1, -2, 0, 3, 0.5, 0].map { $0 / (1 + 4 + 9 + 0.25).squareRoot() }
        var r = Rand(state: 3)
        var x: [Double] = []
        for _ in 0..<30 {
            let t = r.next() * 10
            for c in 0..<d { x.append(100 + t * u[c] + 0.01 * r.next()) }
        }
        let pc = try firstPrincipalComponent(x, rows: 30, columns: d)
        XCTAssertGreaterThan(abs(Self.cosine(pc.direction, u)), 0.9999)
        // Canonical sign: largest-magnitude entry positive (u's largest is +3 → same sign as u).
        XCTAssertGreaterThan(Self.cosine(pc.direction, u), 0)
        XCTAssertGreaterThan(pc.explainedRatio, 0.999)
    }

    func testDegenerateInputs() {
        XCTAssertThrowsError(try firstPrincipalComponent([1, 2, 1, 2], rows: 2, columns: 2)) {
            XCTAssertEqual($0 as? PCAError, .noVariance)
        }
        XCTAssertThrowsError(try firstPrincipalComponent([1, 2, 3], rows: 2, columns: 2)) {
            XCTAssertEqual($0 as? PCAError, .badShape(rows: 2, columns: 2, values: 3))
        }
        XCTAssertThrowsError(try firstPrincipalComponent([1, .nan, 3, 4], rows: 2, columns: 2)) {
            XCTAssertEqual($0 as? PCAError, .nonFinite)
        }
        XCTAssertThrowsError(try firstPrincipalComponent([], rows: Int.max, columns: 2))
    }

    /// Hidden states for `pairs` pairs: positive = base + s·u + noise, negative = base − s·u + noise,
    /// with the sign of s flipped for `againstEvery`-th pairs.
    static func synthetic(pairs: Int, d: Int, u: [Float], seed: UInt64, againstEvery: Int = 0) throws -> HiddenMatrix {
        var r = Rand(state: seed)
        var values: [Float] = []
        for p in 0..<pairs {
            let base = (0..<d).map { _ in Float(r.next() * 5) }
            var s = Float(1 + r.next() * 0.5)
            if againstEvery > 0, p % againstEvery == 0 { s = -s }
            values += (0..<d).map { base[$0] + s * u[$0] + Float(0.05 * r.next()) }
            values += (0..<d).map { base[$0] - s * u[$0] + Float(0.05 * r.next()) }
        }
        return try HiddenMatrix(rows: 2 * pairs, columns: d, values: values)
    }

    func testFitDirectionsSignVoteAllMethods() throws {
        let d = 16
        var u = [Float](repeating: 0, count: d)
        u[3] = -0.8; u[7] = 0.6  // largest entry negative: the sign vote must overrule the canonical sign
        let h = try Self.synthetic(pairs: 40, d: d, u: u, seed: 11, againstEvery: 5)
        for method in TrainingMethod.allCases {
            let fitted = try ControlVector.fitDirections(hiddens: [4: h], method: method)
            let f = try XCTUnwrap(fitted[4])
            let norm = f.direction.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            let cos = zip(f.direction, u).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            print("fit \(method.rawValue): norm \(norm), cosine with truth \(cos), pairs higher \(f.pairsHigher) lower \(f.pairsLower), flipped \(f.flipped)")
            XCTAssertEqual(norm, 1, accuracy: 1e-6)
            XCTAssertGreaterThan(cos, 0.99)
            XCTAssertEqual(f.pairsHigher, 32)
            XCTAssertEqual(f.pairsLower, 8)
            if method != .meanDiff { XCTAssertTrue(f.flipped) }
        }
    }

    func testFitErrors() throws {
        let same = try HiddenMatrix(rows: 4, columns: 3, values: [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
        for method in TrainingMethod.allCases {
            XCTAssertThrowsError(try ControlVector.fitDirections(hiddens: [2: same], method: method)) { error in
                guard case .degenerate(let layer, _)? = error as? TrainingError else { return XCTFail("\(error)") }
                XCTAssertEqual(layer, 2)
            }
        }
        let odd = try HiddenMatrix(rows: 3, columns: 1, values: [1, 2, 3])
        XCTAssertThrowsError(try ControlVector.fitDirections(hiddens: [1: odd], method: .pcaDiff)) {
            XCTAssertEqual($0 as? TrainingError, .unpairedRows(layer: 1, rows: 3))
        }
        let nan = try HiddenMatrix(rows: 2, columns: 1, values: [1, .nan])
        XCTAssertThrowsError(try ControlVector.fitDirections(hiddens: [1: nan], method: .meanDiff)) {
            XCTAssertEqual($0 as? TrainingError, .nonFinite(layer: 1))
        }
        XCTAssertThrowsError(try HiddenMatrix(rows: 2, columns: 2, values: [1])) {
            XCTAssertEqual($0 as? TrainingError, .badMatrix(rows: 2, columns: 2, values: 1))
        }
    }
}
