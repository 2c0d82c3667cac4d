import Consumers
import Topology

extension ConsumerSettings {
    /// The settings of a consumer declared in the topology file, with its queue names.
    public init(_ spec: ConsumerSpec) {
        self.init(
            name: spec.name, queue: spec.queueName, retryQueues: spec.retryQueueNames, deadLetterQueue: spec.deadLetterQueueName,
            maxAttempts: spec.maxAttempts, prefetch: UInt16(clamping: spec.prefetch), batchSize: spec.batchSize, batchWait: spec.batchWait)
    }
}
