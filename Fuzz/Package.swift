// swift-tools-version:6.1
// libFuzzer targets for the parsers of repengd (see README.md). Build with scripts/fuzz.sh, or:
//   swift build -c debug --package-path Fuzz --scratch-path .build-fuzz \
//       --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
// (scripts/fuzz.sh explains the flags).
import PackageDescription

// A path dependency is named after its folder, so the main package's name is the name of the
// folder holding this one (e.g. "repengd" or "main").
let repo = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "repengd")

func main(_ name: String) -> Target.Dependency { .product(name: name, package: repo) }

let package = Package(
    name: "repengd-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        // Invariants and round trips shared by the two control-vector targets.
        .target(name: "FuzzVectorChecks", dependencies: [main("RepengSteering")]),

        .executableTarget(name: "fuzz-gguf", dependencies: [main("RepengEngine")]),
        .executableTarget(name: "fuzz-safetensors", dependencies: [main("RepengEngine")]),
        .executableTarget(name: "fuzz-tokenizer-json", dependencies: [main("RepengEngine")]),
        .executableTarget(name: "fuzz-chat-template", dependencies: [main("RepengEngine")]),
        .executableTarget(name: "fuzz-vector-gguf", dependencies: ["FuzzVectorChecks", main("RepengSteering")]),
        .executableTarget(name: "fuzz-vector-json", dependencies: ["FuzzVectorChecks", main("RepengSteering")]),
        .executableTarget(name: "fuzz-dataset-json", dependencies: [main("RepengSteering")]),
        .executableTarget(name: "fuzz-sae", dependencies: [main("RepengEngine"), main("RepengSteering")]),
        .executableTarget(name: "fuzz-config-toml", dependencies: [main("RepengDaemon")]),
        .executableTarget(
            name: "fuzz-request",
            dependencies: [
                main("RepengEngine"), main("RepengSteering"), main("RepengProtocol"), main("RepengDaemon"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ]
)
