@testable import AMQP
import Foundation
import Testing

extension Integration {
    /// A broker that stops reading behind a network that drops everything must not freeze
    /// the connection's I/O thread: rabbitmq-c writes with no deadline, so before the
    /// kernel bound it (TCP_USER_TIMEOUT) a full socket buffer stopped every publish, ack,
    /// heartbeat and delivery on the connection for good (the broker's own heartbeat
    /// timeout cannot help: its close never arrives).
    @Suite struct StuckPeerTests {
        @Test func aBrokerThatStopsReadingIsALostConnectionAndTheConnectionComesBack() async throws {
            let proxy = try FaultProxy(upstreamPort: 5672)
            defer { proxy.stop() }
            let connection = try await AMQPConnection.forTests(url: "amqp://guest:guest@127.0.0.1:\(proxy.port)/%2f?heartbeat=2") {
                $0.publishTimeout = .seconds(300)  // only a lost connection may end these publishes
            }
            defer { Task { await connection.close() } }
            let channel = try await connection.openChannel()
            let queue = TestEnvironment.uniqueName("stuck")
            try await channel.declareQueue(queue, durable: false, autoDelete: false)

            proxy.stall()
            let body = [UInt8](repeating: 0x61, count: 1 << 20)
            let started = ContinuousClock.now
            // 64 MiB: more than the socket buffers on both sides of the proxy hold.
            let confirmations = (0..<64).map { _ in channel.send(body, exchange: "", routingKey: queue) }
            // Polled, never awaited: a stuck I/O thread would not answer, and the test
            // must fail rather than hang.
            try await eventually(timeout: .seconds(60), "the connection counted as lost (a stuck I/O thread never notices)") {
                if case .reconnecting = connection.state { true } else { false }
            }
            let lostAfter = ContinuousClock.now - started
            #expect(lostAfter < .seconds(30), "lost within about the write deadline (4 s here), took \(lostAfter)")
            print("stuck peer: connection lost \(lostAfter) after the broker stopped reading")

            proxy.resume()
            try await eventually(timeout: .seconds(60), "reconnected through the proxy") {
                if case .connected = connection.state { true } else { false }
            }
            // Written before the loss: failed, never reported as done. Not written yet:
            // held through the reconnect, then published and confirmed.
            try await eventually(timeout: .seconds(60), "every publish settled") { confirmations.allSatisfy(\.isSettled) }
            var lost = 0, confirmed = 0
            for confirmation in confirmations {
                do {
                    try await confirmation.confirmed()
                    confirmed += 1
                } catch let error as AMQPError {
                    #expect(error.code == .connectionLost, "\(error)")
                    lost += 1
                }
            }
            #expect(lost > 0, "some publishes were in the stuck write")
            let queued = Int(try await channel.queueInfo(queue).messageCount)
            #expect(queued == confirmed, "every confirmed publish is in the queue")
            reportFault("broker stops reading during 1 MiB publishes", [
                "published": confirmations.count, "confirmed": confirmed, "failed (connection lost)": lost,
                "in the queue": queued, "lost": confirmed - min(queued, confirmed), "duplicated": max(queued - confirmed, 0),
            ])
            try await channel.deleteQueue(queue)
        }

        @Test func theWriteDeadlineIsTwoHeartbeats() {
            #expect(RabbitSession.writeDeadline(heartbeat: 30) == .seconds(60))
            #expect(RabbitSession.writeDeadline(heartbeat: 2) == .seconds(4))
            #expect(RabbitSession.writeDeadline(heartbeat: 0) == .seconds(60), "heartbeats off still bound a write")
        }
    }
}
