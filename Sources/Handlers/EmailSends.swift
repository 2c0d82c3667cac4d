import Postgres

/// One email's row in `email_sends`, the guard that keeps it from going out twice (see
/// `EmailNotifications`). Each method is one statement on a pool connection of its own.
struct EmailSends: Sendable {
    let database: PostgresPool
    let eventID: String
    let kind: EmailNotifications.Kind
    /// The replay count of the delivery at work: it owns the intent it wrote, and its
    /// updates leave alone an intent a later replay took over.
    let replayed: Int64

    enum Claim: Equatable {
        /// The intent is recorded: send now.
        case claimed
        /// An earlier delivery sent it.
        case sent
        /// An earlier attempt may have sent it (`sending`: cut off; `unknown`: no answer)
        /// and this delivery was not replayed since.
        case unresolved(state: String)
        /// A concurrent attempt took its intent back just now: try again later.
        case released
    }

    /// Records the intent to send, unless the email was sent or an earlier attempt left an
    /// intent at this replay count or later. A delivery replayed more often than the intent
    /// takes it over (ops replayed the dead-lettered message to send it again).
    func claim(provider: String, userID: String?) async throws -> Claim {
        try await database.withConnection { connection in
            let claimed = try await connection.query("""
                INSERT INTO email_sends AS s (event_id, kind, provider, user_id, state, replayed, sent_at)
                VALUES (\(eventID), \(kind.rawValue), \(provider), \(userID), 'sending', \(replayed), now())
                ON CONFLICT (event_id, kind) DO UPDATE SET
                    provider = excluded.provider, state = 'sending', replayed = excluded.replayed, sent_at = now()
                WHERE s.state <> 'sent' AND s.replayed < excluded.replayed
                RETURNING 1
                """)
            guard claimed.isEmpty else { return .claimed }
            let rows = try await connection.query("SELECT state FROM email_sends WHERE event_id = \(eventID) AND kind = \(kind.rawValue)")
            // Gone between the two statements (released by a concurrent attempt): the
            // next attempt claims it.
            guard let state = try rows.first?.decode(String.self, "state") else { return .released }
            return state == "sent" ? .sent : .unresolved(state: state)
        }
    }

    /// The email went out: recorded whoever holds the row now (an upsert, so it is
    /// recorded even if the row was taken back meanwhile).
    func markSent(provider: String, userID: String?, messageID: String?) async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("""
                INSERT INTO email_sends AS s (event_id, kind, provider, provider_message_id, user_id, state, replayed, sent_at)
                VALUES (\(eventID), \(kind.rawValue), \(provider), \(messageID), \(userID), 'sent', \(replayed), now())
                ON CONFLICT (event_id, kind) DO UPDATE SET state = 'sent', provider_message_id = excluded.provider_message_id, sent_at = now()
                """)
        }
    }

    func markUnknown() async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("""
                UPDATE email_sends SET state = 'unknown'
                WHERE event_id = \(eventID) AND kind = \(kind.rawValue) AND state = 'sending' AND replayed = \(replayed)
                """)
        }
    }

    /// Takes this attempt's intent back: nothing was sent.
    func release() async throws {
        _ = try await database.withConnection { connection in
            try await connection.execute("""
                DELETE FROM email_sends
                WHERE event_id = \(eventID) AND kind = \(kind.rawValue) AND state = 'sending' AND replayed = \(replayed)
                """)
        }
    }
}
