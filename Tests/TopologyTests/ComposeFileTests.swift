import Foundation
import Testing
import Topology
import Yams

/// `compose/docker-compose.yml` deploys what `topology/topology.yaml` declares: one
/// service per consumer, every Warren service restarted and health-checked, all of them
/// scraped by Prometheus. No Docker engine runs here, so this reads the files as Compose
/// would (merge keys resolved); CI also runs `docker-compose config` (scripts/check-compose).
@Suite struct ComposeFileTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func yaml(_ relative: String) throws -> [String: Any] {
        let text = try String(contentsOfFile: path(relative), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any], "\(relative) is not a YAML mapping")
    }

    static func services() throws -> [ComposeService] {
        let services = try #require(try yaml("compose/docker-compose.yml")["services"] as? [String: Any])
        return try services.keys.sorted().map { name in
            ComposeService(name: name, fields: try #require(services[name] as? [String: Any], "service \(name)"))
        }
    }

    @Test func everyConsumerOfTheTopologyHasExactlyOneService() throws {
        let consumers = try Topology.load(path: Self.path("topology/topology.yaml")).consumers.map(\.name)
        let consuming = try Self.services().filter { $0.arguments.first == "consume" }
        for service in consuming {
            #expect(service.arguments.count == 2, "\(service.name) runs `warren \(service.arguments.joined(separator: " "))`: expected `warren consume NAME`")
        }
        let names = consuming.compactMap { $0.arguments.dropFirst().first }
        #expect(Set(consumers).subtracting(names).isEmpty, "consumers without a compose service: \(Set(consumers).subtracting(names).sorted())")
        #expect(Set(names).subtracting(consumers).isEmpty, "services consuming what the topology does not declare: \(Set(names).subtracting(consumers).sorted())")
        #expect(names.count == Set(names).count, "a consumer with more than one service: \(names.sorted())")
    }

    /// `warren consume` refuses a consumer the topology disables, so its service must not
    /// start with a plain `up` (it would restart forever): it belongs to a profile.
    @Test func aDisabledConsumersServiceStartsOnlyWithAProfile() throws {
        let disabled = try Topology.load(path: Self.path("topology/topology.yaml")).consumers.filter { !$0.enabled }.map(\.name)
        #expect(!disabled.isEmpty, "the shipped topology disables payments.customers")
        for service in try Self.services() where service.arguments.first == "consume" {
            guard let consumer = service.arguments.dropFirst().first, disabled.contains(consumer) else { continue }
            #expect(!((service.fields["profiles"] as? [Any]) ?? []).isEmpty, "\(service.name) consumes disabled \(consumer) but has no profile")
        }
    }

    @Test func warrenServicesAreRestartedHealthCheckedAndStartAfterTheSetup() throws {
        let warren = try Self.services().filter(\.isWarren)
        let oneShots = warren.filter(\.isOneShot)
        #expect(Set(oneShots.map(\.arguments)) == [["migrate"], ["topology", "apply"]])
        for service in oneShots {
            #expect(service.fields["restart"] as? String == "no", "\(service.name) runs once: restart must be \"no\"")
        }
        let longRunning = warren.filter { !$0.isOneShot }
        #expect(longRunning.contains { $0.arguments == ["serve"] })
        #expect(longRunning.contains { $0.arguments == ["outbox", "relay"] })
        for service in longRunning {
            #expect(service.fields["restart"] as? String == "unless-stopped", "\(service.name): restart")
            let port = try #require(service.listenPort, "\(service.name) sets neither WARREN_METRICS_ADDRESS nor WARREN_HTTP_ADDRESS")
            #expect(service.healthcheck == ["CMD", "curl", "-fsS", "http://127.0.0.1:\(port)/readyz"], "\(service.name): healthcheck")
            for setup in oneShots {
                #expect(service.dependencyCondition(on: setup.name) == "service_completed_successfully", "\(service.name) must wait for \(setup.name)")
            }
        }
    }

    @Test func prometheusScrapesEveryWarrenService() throws {
        let scrapeConfigs = try #require(try Self.yaml("compose/prometheus/prometheus.yml")["scrape_configs"] as? [[String: Any]])
        let targets = Set(scrapeConfigs.flatMap { job in
            (job["static_configs"] as? [[String: Any]] ?? []).flatMap { $0["targets"] as? [String] ?? [] }
        })
        let services = try Self.services()
        for service in services where service.isWarren && !service.isOneShot {
            let port = try #require(service.listenPort)
            #expect(targets.contains("\(service.name):\(port)"), "prometheus.yml does not scrape \(service.name):\(port)")
        }
        let names = Set(services.map(\.name))
        for target in targets {
            #expect(names.contains(String(target.prefix { $0 != ":" })), "prometheus.yml scrapes \(target), which is no compose service")
        }
    }

    /// What `docker-compose config` does not check: the files the compose file names and
    /// the variables it reads from `.env`.
    @Test func theFilesAndVariablesTheComposeFileNamesExist() throws {
        let compose = Self.root.appendingPathComponent("compose")
        for service in try Self.services() {
            if let build = service.fields["build"] as? [String: Any] {
                let context = compose.appendingPathComponent(try #require(build["context"] as? String))
                let dockerfile = context.appendingPathComponent(build["dockerfile"] as? String ?? "Dockerfile")
                #expect(FileManager.default.fileExists(atPath: dockerfile.path), "\(service.name): no \(dockerfile.path)")
            }
            for volume in service.fields["volumes"] as? [String] ?? [] where volume.hasPrefix(".") {
                let source = compose.appendingPathComponent(String(volume.prefix { $0 != ":" }))
                #expect(FileManager.default.fileExists(atPath: source.path), "\(service.name) mounts \(source.path), which does not exist")
            }
        }
        let text = try String(contentsOfFile: Self.path("compose/docker-compose.yml"), encoding: .utf8)
        let used = Set(text.matches(of: /\$\{([A-Z_][A-Z0-9_]*)/).map { String($0.output.1) })
        let example = try String(contentsOfFile: Self.path("compose/.env.example"), encoding: .utf8)
        let defined = Set(example.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            line.firstIndex(of: "=").map { String(line[..<$0]) }
        })
        #expect(used.subtracting(defined).isEmpty, ".env.example lacks \(used.subtracting(defined).sorted())")
    }
}

/// One service of the compose file, as the tests above look at it.
struct ComposeService {
    let name: String
    let fields: [String: Any]

    /// Built from compose/Dockerfile: a Warren command.
    var isWarren: Bool { (fields["build"] as? [String: Any])?["dockerfile"] as? String == "compose/Dockerfile" }

    /// `warren`'s arguments (the image's entrypoint is `warren`).
    var arguments: [String] {
        let command = fields["command"] as? [String] ?? (fields["command"] as? String)?.split(separator: " ").map(String.init) ?? []
        return command.first == "warren" ? Array(command.dropFirst()) : command
    }

    var isOneShot: Bool { arguments == ["migrate"] || arguments == ["topology", "apply"] }

    var environment: [String: String] {
        (fields["environment"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
    }

    /// The port of /metrics, /healthz and /readyz: the metrics address, else the HTTP one.
    var listenPort: String? {
        guard let address = environment["WARREN_METRICS_ADDRESS"] ?? environment["WARREN_HTTP_ADDRESS"] else { return nil }
        return address.split(separator: ":").last.map(String.init)
    }

    var healthcheck: [String]? { (fields["healthcheck"] as? [String: Any])?["test"] as? [String] }

    func dependencyCondition(on service: String) -> String? {
        ((fields["depends_on"] as? [String: Any])?[service] as? [String: Any])?["condition"] as? String
    }
}
