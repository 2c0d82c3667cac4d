import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Handlers
import Testing
import WarrenCore

extension Integration {
    /// `warren serve` as its own process, over real HTTP on loopback, publishing to a real
    /// broker (the harness's vhost, topology applied) with keys in the real database.
    @Suite struct HTTPServerTests {
        /// A running `warren serve` and what it printed.
        struct Server {
            let pid: pid_t
            let port: Int
            let log: String
            var base: String { "http://127.0.0.1:\(port)" }

            static func start(_ harness: ConsumerHarness, environment extra: [String: String] = [:]) async throws -> Server {
                let port = try freePort()
                var environment = ProcessInfo.processInfo.environment
                environment["WARREN_AMQP_URL"] = harness.amqpURL
                environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
                environment["WARREN_CATALOG"] = TestEnvironment.repositoryRoot.appendingPathComponent("events").path
                for (key, value) in extra { environment[key] = value }
                let log = NSTemporaryDirectory() + "warren-serve-\(harness.vhost).log"
                let pid = try spawn(TestEnvironment.warrenBinary, ["serve", "--address", "127.0.0.1:\(port)", "--verbose"], environment: environment, output: log)
                let server = Server(pid: pid, port: port, log: log)
                try await eventually("warren serve answers /healthz") { (try? await server.request("GET", "/healthz").status) == 200 }
                return server
            }

            func stop() -> Int32 {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            }

            var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

            func request(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> Answer {
                var request = URLRequest(url: URL(string: base + path)!)
                request.httpMethod = method
                request.httpBody = body.map { Data($0) }
                request.timeoutInterval = 30
                for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
                let (data, response) = try await URLSession.shared.data(for: request)
                let http = response as! HTTPURLResponse
                return Answer(
                    status: http.statusCode, json: (try? JSONValue(parsing: Array(data))) ?? .null,
                    retryAfter: http.value(forHTTPHeaderField: "Retry-After"), traceresponse: http.value(forHTTPHeaderField: "traceresponse"))
            }

            func publish(_ json: String, key: String?) async throws -> Answer {
                try await request("POST", "/v1/events", body: Array(json.utf8), headers: key.map { ["Authorization": "Bearer \($0)"] } ?? [:])
            }
        }

        struct Answer {
            var status: Int
            var json: JSONValue
            var retryAfter: String?
            var traceresponse: String? = nil
            var errorCode: String? { json["error"]?["code"]?.stringValue }
            var errorField: String? { json["error"]?["field"]?.stringValue }
            var errorMessage: String { json["error"]?["message"]?.stringValue ?? "" }
        }

        /// Runs `warren ARGS…` to completion and returns (exit status, output).
        static func warren(_ arguments: String...) throws -> (Int32, String) { try warren(arguments) }

        static func createKey(_ name: String, _ arguments: String...) throws -> String {
            let (status, output) = try warren(["keys", "create", "--name", name] + arguments)
            guard status == 0, let key = output.split(separator: "\n").first(where: { $0.hasPrefix("wk_") }) else {
                throw TestFailure("keys create failed (\(status)): \(output)")
            }
            return String(key)
        }

