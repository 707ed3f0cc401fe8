// swift-tools-version:6.2
import PackageDescription

/// One settings array for every target (STYLE.md §0).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

let package = Package(
    name: "fleetgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fleetgate", targets: ["fleetgate"]),
        .executable(name: "fleet-agent", targets: ["fleet-agent"]),
        .library(name: "FleetHTTP2", targets: ["FleetHTTP2"]),
        .library(name: "FleetProtocol", targets: ["FleetProtocol"]),
        .library(name: "FleetScheduler", targets: ["FleetScheduler"]),
        .library(name: "FleetGeo", targets: ["FleetGeo"]),
        .library(name: "FleetGate", targets: ["FleetGate"]),
        .library(name: "FleetAgent", targets: ["FleetAgent"]),
        .library(name: "FleetTesting", targets: ["FleetTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Already in the graph through swift-nio; the simulator uses its Heap.
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // #20: the fleet CA and vehicle certificates (X.509 with SAN URIs); swift-asn1 comes with it.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // Traits: CommandLineArguments only. The YAML file is read by our own Yams pass (FleetConfiguration's
        // ConfigFile), which keeps marks for file:line:column errors and rejects unknown keys, so the YAML
        // trait (Yams 5.4.0..<7.0.0, compatible with our 6.2.2) would only parse the file a second time.
        // Reloading is not enabled: reloads are explicit (SIGHUP, POST /admin/reload), synchronous, and
        // check the whole file before anything swaps.
        .package(
            url: "https://github.com/apple/swift-configuration.git", from: "1.4.0",
            traits: ["CommandLineArguments"]),
    ],
    targets: [
        // libnghttp2 (Debian libnghttp2-dev). Only FleetHTTP2 imports it.
        .systemLibrary(
            name: "CNGHTTP2",
            path: "Sources/CNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        // Configuration plumbing shared by the gateway and the agent: key schemas, the provider
        // stack (CLI > env > file > defaults), the YAML check with file:line:column, secrets; and the
        // programs' signals (a second SIGTERM or SIGINT stops at once).
        .target(
            name: "FleetConfiguration",
            dependencies: [
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),  // FileStamp's digest
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetHTTP2",
            dependencies: nio + [
                "CNGHTTP2", "FleetConfiguration",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP/1.1 client the agent's runtime path and the gateway's central path share (issue #19):
        // a connection pool per event loop, NIO's codec and one handler, no per-body-part futures.
        .target(
            name: "FleetHTTP1Client",
            dependencies: nio + [
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // glibc's <malloc.h> (`mallinfo2`, `malloc_trim`). Only FleetGate's HeapTrim imports it.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        // libmaxminddb (Debian libmaxminddb-dev). Only FleetGeo imports it.
        .systemLibrary(
            name: "CMaxMindDB",
            path: "Sources/CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        .target(
            name: "FleetGeo",
            dependencies: [
                "FleetProtocol", "FleetConfiguration", "CMaxMindDB", .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetScheduler",
            dependencies: ["FleetProtocol"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetGate",
            dependencies: nio + [
                "FleetHTTP1Client",
                "FleetHTTP2", "FleetProtocol", "FleetGeo", "FleetScheduler", "FleetConfiguration", "CMalloc",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetAgent",
            dependencies: nio + [
                "FleetHTTP1Client",
                "FleetHTTP2", "FleetProtocol", "FleetConfiguration",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetTesting",
            dependencies: nio + [
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                "FleetHTTP2", "FleetProtocol", "FleetGate", "FleetAgent", "FleetScheduler",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleetgate",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "FleetGate", "FleetScheduler", "FleetAgent", "FleetProtocol", "FleetGeo", "FleetConfiguration",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleet-agent",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "FleetAgent", "FleetProtocol", "FleetHTTP2", "FleetConfiguration",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Load tests: built with the package (cheap), run as release builds by LoadTests/*.py.
        .executableTarget(
            name: "fleet-h2bench",
            dependencies: nio + ["FleetHTTP2", "FleetTesting"],
            path: "LoadTests/Sources/fleet-h2bench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleet-geobench",
            dependencies: ["FleetGeo", "FleetScheduler", "FleetProtocol"],
            path: "LoadTests/Sources/fleet-geobench",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FleetSimulation",
            dependencies: [
                "FleetScheduler", "FleetProtocol", .product(name: "HeapModule", package: "swift-collections"),
            ],
            path: "LoadTests/Sources/FleetSimulation",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleet-sim",
            dependencies: [
                "FleetSimulation", "FleetScheduler", "FleetProtocol",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "LoadTests/Sources/fleet-sim",
            swiftSettings: swiftSettings
        ),
        // The live harness (issue #15): scenarios, a fleet of in-process agents on real tunnels,
        // open-loop clients, invariants from the cars' job records, the JSON summary and HTML report.
        .target(
            name: "FleetLoadKit",
            dependencies: nio + [
                "FleetHTTP2", "FleetProtocol", "FleetAgent", "FleetGate", "FleetGeo", "FleetTesting",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "LoadTests/Sources/FleetLoadKit",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleet-load",
            dependencies: nio + [
                "FleetHTTP2", "FleetLoadKit",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "LoadTests/Sources/fleet-load",
            swiftSettings: swiftSettings
        ),
        // Fuzzing (issue #20, LoadTests/fuzz/README.md): the entry functions every fuzz target calls,
        // in the package so they reach `package` API; the unit suite replays the committed corpora
        // through them.
        .target(
            name: "FleetFuzzEntries",
            dependencies: [
                "FleetGate", "FleetProtocol", "FleetGeo", "FleetHTTP2", "FleetConfiguration",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "LoadTests/fuzz/Sources/FleetFuzzEntries",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetFuzzTests",
            dependencies: ["FleetFuzzEntries"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetLoadTests",
            dependencies: [
                "FleetLoadKit", "FleetProtocol", "FleetTesting", "FleetHTTP2",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetHTTP2Tests",
            dependencies: nio + [
                "FleetHTTP2", "FleetTesting",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            exclude: ["Clients"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetGateTests",
            dependencies: [
                "FleetGate", "FleetProtocol", "FleetGeo", "FleetHTTP1Client", "FleetTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetHTTP1ClientTests",
            dependencies: nio + [
                "FleetHTTP1Client", .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetAgentTests",
            dependencies: ["FleetAgent", "FleetProtocol", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetProtocolTests",
            dependencies: ["FleetProtocol", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetSchedulerTests",
            dependencies: ["FleetScheduler", "FleetProtocol", "FleetSimulation"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetConfigurationTests",
            dependencies: [
                "FleetConfiguration", "FleetGate", "FleetAgent", "FleetHTTP2", "FleetProtocol",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetGeoTests",
            dependencies: ["FleetGeo"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: nio + [
                "FleetTesting", "FleetGate", "FleetAgent", "FleetHTTP2", "FleetProtocol", "FleetScheduler",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer executables, one per target, only when FLEETGATE_FUZZ=1 (LoadTests/fuzz/run.sh sets it and builds
// with `-sanitize=fuzzer,address -parse-as-library` into `.build-fuzz`): they call libFuzzer's driver, which
// only a `-sanitize=fuzzer` link provides, so the normal build never sees them (LoadTests/fuzz/README.md).
if Context.environment["FLEETGATE_FUZZ"] == "1" {
    package.targets.append(
        .target(name: "FleetFuzzDriver", path: "LoadTests/fuzz/Sources/FleetFuzzDriver", swiftSettings: swiftSettings))
    for name in ["request", "sse", "status", "regions", "proxy", "origin"] {
        package.targets.append(
            .executableTarget(
                name: "fuzz-\(name)",
                dependencies: ["FleetFuzzEntries", "FleetFuzzDriver"],
                path: "LoadTests/fuzz/Sources/fuzz-\(name)",
                swiftSettings: swiftSettings,
                // gold aborts on the sanitizer runtime (`internal error in format_file_lineno`); lld links
                // it. A link-only setting, so the modules compile with exactly run.sh's flags.
                linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
            ))
        package.products.append(.executable(name: "fuzz-\(name)", targets: ["fuzz-\(name)"]))
    }
}
