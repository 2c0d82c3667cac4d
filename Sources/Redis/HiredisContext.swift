import CHiredis
import Glibc

/// The hiredis calls both the pooled connections and the subscriber make: open a
/// blocking context (connect timeout, AUTH, SELECT, per-reply timeout, TCP keep-alive),
/// send one command, and read the context's error. Every function here blocks: call
/// them only on a connection's own thread.
enum HiredisContext {
    typealias Context = UnsafeMutablePointer<redisContext>

    static func open(_ configuration: RedisConfiguration) throws(RedisError) -> Context {
        let timeout = timeval(configuration.timeout)
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), timeout) else {
            throw RedisError(.connectionFailed, "hiredis could not allocate a context")
        }
        if context.pointee.err != 0 {
            let error = self.error(context, connecting: true)
            redisFree(context)
            throw error
        }
        do throws(RedisError) {
            guard redisSetTimeout(context, timeout) == REDIS_OK else { throw self.error(context, connecting: true) }
            _ = redisEnableKeepAlive(context)
            if let password = configuration.password {
                let arguments = ["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password]
                do throws(RedisError) {
                    _ = try command(context, arguments.map { Array($0.utf8) })
                } catch where error.kind == .server {
                    // The server's words only ("WRONGPASS invalid username-password pair"): never the password.
                    throw RedisError(.connectionFailed, "AUTH refused: \(error.message)")
                }
            }
            if configuration.database != 0 {
                do throws(RedisError) {
                    _ = try command(context, [Array("SELECT".utf8), Array(String(configuration.database).utf8)])
                } catch where !error.isOutage {
                    throw RedisError(.connectionFailed, "SELECT \(configuration.database) refused: \(error.message)")
                }
            }
        } catch {
            redisFree(context)
            // Whatever stops a connection from being usable is a failed connect (an outage).
            throw error.isOutage ? error : RedisError(.connectionFailed, error.message)
        }
        return context
    }

    /// Sends one command and waits for its reply. A thrown outage (`isOutage`) leaves the
    /// context unusable: the caller frees it.
    static func command(_ context: Context, _ arguments: [[UInt8]]) throws(RedisError) -> RedisValue {
        let name = arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? "?"
        // One flat buffer for every argument, with pointers into it.
        var flat: [UInt8] = []
        flat.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        for argument in arguments {
            offsets.append(flat.count)
            flat += argument
        }
        flat.append(0)  // never an empty buffer (a nil base address)
        let lengths = arguments.map(\.count)
        let raw: UnsafeMutableRawPointer? = flat.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { base in
                var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
                return pointers.withUnsafeMutableBufferPointer { argv in
                    lengths.withUnsafeBufferPointer { argvlen in
                        redisCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
                    }
                }
            }
        }
        guard let raw else { throw error(context, command: name) }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        let value = RedisValue(reply: reply)
        if case .error(let message) = value {
            let code = message.prefix { $0 != " " }
            let busy = ["LOADING", "BUSY", "READONLY", "MASTERDOWN", "NOAUTH", "OOM", "MISCONF", "TRYAGAIN", "CLUSTERDOWN"].contains(code)
            throw RedisError(busy ? .serverUnavailable : .server, "\(name): \(message)")
        }
        return value
    }

    /// The context's error as a ``RedisError``: a timeout, a failed connect or a lost connection.
    static func error(_ context: Context, connecting: Bool = false, command: String? = nil) -> RedisError {
        let text = withUnsafePointer(to: context.pointee.errstr) { pointer in
            pointer.withMemoryRebound(to: CChar.self, capacity: 128) { String(cString: $0) }
        }
        let at = "\(context.pointee.tcp.host.map { String(cString: $0) } ?? "?"):\(context.pointee.tcp.port)"
        let lowered = text.lowercased()
        if lowered.contains("timed out") || lowered.contains("temporarily unavailable") {
            return RedisError(.timeout, "\(command.map { "\($0): " } ?? "")no answer from \(at) within the timeout (\(text))")
        }
        if connecting { return RedisError(.connectionFailed, "cannot connect to \(at): \(text)") }
        return RedisError(.connectionLost, "\(command.map { "\($0): " } ?? "")connection to \(at) lost: \(text)")
    }

    static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
