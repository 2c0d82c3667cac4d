// swift-tools-version: 6.1
import PackageDescription

// One set of settings for every target, as Hummingbird does: Swift 6 mode everywhere.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "warren",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "warren", targets: ["warren"]),
        .executable(name: "warren-bench", targets: ["warren-bench"]),
        .library(name: "AMQP", targets: ["AMQP"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "Redis", targets: ["Redis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // OTLP/HTTP only: the gRPC exporter (and grpc-swift) stays out of the build.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "AMQP",
            dependencies: [
                "Locking",
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The OS thread each C client's connection runs its blocking calls on.
        .target(name: "Blocking", dependencies: ["Locking"], swiftSettings: swiftSettings),
        // `Mutex` for every module: Synchronization's, or a TSan-visible one (see the end).
        .target(name: "Locking", swiftSettings: swiftSettings),
        .target(
            name: "Postgres",
            dependencies: [
                "Locking",
                "CLibPQ",
                "Blocking",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // hiredis wrapped: connections on their own threads, a pool with fail-fast outages, pub/sub.
        .target(
            name: "Redis",
            dependencies: [
                "Locking",
                "CHiredis",
                "Blocking",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every Warren process shares through Redis: token buckets, replay claims, caches.
        .target(
            name: "SharedState",
            dependencies: [
                "Locking",
                "Redis",
                "WarrenCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Events, JSON, the catalog, its schemas, retry policy, rate limiter, trace context
        // (spans through the swift-distributed-tracing API only): no transport.
        .target(
            name: "WarrenCore", dependencies: ["Locking", .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: swiftSettings),
        // CloudEvent <-> AMQP mapping and the confirming publisher.
        .target(name: "Messaging", dependencies: ["AMQP", "WarrenCore"], swiftSettings: swiftSettings),
        .target(
            name: "Topology",
            dependencies: [
                "AMQP",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Adapters",
            dependencies: [
                "WarrenCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The consumer runtime: batches, inbox, retry and dead-letter decisions.
        .target(
            name: "Consumers",
            dependencies: [
                "Locking",
                "AMQP",
                "Postgres",
                "WarrenCore",
                "Messaging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The business modules the runtime calls: users, payments, email, customers.
        .target(
            name: "Handlers",
            dependencies: [
                "Consumers",
                "Postgres",
                "WarrenCore",
                "Adapters",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Operations",
            dependencies: [
                "AMQP",
                "Postgres",
                "WarrenCore",
                "Messaging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Outbound webhooks: subscriptions, fan-out, the SSRF guard, signed delivery with retries.
        .target(
            name: "Webhooks",
            dependencies: [
                "Locking",
                "Postgres",
                "SharedState",
                "WarrenCore",
                "Consumers",
                "Operations",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Metrics (Prometheus), /metrics, /healthz, /readyz and their small server.
        .target(
            name: "Observability",
            dependencies: [
                "Locking",
                "AMQP",
                "Postgres",
                "WarrenCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP front door (`warren serve`): publish API with keys, signed webhooks in.
        .target(
            name: "HTTPAPI",
            dependencies: [
                "Locking",
                "AMQP",
                "Postgres",
                "SharedState",
                "WarrenCore",
                "Messaging",
                "Webhooks",
                "Observability",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Assembles the ServiceGroup of each long-running command.
        .target(
            name: "App",
            dependencies: [
                "AMQP",
                "Postgres",
                "SharedState",
                "WarrenCore",
                "Topology",
                "Adapters",
                "Consumers",
                "Handlers",
                "Operations",
                "HTTPAPI",
                "Webhooks",
                "Observability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "warren",
            dependencies: [
                "Locking",
                "App",
                "SharedState",
                "AMQP",
                "Postgres",
                "WarrenCore",
                "Messaging",
                "Topology",
                "Operations",
                "HTTPAPI",
                "Webhooks",
                "Observability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Swift half of Benchmarks/run: the same work as the C programs beside it.
        .executableTarget(
            name: "warren-bench",
            dependencies: [
                "Locking",
                "AMQP",
                "Postgres",
                "WarrenCore",
                "Consumers",
                "Handlers",
                "Observability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP", "CRabbitMQ", "Locking"], swiftSettings: swiftSettings),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "SharedState", "WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"], swiftSettings: swiftSettings),
        .testTarget(name: "BlockingTests", dependencies: ["Blocking"], swiftSettings: swiftSettings),
        // What scripts/fuzz feeds with generated input, and its driver (`warren-fuzz`).
        .target(name: "FuzzTargets", dependencies: ["AMQP", "Messaging", "Topology", "WarrenCore"], swiftSettings: swiftSettings),
        .executableTarget(name: "warren-fuzz", dependencies: ["FuzzTargets", "WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "WarrenCoreTests", dependencies: ["WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets", "AMQP", "WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "MessagingTests", dependencies: ["Messaging", "AMQP", "WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "TopologyTests", dependencies: ["Topology", .product(name: "Yams", package: "Yams")], swiftSettings: swiftSettings),
        .testTarget(name: "ConsumersTests", dependencies: ["Consumers", "AMQP", "Postgres", "WarrenCore"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPAPITests", dependencies: ["HTTPAPI", "WarrenCore", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(name: "WebhooksTests", dependencies: ["Webhooks", "WarrenCore", "HTTPAPI"], swiftSettings: swiftSettings),
        .testTarget(name: "OperationsTests", dependencies: ["Operations", "AMQP", "WarrenCore"], swiftSettings: swiftSettings),
        // SendGrid and Stripe as real HTTP servers on loopback that enforce each provider's
        // documented contract: shared by the adapter unit tests and the integration tests.
        .target(
            name: "ProviderFakes",
            dependencies: [
                "Locking",
                "Adapters",
                "WarrenCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ProviderFakes",
            swiftSettings: swiftSettings
        ),
        // The provider adapters against those fakes: no broker or database needed.
        .testTarget(
            name: "AdaptersTests",
            dependencies: [
                "Adapters", "ProviderFakes", "WarrenCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Locking",
                "App", "AMQP", "Postgres", "WarrenCore", "Messaging", "Topology", "Consumers", "Handlers", "Adapters", "Operations", "Webhooks",
                "Redis", "SharedState", "CRabbitMQ", "ProviderFakes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// `WARREN_SANITIZE=thread` or `=address` (scripts/sanitize): Warren's own targets are
// compiled and linked with that sanitizer; the dependencies are left as they are
// (swift-otel does not compile with `swift build --sanitize=thread`, which covers all).
if let sanitizer = Context.environment["WARREN_SANITIZE"], !sanitizer.isEmpty {
    for target in package.targets where target.type != .system {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-sanitize=\(sanitizer)"])]
        target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-sanitize=\(sanitizer)"])]
    }
    if sanitizer == "thread", let locking = package.targets.first(where: { $0.name == "Locking" }) {
        locking.swiftSettings = (locking.swiftSettings ?? []) + [.define("WARREN_TSAN")]
    }
}

