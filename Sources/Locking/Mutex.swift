// The `Mutex` every Warren module uses: Synchronization's, except when built for
// ThreadSanitizer (`scripts/sanitize thread` defines WARREN_TSAN), where it is the
// pthread-based one below. A file that also needs `Atomic` imports only that
// (`import struct Synchronization.Atomic`), so that the two `Mutex`es never meet.
#if WARREN_TSAN
import Glibc

/// Synchronization's `Mutex` locks with atomics and a futex inside the standard library,
/// which is not instrumented, so ThreadSanitizer sees no order between two `withLock`
/// calls and reports every access they guard as a race (a 4-thread counter in
/// `Mutex.withLock` is reported on Swift 6.3). This one has the same shape over a pthread
/// mutex, whose lock and unlock TSan intercepts, so that its reports are real ones.
public final class Mutex<Value>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ initialValue: Value) {
        value = initialValue
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
#else
import Synchronization

public typealias Mutex<Value: ~Copyable> = Synchronization.Mutex<Value>
#endif
