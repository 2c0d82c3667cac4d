import Foundation
import Logging
import Postgres

/// Keeps each consumer's last message failure in `warren_consumer_failures` for `warren
/// status`. The runtime notes a failure and goes on at once; a task of its own writes the
/// newest one (older ones not yet written are dropped: only the last is kept anyway), so a
/// slow or unreachable database never holds a retry or a dead-letter.
final class FailureLog: Sendable {
    struct Failure: Sendable {
        var messageID: String?
        var eventType: String?
        var errorType: String
        var error: String
        var destination: String
        var at: Date
    }

    private let consumer: String
    private let stream: AsyncStream<Failure>
    private let continuation: AsyncStream<Failure>.Continuation

    init(consumer: String) {
        self.consumer = consumer
        (stream, continuation) = AsyncStream.makeStream(of: Failure.self, bufferingPolicy: .bufferingNewest(1))
    }

    func note(_ failure: Failure) {
        continuation.yield(failure)
    }

    /// Writes what is noted until `finish()` or cancellation.
    func run(database: PostgresPool, logger: Logger) async {
        for await failure in stream {
            do {
                _ = try await database.withConnection { connection in
                    try await connection.execute("""
                        INSERT INTO warren_consumer_failures (consumer, message_id, event_type, error_type, error, destination, failed_at)
                        VALUES (\(consumer), \(failure.messageID), \(failure.eventType), \(failure.errorType), \(failure.error),
                                \(failure.destination), \(failure.at))
                        ON CONFLICT (consumer) DO UPDATE SET message_id = EXCLUDED.message_id, event_type = EXCLUDED.event_type,
                            error_type = EXCLUDED.error_type, error = EXCLUDED.error, destination = EXCLUDED.destination,
                            failed_at = EXCLUDED.failed_at
                        WHERE warren_consumer_failures.failed_at <= EXCLUDED.failed_at
                        """)
                }
            } catch {
                logger.debug("consumer.failure_log.failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func finish() {
        continuation.finish()
    }
}
