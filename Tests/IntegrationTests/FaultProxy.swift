import Foundation
import Glibc
import Locking

/// A TCP proxy on 127.0.0.1 in front of a local port (RabbitMQ's, PostgreSQL's), for the
/// faults a real network shows:
/// - `stall()`: it reads nothing in either direction, like a peer behind a network that
///   lost its packets (a blackhole): the client's socket buffer fills, nothing reaches
///   it, and not even the upstream side closing gets through; `resume()` lets it all flow.
///   `stall(.toUpstream)` stops only what the client writes (a peer that stopped reading
///   but still talks), `stall(.toClient)` only what it reads.
/// - `delay(_:)`: each chunk waits that long before it is forwarded, both ways (latency).
/// - `reset()`: every open connection is cut on both sides, its unforwarded bytes lost,
///   as when TCP on either end gave up during a blackhole; new connections work.
/// Each accepted client gets its own upstream connection; a thread per direction copies
/// bytes.
final class FaultProxy: Sendable {
    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    /// `sockets` are open connections; `cut` were reset (shut down). A connection's two
    /// sockets are closed, and leave these lists, under this lock once both its pump
    /// threads ended, so nothing here ever touches a descriptor number after its close.
    private let state = Mutex<(stalled: Set<Direction>, delay: Duration, stopped: Bool, sockets: [Int32], cut: [Int32])>(([], .zero, false, [], []))

    enum Direction: Hashable, Sendable {
        case toUpstream, toClient
    }

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw TestFailure("proxy: cannot listen (errno \(errno))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Stop reading, both ways, on every connection (already accepted and future ones).
    func stall(_ directions: Set<Direction> = [.toUpstream, .toClient]) { state.withLock { $0.stalled = directions } }
    func resume() { state.withLock { $0.stalled = [] } }
    func delay(_ latency: Duration) { state.withLock { $0.delay = latency } }

    /// Cuts every open connection (both sides see it end; what the proxy held is lost)
    /// and resumes: the end of a blackhole that outlasted TCP.
    func reset() {
        state.withLock { state in
            for socket in state.sockets { shutdown(socket, Int32(SHUT_RDWR)) }
            state.cut += state.sockets
            state.sockets = []
            state.stalled = []
        }
    }

    /// Closes the listener and ends every connection. The sockets are only shut down here: each connection's pair is closed by the last of
    /// its two pump threads as it ends, so no thread ever touches a descriptor number after
    /// it was closed (the process may have reused it, e.g. for the next test's connection).
    func stop() {
        state.withLock { state in
            state.stopped = true
            for socket in state.sockets + state.cut { shutdown(socket, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func isStalled(_ direction: Direction) -> Bool { state.withLock { $0.stalled.contains(direction) } }
    private var latency: Duration { state.withLock { $0.delay } }
    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            state.withLock { $0.sockets += [client, upstream] }
            let link = Link(client: client, upstream: upstream)
            Thread.detachNewThread { [self] in pump(from: client, to: upstream, .toUpstream, link) }
            Thread.detachNewThread { [self] in pump(from: upstream, to: client, .toClient, link) }
        }
    }

    private func pump(from source: Int32, to destination: Int32, _ direction: Direction, _ link: Link) {
        defer { pumpEnded(link) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !isStopped {
            if isStalled(direction) {
                usleep(10_000)
                continue
            }
            var readable = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            guard poll(&readable, 1, 50) >= 0 else { break }
            guard readable.revents != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            let wait = latency
            if wait > .zero { usleep(UInt32(wait / .microseconds(1))) }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return }
                sent += written
            }
        }
    }

    /// Both sockets of the link are shut down when either pump ends (the other one's read
    /// returns), and closed when the second one does.
    private func pumpEnded(_ link: Link) {
        state.withLock { state in
            shutdown(link.client, Int32(SHUT_RDWR))
            shutdown(link.upstream, Int32(SHUT_RDWR))
            link.running -= 1
            guard link.running == 0 else { return }
            state.sockets.removeAll { $0 == link.client || $0 == link.upstream }
            state.cut.removeAll { $0 == link.client || $0 == link.upstream }
            close(link.client)
            close(link.upstream)
        }
    }

    /// One proxied connection. `running` (pump threads not yet ended) is guarded by `state`'s lock.
    private final class Link: @unchecked Sendable {
        let client: Int32
        let upstream: Int32
        var running = 2

        init(client: Int32, upstream: Int32) {
            self.client = client
            self.upstream = upstream
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
