import Foundation
import Postgres

/// The `warren_dlq_audit` record of one replay or purge (migration 0004): started before
/// the first message moves, each message id appended before that message is acked, and
/// `finished_at` set at the end, so an interrupted run shows how far it got.
public struct DeadLetterAudit: Sendable {
    public let id: Int64
    let database: PostgresPool

    public static func start(
        action: String, actor: String, queue: String, selector: DeadLetterSelector, destination: String?, database: PostgresPool
    ) async throws -> DeadLetterAudit {
        let selectors = try PostgresValue.json(selector)
        let id = try await database.withConnection { connection in
            try await connection.query("""
                INSERT INTO warren_dlq_audit (action, actor, queue, selectors, destination)
                VALUES (\(action), \(actor), \(queue), \(selectors)::jsonb, \(destination)) RETURNING id
                """).first!.decode(Int64.self, at: 0)
        }
        return DeadLetterAudit(id: id, database: database)
    }

    public func append(_ messageID: String) async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("UPDATE warren_dlq_audit SET message_ids = array_append(message_ids, \(messageID)) WHERE id = \(id)")
        }
    }

    public func finish() async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("UPDATE warren_dlq_audit SET finished_at = now() WHERE id = \(id)")
        }
    }
}
