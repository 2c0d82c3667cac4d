import Consumers
import Locking

/// Keeps what a consumer under test reported through its observer (`ConsumerEvent`), so
/// tests assert outcomes as typed values instead of matching log text.
final class ConsumerEventRecorder: Sendable {
    struct Failure: Sendable {
        var messageID: String?
        var attempt: Int
        var destination: FailurePolicy.Destination
        var failure: HandlerFailure
    }

    private let events = Mutex<[ConsumerEvent]>([])

    var observer: ConsumerRuntime.Observer { { event in self.events.withLock { $0.append(event) } } }

    /// Ids of applied events, once per commit that applied them.
    var applied: [String] {
        events.withLock { events in
            events.flatMap { event -> [String] in if case .committed(let applied, _) = event { applied } else { [] } }
        }
    }

    /// Ids the inbox had seen before.
    var duplicates: [String] {
        events.withLock { events in
            events.flatMap { event -> [String] in if case .committed(_, let duplicates) = event { duplicates } else { [] } }
        }
    }

    /// Message ids whose retry or dead-letter copy the broker did not take (the original
    /// was put back).
    var republishFailures: [String?] {
        events.withLock { events in
            events.compactMap { event -> String?? in if case .republishFailed(let id, _) = event { id } else { nil } }
        }
    }

    /// Failed events republished to a delay tier or the DLQ, in order.
    var failures: [Failure] {
        events.withLock { events in
            events.compactMap { event -> Failure? in
                if case .failed(let id, let attempt, let destination, let failure) = event {
                    Failure(messageID: id, attempt: attempt, destination: destination, failure: failure)
                } else {
                    nil
                }
            }
        }
    }
}
