// swift-tools-version:6.1
// libFuzzer targets for the parsers of repengd (see README.md). Build with scripts/fuzz.sh, or:
//   swift build -c debug --package-path Fuzz --scratch-path .build-fuzz \
//       --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
// (scripts/fuzz.sh explains the flags).
import PackageDescription

// A path dependency is named after its folder, so the main package's name is the name of the
// folder holding this one (e.g. "repengd" or "main").
let repo = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "repengd")

func engine(_ name: String) -> Target.Dependency { .product(name: name, package: repo) }

/// `import RepengProtocol` / `import RepengDaemon` resolve to the copies compiled here (below).
let daemonAliases = SwiftSetting.unsafeFlags(["-module-alias", "RepengProtocol=FuzzRepengProtocol"])
let fuzzAliases = SwiftSetting.unsafeFlags([
    "-module-alias", "RepengProtocol=FuzzRepengProtocol", "-module-alias", "RepengDaemon=FuzzRepengDaemon",
])

let package = Package(
    name: "repengd-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        // The daemon-side modules below need the main package's own dependencies.
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // The main package exports no library products for RepengProtocol and RepengDaemon, so
        // they are compiled here from the same sources (Sources/RepengProtocol and
        // Sources/RepengDaemon are symbolic links to ../../Sources/<name>). Target names must be
        // unique in the package graph, so the copies are FuzzRepengProtocol / FuzzRepengDaemon and
        // `-module-alias` lets their sources and the fuzz targets keep writing `import RepengProtocol`
        // / `import RepengDaemon`. Keep their dependencies in step with ../Package.swift.
        .target(
            name: "FuzzRepengProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/RepengProtocol"
        ),
        .target(
            name: "FuzzRepengDaemon",
            dependencies: [
                engine("RepengEngine"), engine("RepengSteering"), "FuzzRepengProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            path: "Sources/RepengDaemon",
            swiftSettings: [daemonAliases]
        ),

        // Invariants and round trips shared by the two control-vector targets.
        .target(name: "FuzzVectorChecks", dependencies: [engine("RepengSteering")]),

        .executableTarget(name: "fuzz-gguf", dependencies: [engine("RepengEngine")]),
        .executableTarget(name: "fuzz-vector-gguf", dependencies: ["FuzzVectorChecks", engine("RepengSteering")]),
        .executableTarget(name: "fuzz-vector-json", dependencies: ["FuzzVectorChecks", engine("RepengSteering")]),
        .executableTarget(name: "fuzz-dataset-json", dependencies: [engine("RepengSteering")]),
        .executableTarget(name: "fuzz-config-toml", dependencies: ["FuzzRepengDaemon"], swiftSettings: [fuzzAliases]),
        .executableTarget(
            name: "fuzz-request",
            dependencies: [
                engine("RepengEngine"), engine("RepengSteering"), "FuzzRepengProtocol", "FuzzRepengDaemon",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [fuzzAliases]
        ),
    ]
)
