import AMQP
import Postgres
import Locking

/// What `GET /readyz` asks: named checks that each answer nil (fine) or the problem, in
/// words an operator can act on. Every check is bounded by `timeout`, so a database that
/// does not answer makes the probe fail rather than hang.
public struct Readiness: Sendable {
    public struct Check: Sendable {
        public var name: String
        public var problem: @Sendable () async -> String?

        public init(_ name: String, problem: @escaping @Sendable () async -> String?) {
            self.name = name
            self.problem = problem
        }
    }

    public var checks: [Check]
    public var timeout: Duration

    public init(_ checks: [Check] = [], timeout: Duration = .seconds(2)) {
        self.checks = checks
        self.timeout = timeout
    }

    /// The problems by check name; empty when ready. The checks run concurrently.
    public func problems() async -> [String: String] {
        await withTaskGroup(of: (String, String?).self) { group in
            for check in checks {
                let timeout = self.timeout
                group.addTask { (check.name, await Self.bounded(timeout, check.problem)) }
            }
            var problems: [String: String] = [:]
            for await (name, problem) in group { if let problem { problems[name] = problem } }
            return problems
        }
    }

    /// The check's answer, or a timeout problem when it takes longer than `timeout`. The
    /// check is left to finish on its own: a blocked call must not hold the probe.
    static func bounded(_ timeout: Duration, _ check: @escaping @Sendable () async -> String?) async -> String? {
        let once = Mutex<CheckedContinuation<String?, Never>?>(nil)
        return await withCheckedContinuation { continuation in
            once.withLock { $0 = continuation }
            let finish: @Sendable (String?) -> Void = { answer in once.withLock { $0.take() }?.resume(returning: answer) }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                finish("no answer within \(timeout)")
            }
            Task {
                finish(await check())
                timer.cancel()
            }
        }
    }
}

extension Readiness.Check {
    /// Connected and not blocked by a resource alarm.
    public static func broker(_ amqp: AMQPConnection) -> Self {
        Self("broker") { brokerProblem(amqp.state) }
    }

    /// Why publishing cannot succeed now, or nil.
    public static func brokerProblem(_ state: AMQPConnectionState) -> String? {
        switch state {
        case .connected: nil
        case .blocked(let reason): "the broker blocks publishing (\(reason))"
        case .connecting, .reconnecting: "not connected to the broker"
        case .closed: "the broker connection is closed"
        }
    }

    /// A `SELECT 1` through the pool.
    public static func database(_ pool: PostgresPool) -> Self {
        Self("database") {
            do {
                _ = try await pool.withConnection { try await $0.query("SELECT 1") }
                return nil
            } catch {
                return "not reachable"
            }
        }
    }
}
