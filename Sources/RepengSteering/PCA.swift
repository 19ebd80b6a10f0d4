// First principal component, exactly and deterministically: the top eigenvector of the smaller
// of the Gram matrix X·Xᵀ or the scatter matrix Xᵀ·X of the column-centred data (LAPACK dsyevr,
// double precision), with a plain cyclic-Jacobi reference beside it for tests.
import CBLAS
import Foundation

/// The first principal component of some rows.
public struct PrincipalComponent: Sendable, Equatable {
    /// Unit vector (length = number of columns). Its sign is canonical: the entry of largest
    /// magnitude (the first one on ties) is positive, as scikit-learn's `svd_flip` does.
    public var direction: [Double]
    /// Variance along `direction` (top eigenvalue of the scatter matrix divided by rows − 1).
    public var variance: Double
    /// Share of the total variance along `direction` (0 … 1; 0 when there is no variance).
    public var explainedRatio: Double
}

/// Why a principal component could not be computed.
public enum PCAError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Fewer than one row or column, or a values count that does not match.
    case badShape(rows: Int, columns: Int, values: Int)
    /// A value is NaN or infinite.
    case nonFinite
    /// After centering, every value is zero: every direction explains the data equally (none).
    case noVariance
    /// LAPACK reported failure (`info` as returned by LAPACKE).
    case lapack(routine: String, info: Int)

    public var description: String {
        switch self {
        case let .badShape(r, c, v): return "PCA input has \(v) values, not \(r) rows × \(c) columns (both must be positive)"
        case .nonFinite: return "PCA input has a NaN or infinite value"
        case .noVariance: return "the data has no variance after centering (all rows identical), so it has no principal direction"
        case let .lapack(routine, info): return "LAPACK \(routine) failed (info \(info))"
        }
    }
}

enum PCA {
    /// Column-centres `x` (rows × cols, row-major) in place and returns the sum of squares.
    static func center(_ x: inout [Double], rows n: Int, cols d: Int) -> Double {
        var mean = [Double](repeating: 0, count: d)
        x.withUnsafeBufferPointer { p in
            for r in 0..<n {
                let row = p.baseAddress! + r * d
                for c in 0..<d { mean[c] += row[c] }
            }
        }
        for c in 0..<d { mean[c] /= Double(n) }
        var total = 0.0
        x.withUnsafeMutableBufferPointer { p in
            for r in 0..<n {
                let row = p.baseAddress! + r * d
                for c in 0..<d {
                    let v = row[c] - mean[c]
                    row[c] = v
                    total += v * v
                }
            }
        }
        return total
    }

    static func check(_ x: [Double], rows n: Int, cols d: Int) throws {
        let (count, overflow) = n.multipliedReportingOverflow(by: d)
        guard n > 0, d > 0, !overflow, x.count == count else {
            throw PCAError.badShape(rows: n, columns: d, values: x.count)
        }
        guard x.allSatisfy({ $0.isFinite }) else { throw PCAError.nonFinite }
    }

    static func canonicalSign(_ v: inout [Double]) {
        var best = 0, mag = -1.0
        for (i, x) in v.enumerated() where abs(x) > mag { best = i; mag = abs(x) }
        if v[best] < 0 { for i in v.indices { v[i] = -v[i] } }
    }