        static func warren(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
            let output = NSTemporaryDirectory() + "warren-cli-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: output) }
            var environment = ProcessInfo.processInfo.environment
            environment["WARREN_DATABASE_URL"] = TestEnvironment.databaseURL
            for (key, value) in extra { environment[key] = value }
            let pid = try spawn(TestEnvironment.warrenBinary, arguments, environment: environment, output: output)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return ((status >> 8) & 0xFF, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
        }

        static func userJSON(_ id: String) -> String {
            #"{"type":"user.created","data":{"id":"\#(id)","name":"Ada","email":"ada@example.com"}}"#
        }

        // MARK: POST /v1/events and keys

        @Test func keysGovernWhoPublishesWhatAndAcceptedEventsReachTheQueue() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let name = TestEnvironment.uniqueName("key")
            let key = try Self.createKey(name, "--events", "user.*")
            let server = try await Server.start(harness, environment: ["WARREN_HTTP_KEY_CACHE": "1"])
            defer { _ = server.stop() }

            let missing = try await server.publish(Self.userJSON("u"), key: nil)
            #expect(missing.status == 401 && missing.errorCode == "unauthorized" && missing.errorMessage.contains("Authorization"))
            let wrong = try await server.publish(Self.userJSON("u"), key: "wk_" + String(repeating: "A", count: 43))
            #expect(wrong.status == 401)
            let forbidden = try await server.publish(#"{"type":"payment.succeeded","data":{}}"#, key: key)
            #expect(forbidden.status == 403 && forbidden.errorCode == "type_not_allowed" && forbidden.errorField == "type")
            let invalid = try await server.publish(#"[{"type":"user.created","data":{"id":"u1","name":"A","email":"a@b.c"}},{"type":"user.created","data":{"id":"u2"}}]"#, key: key)
            #expect(invalid.status == 400 && invalid.errorCode == "invalid_event" && invalid.errorField == "[1].data.name", "\(invalid.json)")
            let spoofed = try await server.publish(#"{"type":"user.created","source":"/webhooks/stripe","data":{"id":"u9","name":"A","email":"a@b.c"}}"#, key: key)
            #expect(spoofed.status == 403 && spoofed.errorCode == "source_not_allowed" && spoofed.errorField == "source")
            let squatted = try await server.publish(#"{"type":"user.created","id":"stripe:evt_1","data":{"id":"u9","name":"A","email":"a@b.c"}}"#, key: key)
            #expect(squatted.status == 403 && squatted.errorCode == "id_not_allowed" && squatted.errorField == "id")
            let malformed = try await server.publish("{not json", key: key)
            #expect(malformed.status == 400 && malformed.errorCode == "malformed_json")
            #expect(try await harness.messages(in: harness.spec.queueName) == 0, "nothing of a refused request is published")

            let accepted = try await server.publish("[\(Self.userJSON("u1")),\(Self.userJSON("u2"))]", key: key)
            #expect(accepted.status == 202)
            var ids: [String] = []
            if case .array(let values)? = accepted.json["ids"] { ids = values.compactMap(\.stringValue) }
            #expect(ids.count == 2)
            #expect(try await harness.messages(in: harness.spec.queueName) == 2, "202 means confirmed: both are in the queue already")
            let first = try #require(try await harness.channel.get(queue: harness.spec.queueName))
            #expect(first.properties.messageID == ids[0])

            let (listed, listing) = try Self.warren("keys", "list")
            #expect(listed == 0 && listing.contains(name) && listing.contains("events=user.*") && !listing.contains(key))
            let (_, json) = try Self.warren("keys", "list", "--json")
            let listedKey = try JSONValue(parsing: Array(json.utf8))
            guard case .array(let entries) = listedKey, let entry = entries.first(where: { $0["name"]?.stringValue == name }) else {
                throw TestFailure("keys list --json: \(json)")
            }
            #expect(entry["events"] == ["user.*"] && entry["revoked_at"] == .null && !json.contains(key))
            #expect(try Self.warren("keys", "revoke", name).0 == 0)
            try await eventually(timeout: .seconds(5), "the revocation takes effect within the key cache's second") {
                try await server.publish(Self.userJSON("u3"), key: key).status == 401
            }
            let (again, message) = try Self.warren("keys", "revoke", name)
            #expect(again == 1 && message.hasPrefix("warren: no active key named"))
            #expect(server.stop() == 0, "SIGTERM stops it cleanly")
            #expect(!server.output.contains(key), "the key never appears in the logs")
        }

        /// Abuse one server must survive: a key over its rate, a 10 MB body, 500 idle
        /// connections. (One server and vhost for the three: each costs seconds to set up.)
        @Test func overTheRateTooLargeAndIdleConnectionsAreRefusedWithoutHarm() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let limited = try Self.createKey(TestEnvironment.uniqueName("rate"), "--events", "user.*", "--rate", "1/s")
            let key = try Self.createKey(TestEnvironment.uniqueName("big"), "--events", "#")
            let server = try await Server.start(harness)
            defer { _ = server.stop() }

            var answers: [Answer] = []
            for index in 0..<3 { answers.append(try await server.publish(Self.userJSON("r\(index)"), key: limited)) }
            #expect(answers[0].status == 202)
            let refused = try #require(answers.first { $0.status == 429 }, "\(answers.map(\.status))")
            #expect(refused.retryAfter == "1" && refused.errorCode == "rate_limited")
            #expect(try await server.publish(Self.userJSON("other-key"), key: key).status == 202, "the limit is per key")

            let big = try await server.request("POST", "/v1/events", body: [UInt8](repeating: 0x20, count: 10 << 20), headers: ["Authorization": "Bearer \(key)"])
            #expect(big.status == 413 && big.errorCode == "too_large")

            var sockets: [Int32] = []
            defer { for socket in sockets { close(socket) } }
            for _ in 0..<500 { sockets.append(try connectTo(port: server.port)) }
            #expect(try await server.publish(Self.userJSON("after"), key: key).status == 202, "a real request still goes through")
        }

        /// Slow and greedy clients: over the connection cap a new connection is closed at
        /// once; a head or body that does not arrive in time closes its connection; then
        /// real requests go through again.
        @Test func slowClientsAreCutOffAndTheConnectionCapHolds() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let key = try Self.createKey(TestEnvironment.uniqueName("slow"), "--events", "user.*")
            let server = try await Server.start(harness, environment: [
                "WARREN_HTTP_MAX_CONNECTIONS": "5", "WARREN_HTTP_HEADER_TIMEOUT": "4", "WARREN_HTTP_BODY_TIMEOUT": "1",
            ])
            defer { _ = server.stop() }
            var sockets: [Int32] = []
            defer { for socket in sockets { close(socket) } }
            for _ in 0..<5 { sockets.append(try connectTo(port: server.port)) }
            let extra = try connectTo(port: server.port)
            defer { close(extra) }
            try await eventually(timeout: .seconds(3), "the connection over the cap is closed at once") { isClosed(extra) }

            // The body deadline (1 s) counts from the head, well before the head deadline (4 s).
            let open = sockets.filter { !isClosed($0) }
            try #require(open.count >= 2)
            let slowBody = open[0], slowHead = open[1]
            send(slowBody, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Length: 100\r\n\r\n{")
            send(slowHead, "POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            try await eventually(timeout: .seconds(3), "a body sent too slowly closes its connection") { isClosed(slowBody) }
            try await eventually(timeout: .seconds(10), "a head sent too slowly closes its connection") { isClosed(slowHead) }
            try await eventually(timeout: .seconds(10), "idle connections past the head deadline are closed too") { sockets.allSatisfy(isClosed) }
            #expect(try await server.request("GET", "/readyz").status == 200, "a real request goes through")
        }

        /// The broker down: 503 with Retry-After, nothing lost; the retry after it is back
        /// publishes exactly once.
        @Test func whileTheBrokerIsDownPublishingIs503AndTheRetrySucceedsAfter() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let key = try Self.createKey(TestEnvironment.uniqueName("down"), "--events", "user.*")
            let server = try await Server.start(harness)
            defer { _ = server.stop() }
            try TestEnvironment.services("stop", "rabbitmq")
            var restarted = false
            defer { if !restarted { _ = try? TestEnvironment.services("start", "rabbitmq") } }
            try await eventually("readyz reports the broker") { try await server.request("GET", "/readyz").status == 503 }
            let ready = try await server.request("GET", "/readyz")
            #expect(ready.json["problems"]?["broker"] != nil && ready.retryAfter == "5")
            let refused = try await server.publish(Self.userJSON("down-1"), key: key)
            #expect(refused.status == 503 && refused.retryAfter == "5" && refused.errorCode == "unavailable")

            // A server started while the broker is down serves too: up, not ready, 503.
            let late = try await Server.start(harness)
            defer { _ = late.stop() }
            let lateReady = try await late.request("GET", "/readyz")
            #expect(lateReady.status == 503 && lateReady.json["problems"]?["broker"] != nil, "\(lateReady.json)")
            let lateRefused = try await late.publish(Self.userJSON("down-2"), key: key)
            #expect(lateRefused.status == 503 && lateRefused.retryAfter == "5" && lateRefused.errorCode == "unavailable")

            try TestEnvironment.services("start", "rabbitmq")
            restarted = true
            try await eventually(timeout: .seconds(60), "the retried request is accepted") {
                try await server.publish(Self.userJSON("down-1"), key: key).status == 202
            }
            try await eventually(timeout: .seconds(60), "the late server connects and publishes") {
                try await late.publish(Self.userJSON("down-2"), key: key).status == 202
            }
            #expect(try await late.request("GET", "/readyz").status == 200)
            let harnessAfter = try await AMQPConnection.forTests(url: harness.amqpURL)
            defer { Task { await harnessAfter.close() } }
            let channel = try await harnessAfter.openChannel()
            #expect(try await channel.queueInfo(harness.spec.queueName).messageCount == 2, "exactly one event per accepted request")
            #expect(late.stop() == 0)
        }

        /// The database down: keys cannot be checked, so 503 with Retry-After (nothing
        /// published, the sender retries), readyz names the database; back up, it goes on.
        @Test func whileTheDatabaseIsDownRequestsAre503AndGoThroughAfter() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let key = try Self.createKey(TestEnvironment.uniqueName("nodb"), "--events", "user.*")
            let server = try await Server.start(harness, environment: ["WARREN_HTTP_KEY_CACHE": "0"])
            defer { _ = server.stop() }
            try TestEnvironment.services("stop", "postgres")
            var restarted = false
            defer { if !restarted { _ = try? TestEnvironment.services("start", "postgres") } }
            let refused = try await server.publish(Self.userJSON("nodb-1"), key: key)
            #expect(refused.status == 503 && refused.retryAfter == "5" && refused.errorCode == "unavailable", "\(refused.json)")
            let ready = try await server.request("GET", "/readyz")
            #expect(ready.status == 503 && ready.json["problems"]?["database"] != nil && ready.json["problems"]?["broker"] == nil)
            #expect(try await harness.messages(in: harness.spec.queueName) == 0, "nothing published")
            try TestEnvironment.services("start", "postgres")
            restarted = true
            try await eventually(timeout: .seconds(60), "accepted once the database is back") {
                try await server.publish(Self.userJSON("nodb-1"), key: key).status == 202
            }
            #expect(try await harness.messages(in: harness.spec.queueName) == 1)
        }

        // MARK: Stripe webhooks

        /// Signs like Stripe with openssl, an implementation that is not Warren's.
        static func stripeSignature(_ body: String, secret: String, t: Int = Int(Date().timeIntervalSince1970)) throws -> String {
            let input = NSTemporaryDirectory() + "stripe-body-\(UUID().uuidString)"
            try Data("\(t).\(body)".utf8).write(to: URL(fileURLWithPath: input))
            defer { try? FileManager.default.removeItem(atPath: input) }
            let output = input + ".out"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let pid = try spawn("/usr/bin/openssl", ["dgst", "-sha256", "-hmac", secret, "-r", input], environment: [:], output: output)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let digest = try String(contentsOfFile: output, encoding: .utf8).split(separator: " ").first.map(String.init) ?? ""
            guard digest.count == 64 else { throw TestFailure("openssl printed no digest") }
            return "t=\(t),v1=\(digest)"
        }

        @Test func aSignedStripePaymentLandsInPaymentsOnceAndBadSignaturesAre401() async throws {
            let harness = try await ConsumerHarness.make(consumer: "payments.ledger", bindings: ["payment.*"])
            defer { Task { await harness.tearDown() } }
            let secrets = ("whsec_old_\(UUID().uuidString)", "whsec_new_\(UUID().uuidString)")
            let server = try await Server.start(harness, environment: ["STRIPE_WEBHOOK_SECRET": "\(secrets.0), \(secrets.1)"])
            defer { _ = server.stop() }
            harness.start(module: PaymentsLedger())
            let stripeID = "evt_\(UUID().uuidString.prefix(12))"
            let paymentID = "pi_\(UUID().uuidString.prefix(12))"
            let body = """
                {"id":"\(stripeID)","object":"event","type":"payment_intent.succeeded","created":\(Int(Date().timeIntervalSince1970)),
                 "data":{"object":{"id":"\(paymentID)","object":"payment_intent","amount":4200,"amount_received":4200,"currency":"usd",
                 "metadata":{"user_id":"usr_http"}}}}
                """
            func post(_ signature: String?, _ text: String = body) async throws -> Answer {
                try await server.request("POST", "/webhooks/stripe", body: Array(text.utf8), headers: signature.map { ["Stripe-Signature": $0] } ?? [:])
            }
            var changed = body
            changed.replace("4200,\"amount_received\"", with: "4201,\"amount_received\"")
            let now = Int(Date().timeIntervalSince1970)
            let refusals: [(String, Answer)] = [
                ("missing", try await post(nil)),
                ("one byte changed", try await post(try Self.stripeSignature(body, secret: secrets.1), changed)),
                ("expired", try await post(try Self.stripeSignature(body, secret: secrets.1, t: now - 400))),
                ("future", try await post(try Self.stripeSignature(body, secret: secrets.1, t: now + 400))),
                ("v0 only", try await post(try Self.stripeSignature(body, secret: secrets.1).replacingOccurrences(of: "v1=", with: "v0="))),
                ("unknown secret", try await post(try Self.stripeSignature(body, secret: "whsec_other"))),
            ]
            for (what, answer) in refusals {
                #expect(answer.status == 401 && answer.errorCode == "invalid_signature" && answer.errorMessage.contains("Stripe-Signature"), "\(what): \(answer.json)")
            }
            #expect(harness.events.applied.isEmpty)

            // Signed with the first secret of the rotation: accepted.
            let accepted = try await post(try Self.stripeSignature(body, secret: secrets.0))
            #expect(accepted.status == 200 && accepted.json["type"] == "payment.succeeded" && accepted.json["id"]?.stringValue == "stripe:\(stripeID)")
            try await eventually("the payment row") {
                try await harness.count("SELECT count(*) FROM payments WHERE payment_id = \(paymentID) AND amount = 4200 AND currency = 'USD'") == 1
            }
            // Stripe retries the same event: answered, not published again.
            let replay = try await post(try Self.stripeSignature(body, secret: secrets.1))
            #expect(replay.status == 200 && replay.json["duplicate"] == true)
            // A later event, queued behind anything the replay could have published: once it
            // is applied, a second copy of the first would have reached the consumer too.
            let laterID = "evt_\(UUID().uuidString.prefix(12))"
            let later = body.replacingOccurrences(of: stripeID, with: laterID).replacingOccurrences(of: paymentID, with: paymentID + "_2")
            #expect(try await post(try Self.stripeSignature(later, secret: secrets.0), later).status == 200)
            try await eventually("the later event applied") { harness.events.applied.contains("stripe:\(laterID)") }
            #expect(harness.events.applied == ["stripe:\(stripeID)", "stripe:\(laterID)"], "published once")
            #expect(harness.events.duplicates.isEmpty)
            #expect(server.stop() == 0)
            #expect(!server.output.contains(secrets.0) && !server.output.contains(secrets.1), "webhook secrets never appear in the logs")
        }

        // MARK: Configured sources

        /// Runs a shell pipeline (openssl) and returns its trimmed output.
        static func shell(_ command: String) throws -> String {
            let output = NSTemporaryDirectory() + "warren-sh-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let pid = try spawn("/bin/sh", ["-c", command], environment: ["PATH": "/usr/bin:/bin"], output: output)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return try String(contentsOfFile: output, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// openssl's HMAC-SHA256 of `data`: hex with a text key, or base64 with a binary key given in hex.
        static func openssl(_ data: String, textKey: String? = nil, hexKey: String? = nil) throws -> String {
            let file = NSTemporaryDirectory() + "warren-hmac-\(UUID().uuidString)"
            try Data(data.utf8).write(to: URL(fileURLWithPath: file))
            defer { try? FileManager.default.removeItem(atPath: file) }
            if let textKey { return try shell("openssl dgst -sha256 -hmac '\(textKey)' -r '\(file)' | cut -d' ' -f1") }
            return try shell("openssl dgst -sha256 -mac HMAC -macopt hexkey:\(hexKey!) -binary '\(file)' | base64")
        }

        @Test func configuredSourcesVerifyTheirSchemeAndPublishEachDeliveryOnce() async throws {
            let harness = try await ConsumerHarness.make(consumer: "partner.inbox", bindings: ["partner.#"])
            defer { Task { await harness.tearDown() } }
            let directory = NSTemporaryDirectory() + "warren-sources-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory + "/events", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try Data(#"{"open": ["partner.#"]}"#.utf8).write(to: URL(fileURLWithPath: directory + "/events/catalog.json"))
            try Data("""
                sources:
                  acme:
                    scheme: x-signature
                    header: X-Acme-Signature
                    secrets_env: TEST_ACME_SECRET
                    type: partner.order.created
                    id_field: id
                  hooks:
                    scheme: standard-webhooks
                    secrets_env: TEST_HOOKS_SECRET
                    type_field: event
                    events: [partner.invoice.*]
                  silent:
                    scheme: x-signature
                    secrets_env: TEST_UNSET_SECRET
                    type: partner.silent
                  plain:
                    scheme: x-signature
                    secrets_env: TEST_PLAIN_SECRET
                    type: partner.ping
                """.utf8).write(to: URL(fileURLWithPath: directory + "/sources.yaml"))
            let acmeSecret = "acme-\(UUID().uuidString)"
            let keyBytes = (0..<24).map { _ in UInt8.random(in: 0...255) }
            let hooksSecret = "whsec_" + Data(keyBytes).base64EncodedString()
            let server = try await Server.start(harness, environment: [
                "WARREN_WEBHOOK_SOURCES": directory + "/sources.yaml", "WARREN_CATALOG": directory + "/events",
                "TEST_ACME_SECRET": "rotated-out, \(acmeSecret)", "TEST_HOOKS_SECRET": hooksSecret, "TEST_PLAIN_SECRET": acmeSecret,
            ])
            defer { _ = server.stop() }

            // x-signature: hex HMAC of the body in the configured header.
            let order = #"{"id":"ord_\#(UUID().uuidString.prefix(8))","total":1250}"#
            let signature = try Self.openssl(order, textKey: acmeSecret)
            func acme(_ signature: String?, _ body: String = order) async throws -> Answer {
                try await server.request("POST", "/webhooks/acme", body: Array(body.utf8), headers: signature.map { ["X-Acme-Signature": $0] } ?? [:])
            }
            #expect(try await acme(nil).status == 401)
            #expect(try await acme(signature, order.replacingOccurrences(of: "1250", with: "1251")).status == 401)
            #expect(try await acme(try Self.openssl(order, textKey: "not-the-secret")).status == 401)
            let accepted = try await acme(signature)
            #expect(accepted.status == 200 && accepted.json["type"] == "partner.order.created")
            #expect(try await acme(signature).json["duplicate"] == true, "the same delivery id is published once")

            // Standard Webhooks: id, timestamp, v1 signature over "{id}.{timestamp}.{body}".
            let hook = #"{"event":"partner.invoice.paid","invoice":"inv_1"}"#
            let hookID = "msg_\(UUID().uuidString.prefix(12))"
            let hexKey = keyBytes.map { String(format: "%02x", $0) }.joined()
            func hooks(
                id: String = hookID, timestamp: Int = Int(Date().timeIntervalSince1970), body: String = hook, signedBody: String? = nil
            ) async throws -> Answer {
                let mac = try Self.openssl("\(id).\(timestamp).\(signedBody ?? body)", hexKey: hexKey)
                return try await server.request("POST", "/webhooks/hooks", body: Array(body.utf8), headers: [
                    "webhook-id": id, "webhook-timestamp": "\(timestamp)", "webhook-signature": "v1,\(mac)",
                ])
            }
            let stale = try await hooks(timestamp: Int(Date().timeIntervalSince1970) - 400)
            #expect(stale.status == 401 && stale.errorMessage.contains("webhook-timestamp"))
            #expect(try await hooks(body: hook.replacingOccurrences(of: "inv_1", with: "inv_2"), signedBody: hook).status == 401)
            let hooked = try await hooks()
            #expect(hooked.status == 200 && hooked.json["type"] == "partner.invoice.paid" && hooked.json["id"]?.stringValue == "hooks:\(hookID)")
            #expect(try await hooks().json["duplicate"] == true)

            let foreign = try await hooks(id: "msg_foreign_\(UUID().uuidString.prefix(8))", body: #"{"event":"payment.succeeded","invoice":"inv_3"}"#)
            #expect(foreign.status == 403 && foreign.errorCode == "type_not_allowed", "a payload may not name Warren's own types")

            // x-signature without id_field: nothing signed says which delivery it is, so
            // the body's SHA-256 does; a captured request replayed is a duplicate.
            func plain(_ body: String) async throws -> Answer {
                try await server.request("POST", "/webhooks/plain", body: Array(body.utf8), headers: ["X-Signature": try Self.openssl(body, textKey: acmeSecret)])
            }
            let ping = #"{"ping":"\#(UUID().uuidString)"}"#
            let pinged = try await plain(ping)
            let digest = try Self.shell("printf '%s' '\(ping)' | sha256sum | cut -d' ' -f1")
            #expect(pinged.status == 200 && pinged.json["id"]?.stringValue == "plain:sha256:\(digest)", "\(pinged.json)")
            let replayed = try await plain(ping)
            #expect(replayed.status == 200 && replayed.json["duplicate"] == true, "a replayed body is published once")
            let another = try await plain(#"{"ping":"\#(UUID().uuidString)"}"#)
            #expect(another.status == 200 && another.json["duplicate"] == nil, "another body is another delivery")
            #expect(try await harness.messages(in: harness.spec.queueName) == 4, "one event per delivery")
            let silent = try await server.request("POST", "/webhooks/silent", body: Array("{}".utf8))
            #expect(silent.status == 404 && silent.errorCode == "not_configured" && silent.errorMessage.contains("TEST_UNSET_SECRET"))
            #expect(try await server.request("POST", "/webhooks/nobody", body: Array("{}".utf8)).errorCode == "unknown_source")
            #expect(server.stop() == 0)
            #expect(!server.output.contains(acmeSecret) && !server.output.contains(hooksSecret))
        }

        @Test func withoutASecretStripeWebhooksAreNotServed() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let server = try await Server.start(harness, environment: ["STRIPE_WEBHOOK_SECRET": ""])
            defer { _ = server.stop() }
            let answer = try await server.request("POST", "/webhooks/stripe", body: Array("{}".utf8))
            #expect(answer.status == 404 && answer.errorCode == "not_configured")

            // What no route handles is a JSON 404 too, told apart by its code.
            let unknown = try await server.request("GET", "/v2/nothing")
            #expect(unknown.status == 404 && unknown.errorCode == "unknown_route", "\(unknown.json)")

            // Every route the served OpenAPI document lists answers one of its documented
            // statuses, with JSON, and is served (not the router's `unknown_route`).
            let document = try await server.request("GET", "/openapi.json").json
            let paths = try #require(document["paths"]?.objectValue)
            #expect(paths.count >= 6)
            for (path, operations) in paths {
                for (method, operation) in operations.objectValue ?? [:] where method != "parameters" {
                    let concrete = path.replacingOccurrences(of: "{source}", with: "nobody").replacingOccurrences(of: "{id}", with: "wh_nobody")
                        .replacingOccurrences(of: "{event}", with: "nothing")
                    let answer = try await server.request(method.uppercased(), concrete, body: method == "post" ? Array("{}".utf8) : nil)
                    let documented = operation["responses"]?.objectValue?.keys.map { $0 } ?? []
                    #expect(documented.contains(String(answer.status)), "\(method) \(path) answered \(answer.status); documented: \(documented)")
                    // Every answer is JSON but the Prometheus text of /metrics.
                    #expect(answer.json != .null || path == "/metrics", "\(method) \(path) answered without JSON")
                    #expect(answer.errorCode != "unknown_route", "\(method) \(path) is documented but not served")
                }
            }
        }
    }
}

/// A port nobody listens on now (bound to 0, then released).
func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestFailure("socket failed") }
    defer { close(socket) }
    var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("bind failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// An open TCP connection to 127.0.0.1:`port` that sends nothing.
func connectTo(port: Int) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
    var address = sockaddr_in(
        sin_family: sa_family_t(AF_INET), sin_port: UInt16(port).bigEndian, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else {
        close(socket)
        throw TestFailure("connect failed: errno \(errno)")
    }
    return socket
}

/// Whether the server closed `socket`: reads (and drops) what it sent, until end of
/// file (closed) or nothing more for now (open).
func isClosed(_ socket: Int32) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if count > 0 { continue }
        return count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
    }
}

/// Writes `text` to `socket` as is.
func send(_ socket: Int32, _ text: String) {
    _ = Array(text.utf8).withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}
