// swift-tools-version:6.1
import PackageDescription

// Release builds: only the hot kernels (RepengKernels: pointer arithmetic over buffers whose
// sizes the engine checked) drop overflow and bounds traps. Everything that reads files or
// requests — GGUF, tokenizers, vector files, datasets, the daemon — keeps them.
// Nothing is compiled for one CPU: the binaries run on any x86-64. The multiply-accumulate
// kernels are C (CKernelSupport/dispatch.c), built for a portable baseline, AVX2+FMA and
// AVX-512F, and chosen at run time.
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let engineFlags: [SwiftSetting] = []

let package = Package(
    name: "repengd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RepengEngine", targets: ["RepengEngine"]),
        .library(name: "RepengSteering", targets: ["RepengSteering"]),
        .library(name: "RepengProtocol", targets: ["RepengProtocol"]),
        .library(name: "RepengDaemon", targets: ["RepengDaemon"]),
        .executable(name: "repeng-bench", targets: ["RepengBench"]),
        .executable(name: "repeng-demo", targets: ["RepengDemo"]),
        .executable(name: "repengd", targets: ["repengd"]),
        .executable(name: "repengctl", targets: ["repengctl"]),
        .executable(name: "repeng-load", targets: ["RepengLoad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // Optimized in every configuration: debug test runs use these kernels too.
        .target(name: "CKernelSupport", path: "Sources/CKernelSupport", cSettings: [.unsafeFlags(["-O3", "-Wno-psabi"])]),
        .target(
            name: "RepengKernels",
            dependencies: ["CKernelSupport"],
            swiftSettings: kernelFlags
        ),
        .target(
            name: "RepengEngine",
            dependencies: ["CBLAS", "CKernelSupport", "RepengKernels"],
            swiftSettings: engineFlags
        ),
        .target(
            name: "RepengSteering",
            dependencies: ["RepengEngine", "CBLAS"],
            swiftSettings: engineFlags
        ),
        .executableTarget(
            name: "RepengBench",
            dependencies: ["RepengEngine", "RepengKernels", "RepengSteering"],
            path: "Sources/RepengBench"
        ),
        .executableTarget(
            name: "RepengDemo",
            dependencies: ["RepengEngine", "RepengSteering"],
            path: "Sources/RepengDemo"
        ),
        .target(
            name: "RepengProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "RepengDaemon",
            dependencies: [
                "RepengEngine", "RepengSteering", "RepengProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "repengd",
            dependencies: [
                "RepengDaemon", "RepengEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "repengctl",
            dependencies: [
                "RepengProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "RepengLoad",
            dependencies: [
                "RepengProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/RepengLoad"
        ),
        .testTarget(
            name: "RepengDaemonTests",
            dependencies: ["RepengDaemon", "RepengProtocol", "RepengSteering", "RepengEngine", "repengctl"]
        ),
        .testTarget(
            name: "RepengEngineTests",
            dependencies: ["RepengEngine", "RepengKernels"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "RepengSteeringTests",
            dependencies: ["RepengSteering"],
            exclude: ["Fixtures"]
        ),
    ]
)