    static func normalize(_ v: inout [Double]) -> Double {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for i in v.indices { v[i] /= norm } }
        return norm
    }

    /// Fast path: LAPACK on the smaller symmetric matrix.
    static func firstComponent(_ input: [Double], rows n: Int, cols d: Int) throws -> PrincipalComponent {
        try check(input, rows: n, cols: d)
        var x = input
        let total = center(&x, rows: n, cols: d)
        guard total > 0 else { throw PCAError.noVariance }
        let m = min(n, d)
        var a = [Double](repeating: 0, count: m * m)
        x.withUnsafeBufferPointer { xp in
            a.withUnsafeMutableBufferPointer { ap in
                if n <= d {
                    // Gram: X Xᵀ (n × n).
                    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(n), Int32(d), 1,
                                xp.baseAddress, Int32(d), 0, ap.baseAddress, Int32(n))
                } else {
                    // Scatter: Xᵀ X (d × d).
                    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(n), 1,
                                xp.baseAddress, Int32(d), 0, ap.baseAddress, Int32(d))
                }
            }
        }
        let (lambda, u) = try topEigen(&a, n: m)
        var v: [Double]
        if n <= d {
            // v = Xᵀ u, normalized.
            v = [Double](repeating: 0, count: d)
            x.withUnsafeBufferPointer { xp in
                u.withUnsafeBufferPointer { up in
                    v.withUnsafeMutableBufferPointer { vp in
                        cblas_dgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(d), 1, xp.baseAddress, Int32(d),
                                    up.baseAddress, 1, 0, vp.baseAddress, 1)
                    }
                }
            }
            guard normalize(&v) > 0 else { throw PCAError.noVariance }
        } else {
            v = u
            _ = normalize(&v)
        }
        canonicalSign(&v)
        let denom = Double(max(n - 1, 1))
        return PrincipalComponent(direction: v, variance: max(lambda, 0) / denom, explainedRatio: min(max(lambda / total, 0), 1))
    }

    /// Largest eigenvalue and its unit eigenvector of the symmetric m × m matrix `a`
    /// (upper triangle, row-major; destroyed).
    static func topEigen(_ a: inout [Double], n m: Int) throws -> (Double, [Double]) {
        var found: Int32 = 0
        var w = [Double](repeating: 0, count: m)
        var z = [Double](repeating: 0, count: m)
        var support = [Int32](repeating: 0, count: 2)
        let info = a.withUnsafeMutableBufferPointer { ap in
            LAPACKE_dsyevr(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "I")), CChar(UInt8(ascii: "U")),
                           Int32(m), ap.baseAddress, Int32(m), 0, 0, Int32(m), Int32(m), 0,
                           &found, &w, &z, 1, &support)
        }
        guard info == 0, found == 1 else { throw PCAError.lapack(routine: "dsyevr", info: Int(info)) }
        return (w[0], z)
    }

    /// Reference path: the same component from a cyclic Jacobi eigen-decomposition of the
    /// smaller matrix, in plain Swift (slow; for tests).
    static func firstComponentReference(_ input: [Double], rows n: Int, cols d: Int) throws -> PrincipalComponent {
        try check(input, rows: n, cols: d)
        var x = input
        let total = center(&x, rows: n, cols: d)
        guard total > 0 else { throw PCAError.noVariance }
        let m = min(n, d)
        var a = [Double](repeating: 0, count: m * m)
        for i in 0..<m {
            for j in i..<m {
                var s = 0.0
                if n <= d {
                    for k in 0..<d { s += x[i * d + k] * x[j * d + k] }
                } else {
                    for k in 0..<n { s += x[k * d + i] * x[k * d + j] }
                }
                a[i * m + j] = s
                a[j * m + i] = s
            }
        }
        let (lambda, u) = jacobiTop(a, n: m)
        var v: [Double]
        if n <= d {
            v = (0..<d).map { k in (0..<n).reduce(0.0) { $0 + x[$1 * d + k] * u[$1] } }
        } else {
            v = u
        }
        guard normalize(&v) > 0 else { throw PCAError.noVariance }
        canonicalSign(&v)
        return PrincipalComponent(direction: v, variance: max(lambda, 0) / Double(max(n - 1, 1)),
                                  explainedRatio: min(max(lambda / total, 0), 1))
    }

    /// Cyclic Jacobi rotations until the off-diagonal is negligible; returns the top eigenpair.
    static func jacobiTop(_ input: [Double], n: Int) -> (Double, [Double]) {
        var a = input
        var vecs = [Double](repeating: 0, count: n * n)
        for i in 0..<n { vecs[i * n + i] = 1 }
        let scale = max(a.reduce(0) { $0 + $1 * $1 }.squareRoot(), .leastNormalMagnitude)
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { off += a[i * n + j] * a[i * n + j] } }
            if off.squareRoot() <= 1e-15 * scale { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) {
                    let apq = a[p * n + q]
                    if abs(apq) <= 1e-300 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = vecs[k * n + p], vkq = vecs[k * n + q]
                        vecs[k * n + p] = c * vkp - s * vkq
                        vecs[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        var best = 0
        for i in 1..<max(n, 1) where a[i * n + i] > a[best * n + best] { best = i }
        return (a[best * n + best], (0..<n).map { vecs[$0 * n + best] })
    }
}

/// The first principal component of the rows of `values` (rows × columns, row-major), after
/// centering each column (as scikit-learn's `PCA(n_components=1)`), computed exactly in double
/// precision. Throws `PCAError`.
public func firstPrincipalComponent(_ values: [Double], rows: Int, columns: Int) throws -> PrincipalComponent {
    try PCA.firstComponent(values, rows: rows, cols: columns)
}
