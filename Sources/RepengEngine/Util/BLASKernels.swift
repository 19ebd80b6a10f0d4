// Choosing OpenBLAS's kernel set: OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons
// (e.g. Sapphire/Emerald Rapids) and falls back to its SSE3 "Prescott" kernels, about 4× slower
// in sgemm. OPENBLAS_CORETYPE is only read when the library loads, so executables re-run
// themselves once with it set.
import CBLAS
import Foundation

extension BLAS {
    /// The kernel set OpenBLAS is using (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The OpenBLAS core type this CPU supports best, from /proc/cpuinfo flags: "SkylakeX" with
    /// AVX-512 F/BW/DQ/VL, "Haswell" with AVX2 and FMA, nil otherwise.
    public static func preferredCoreType(cpuinfo: String? = nil) -> String? {
        guard let info = cpuinfo ?? (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// True when OpenBLAS runs a generic kernel set although the CPU supports a faster one and
    /// the user did not choose one with OPENBLAS_CORETYPE.
    public static var usesGenericKernels: Bool {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              preferredCoreType() != nil else { return false }
        let generic: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai", "Coppermine", "Northwood", "Banias", "Atom"]
        return generic.contains(coreName)
    }

    /// Call first thing in `main`: when `usesGenericKernels`, sets OPENBLAS_CORETYPE to the
    /// preferred core type and re-executes the program with the same arguments (once). Returns
    /// normally when nothing needs doing or the re-exec fails.
    public static func reexecWithFasterKernelsIfNeeded() {
        guard usesGenericKernels, let core = preferredCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", cargs)
        // execv only returns on failure: keep running with the generic kernels.
        for p in cargs { free(p) }
    }
}
