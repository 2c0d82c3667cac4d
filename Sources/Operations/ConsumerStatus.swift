import AMQP
import Foundation
import Postgres

/// What `warren status` shows of one consumer: its queue's and DLQ's depth and consumers
/// from the broker (passive declares), and its last message failure from the database.
public struct ConsumerStatus: Sendable {
    public struct LastFailure: Sendable {
        public var at: Date
        public var errorType: String
        public var error: String
        public var destination: String
        public var messageID: String?
    }

    public var consumer: String
    public var queue: String
    public var deadLetterQueue: String
    /// Nil when the queue is not declared.
    public var messages: Int?
    public var consumers: Int?
    public var deadLetters: Int?
    public var lastFailure: LastFailure?

    /// The status of each `(consumer, queue, dead-letter queue)`, in that order.
    public static func read(
        _ consumers: [(name: String, queue: String, deadLetterQueue: String)], connection: AMQPConnection, database: PostgresPool
    ) async throws -> [ConsumerStatus] {
        let failures = try await database.withConnection { connection in
            try await connection.query(
                "SELECT consumer, failed_at, error_type, error, destination, message_id FROM warren_consumer_failures")
        }
        var last: [String: LastFailure] = [:]
        for row in failures {
            last[try row.decode(String.self, at: 0)] = LastFailure(
                at: try row.decode(Date.self, at: 1), errorType: try row.decode(String.self, at: 2), error: try row.decode(String.self, at: 3),
                destination: try row.decode(String.self, at: 4), messageID: try row.decode(String?.self, at: 5))
        }
        var statuses: [ConsumerStatus] = []
        for consumer in consumers {
            var status = ConsumerStatus(
                consumer: consumer.name, queue: consumer.queue, deadLetterQueue: consumer.deadLetterQueue, lastFailure: last[consumer.name])
            if let info = try await queueInfo(consumer.queue, connection) {
                status.messages = Int(info.messageCount)
                status.consumers = Int(info.consumerCount)
            }
            status.deadLetters = try await queueInfo(consumer.deadLetterQueue, connection).map { Int($0.messageCount) }
            statuses.append(status)
        }
        return statuses
    }

    /// Nil for a queue that is not declared (a passive declare of a missing queue closes
    /// the channel, so each takes its own).
    private static func queueInfo(_ queue: String, _ connection: AMQPConnection) async throws -> AMQPQueueInfo? {
        let channel = try await connection.openChannel(confirms: false)
        let info: AMQPQueueInfo?
        do {
            info = try await channel.queueInfo(queue)
        } catch let error as AMQPError where error.replyCode == 404 {
            info = nil
        } catch {
            await channel.close()
            throw error
        }
        await channel.close()
        return info
    }
}
