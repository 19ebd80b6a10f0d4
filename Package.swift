// swift-tools-version:6.1
import PackageDescription

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
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "RepengSteering",
            dependencies: ["RepengEngine", "CBLAS"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
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
