import Consumers
import Foundation
import Postgres
import WarrenCore

/// `users.projection`: keeps the `users` table in step with `user.created`, `user.updated`
/// and `user.deleted`. Out-of-order safe: every column keeps the value of the newest event
/// that set it (per-column event times), and a deletion stands against older events.
///
/// A batch costs a couple of statements, not one per event: the events go to PostgreSQL as
/// arrays and `unnest` into one multi-row upsert (and one for deletions). One statement
/// cannot touch a row twice (`ON CONFLICT` refuses), so a batch naming a user more than
/// once is applied in rounds — the first event of every user, then the second, … — which
/// gives each row exactly the sequence of per-event upserts it would get one by one.
public struct UsersProjection: ConsumerModule {
    public let name = "users.projection"

    public init() {}

    public func apply(_ events: [CloudEvent], on connection: PostgresConnection) async throws -> [Int: HandlerFailure] {
        var failures: [Int: HandlerFailure] = [:]
        var rounds: [Round] = []
        var occurrences: [String: Int] = [:]
        for (index, event) in events.enumerated() {
            guard let id = event.data?["id"]?.stringValue else {
                failures[index] = .permanent("user.invalid", "data.id is missing")
                continue
            }
            guard ["user.created", "user.updated", "user.deleted"].contains(event.type) else {
                failures[index] = .permanent("event.unhandled", "users.projection does not handle \(event.type)")
                continue
            }
            let round = occurrences[id, default: 0]
            occurrences[id] = round + 1
            if round == rounds.count { rounds.append(Round()) }
            rounds[round].add(event, id: id)
        }
        for round in rounds {
            try await round.apply(on: connection)
        }
        return failures
    }

    /// Events for distinct users, as the columns of the two statements.
    private struct Round {
        var ids: [String] = [], names: [String?] = [], emails: [String?] = []
        var created: [Int64?] = [], times: [Int64] = []
        var deletedIDs: [String] = [], deletedTimes: [Int64] = []

        mutating func add(_ event: CloudEvent, id: String) {
            let time = Self.microseconds(event.time ?? Date())
            if event.type == "user.deleted" {
                deletedIDs.append(id)
                deletedTimes.append(time)
            } else {
                ids.append(id)
                names.append(event.data?["name"]?.stringValue)
                emails.append(event.data?["email"]?.stringValue)
                created.append(event.type == "user.created" ? time : nil)
                times.append(time)
            }
        }

        func apply(on connection: PostgresConnection) async throws {
            if !ids.isEmpty {
                try await connection.execute(Self.upsert, [
                    PostgresValue(PostgresArrayLiteral.text(ids)), PostgresValue(PostgresArrayLiteral.text(names)), PostgresValue(PostgresArrayLiteral.text(emails)),
                    PostgresValue(PostgresArrayLiteral.bigint(created)), PostgresValue(PostgresArrayLiteral.bigint(times)),
                ])
            }
            if !deletedIDs.isEmpty {
                try await connection.execute(Self.delete, [PostgresValue(PostgresArrayLiteral.text(deletedIDs)), PostgresValue(PostgresArrayLiteral.bigint(deletedTimes))])
            }
        }

        /// The per-event statement, with the events' columns unnested from arrays.
        static let upsert = """
            INSERT INTO users AS u (id, name, email, created_at, updated_at, last_event_time, name_event_time, email_event_time)
            SELECT e.id, e.name, e.email, \(timestamp("e.created")), \(timestamp("e.time")), \(timestamp("e.time")),
                   CASE WHEN e.name IS NULL THEN NULL ELSE \(timestamp("e.time")) END,
                   CASE WHEN e.email IS NULL THEN NULL ELSE \(timestamp("e.time")) END
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS e(id, name, email, created, time)
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
            """

        static let delete = """
            INSERT INTO users AS u (id, deleted_at, updated_at, last_event_time)
            SELECT e.id, \(timestamp("e.time")), \(timestamp("e.time")), \(timestamp("e.time"))
            FROM unnest($1::text[], $2::bigint[]) AS e(id, time)
            ON CONFLICT (id) DO UPDATE SET
                deleted_at = excluded.deleted_at, updated_at = excluded.updated_at,
                last_event_time = excluded.last_event_time
            WHERE excluded.last_event_time >= u.last_event_time
            """

        /// Times travel as whole microseconds since 2001-01-01 UTC, rounded exactly as a
        /// bound `Date` is (`PostgresTimestamp`), so a batch stores what single events would.
        static func microseconds(_ date: Date) -> Int64 {
            Int64((date.timeIntervalSinceReferenceDate * 1_000_000).rounded())
        }

        /// SQL for the timestamp a microseconds column stands for.
        static func timestamp(_ column: String) -> String {
            "(timestamptz '2001-01-01 00:00:00+00' + \(column) * interval '1 microsecond')"
        }
    }
}
