import AMQP
import Logging
import Metrics
import ServiceLifecycle

/// Reads each consumer's queue and dead-letter queue with a passive declare every
/// `interval` and publishes what the broker said as gauges:
/// `warren_queue_messages{consumer, queue}` (ready messages: the consumer's lag in
/// messages, or what waits in its DLQ) and `warren_queue_consumers{consumer, queue}`.
/// A queue that cannot be read (missing, broker away) keeps its last value and is tried
/// again next round.
public struct QueueDepthMonitor: Service {
    public static let defaultInterval = Duration.seconds(15)

    struct Watched {
        var queue: String
        var messages: Gauge
        var consumers: Gauge
    }

    let amqp: AMQPConnection
    let settings: [ConsumerSettings]
    let interval: Duration
    let logger: Logger

    public init(amqp: AMQPConnection, consumers: [ConsumerSettings], interval: Duration = Self.defaultInterval, logger: Logger) {
        self.amqp = amqp
        self.settings = consumers
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let watched = settings.flatMap { consumer in
            [consumer.queue, consumer.deadLetterQueue].map { queue in
                let labels = [("consumer", consumer.name), ("queue", queue)]
                return Watched(
                    queue: queue, messages: Gauge(label: "warren_queue_messages", dimensions: labels),
                    consumers: Gauge(label: "warren_queue_consumers", dimensions: labels))
            }
        }
        let channel = try await amqp.openChannel(confirms: false)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for queue in watched {
                    do {
                        let info = try await channel.queueInfo(queue.queue)
                        queue.messages.record(Int(info.messageCount))
                        queue.consumers.record(Int(info.consumerCount))
                    } catch {
                        logger.debug("metrics.queue.unreadable", metadata: ["amqp.queue": "\(queue.queue)", "error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
        await channel.close()
    }
}
