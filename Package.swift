// swift-tools-version:6.1
import PackageDescription

// Release builds of the numerical targets: no overflow/bounds traps in kernels (inputs are
// validated at the edges) and, on x86-64, AVX2/FMA-class vector code for the SIMD kernels.
#if arch(x86_64)
let engineFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release))]
#else
let engineFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
#endif

let package = Package(
    name: "repengd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RepengEngine", targets: ["RepengEngine"]),
        .library(name: "RepengSteering", targets: ["RepengSteering"]),
        .executable(name: "repeng-bench", targets: ["RepengBench"]),
        .executable(name: "repeng-demo", targets: ["RepengDemo"]),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .target(
            name: "RepengEngine",
            dependencies: ["CBLAS"],
            swiftSettings: engineFlags
        ),
        .target(
            name: "RepengSteering",
            dependencies: ["RepengEngine", "CBLAS"],
            swiftSettings: engineFlags
        ),
        .executableTarget(
            name: "RepengBench",
            dependencies: ["RepengEngine", "RepengSteering"],
            path: "Sources/RepengBench"
        ),
        .executableTarget(
            name: "RepengDemo",
            dependencies: ["RepengEngine", "RepengSteering"],
            path: "Sources/RepengDemo"
        ),
        .testTarget(
            name: "RepengEngineTests",
            dependencies: ["RepengEngine"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "RepengSteeringTests",
            dependencies: ["RepengSteering"],
            exclude: ["Fixtures"]
        ),
    ]
)
