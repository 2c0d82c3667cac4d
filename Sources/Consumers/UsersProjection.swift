import Foundation
import Postgres
import WarrenCore

/// `users.projection`: keeps the `users` table in step with `user.created`, `user.updated`
/// and `user.deleted`. Out-of-order safe: every column keeps the value of the newest event
/// that set it (per-column event times), and a deletion stands against older events.
public struct UsersProjection: ConsumerModule {
    public let name = "users.projection"

    public init() {}

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        var failures: [Int: HandlerFailure] = [:]
        for (index, event) in events.enumerated() {
            guard let id = event.data?["id"]?.stringValue else {
                failures[index] = .permanent("user.invalid", "data.id is missing")
                continue
            }
            let time = event.time ?? Date()
            let name = event.data?["name"]?.stringValue
            let email = event.data?["email"]?.stringValue
            switch event.type {
            case "user.created", "user.updated":
                let created: Date? = event.type == "user.created" ? time : nil
                try await connection.execute("""
                    INSERT INTO users AS u (id, name, email, created_at, updated_at, last_event_time, name_event_time, email_event_time)
                    VALUES (\(id), \(name), \(email), \(created), \(time), \(time),
                            CASE WHEN \(name)::text IS NULL THEN NULL ELSE \(time)::timestamptz END,
                            CASE WHEN \(email)::text IS NULL THEN NULL ELSE \(time)::timestamptz END)
                    ON CONFLICT (id) DO UPDATE SET
                        name = CASE WHEN excluded.name_event_time >= coalesce(u.name_event_time, '-infinity')
                                    THEN excluded.name ELSE u.name END,
                        name_event_time = greatest(u.name_event_time, excluded.name_event_time),
                        email = CASE WHEN excluded.email_event_time >= coalesce(u.email_event_time, '-infinity')
                                     THEN excluded.email ELSE u.email END,
                        email_event_time = greatest(u.email_event_time, excluded.email_event_time),
                        created_at = coalesce(u.created_at, excluded.created_at),
                        updated_at = greatest(u.updated_at, excluded.updated_at),
                        last_event_time = greatest(u.last_event_time, excluded.last_event_time)
                    """)
            case "user.deleted":
                try await connection.execute("""
                    INSERT INTO users AS u (id, deleted_at, updated_at, last_event_time)
                    VALUES (\(id), \(time), \(time), \(time))
                    ON CONFLICT (id) DO UPDATE SET
                        deleted_at = excluded.deleted_at, updated_at = excluded.updated_at,
                        last_event_time = excluded.last_event_time
                    WHERE excluded.last_event_time >= u.last_event_time
                    """)
            default:
                failures[index] = .permanent("event.unhandled", "users.projection does not handle \(event.type)")
            }
        }
        return failures
    }
}
