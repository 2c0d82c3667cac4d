import Blocking
import CHiredis
import Synchronization

/// One hiredis context, opened on first use and reopened on the next call after it died.
/// Every hiredis call runs on the connection's own thread, in order; `RedisClient` spreads
/// commands over several of these.
final class RedisConnection: @unchecked Sendable {
    // `@unchecked Sendable` is sound because `context` is read and written only inside jobs
    // on `thread` (one OS thread, one job at a time, in order) and in `deinit`, when no job
    // can be pending (each holds a strong reference to `self`). Everything else is
    // immutable or atomic.
    private let thread: BlockingThread
    private var context: HiredisContext.Context?
    private let configuration: RedisConfiguration
    /// Commands queued or running on this connection: the client picks the least busy.
    let pending = Atomic<Int>(0)

    init(configuration: RedisConfiguration, name: String) {
        self.configuration = configuration
        self.thread = BlockingThread(name: name)
    }

    deinit {
        guard let context else { return }
        let handle = ContextHandle(pointer: context)
        thread.submit { redisFree(handle.pointer) }
    }

    /// A command waits in this connection's line at most `configuration.timeout` (behind
    /// slow replies or connect attempts); then it fails as a timeout without being sent, so
    /// no caller waits much longer than the timeout, however many are queued.
    func send(_ arguments: [[UInt8]]) async throws -> RedisValue {
        pending.add(1, ordering: .relaxed)
        defer { pending.subtract(1, ordering: .relaxed) }
        let deadline = ContinuousClock.now + configuration.timeout
        return try await thread.run { [self] in
            guard ContinuousClock.now < deadline else {
                throw RedisError(.timeout, "waited \(configuration.timeout) in line behind slower commands: Redis is slow or unreachable")
            }
            return try sendOnThread(arguments)
        }
    }

    func close() async {
        _ = try? await thread.run { [self] in
            if let context { redisFree(context) }
            context = nil
        }
    }

    private func sendOnThread(_ arguments: [[UInt8]]) throws(RedisError) -> RedisValue {
        let context: HiredisContext.Context
        if let open = self.context {
            context = open
        } else {
            context = try HiredisContext.open(configuration)
            self.context = context
        }
        do throws(RedisError) {
            return try HiredisContext.command(context, arguments)
        } catch {
            // After an I/O error or a timeout the context is unusable (and a late reply
            // would answer the next command): drop it, the next call reconnects.
            if error.isOutage {
                redisFree(context)
                self.context = nil
            }
            throw error
        }
    }
}

/// Carries a hiredis context into a job on its connection's thread, its only user.
struct ContextHandle: @unchecked Sendable {
    let pointer: HiredisContext.Context
}
