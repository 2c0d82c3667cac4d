import Foundation
import Testing
import WarrenCore

extension Integration {
    /// `/v1/webhooks…` on a real `warren serve`, and `warren webhooks …`, against the real
    /// database: admin keys, the SSRF guard, the whole life of a subscription.
    @Suite struct WebhookAPITests {
        typealias Server = HTTPServerTests.Server

        static func body(_ object: JSONValue) -> [UInt8] { object.serialized() }

        @Test func onlyAdminKeysManageSubscriptionsAndTheGuardRefusesInternalURLs() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let server = try await Server.start(harness)
            defer { _ = server.stop() }
            let admin = try HTTPServerTests.createKey(TestEnvironment.uniqueName("admin"), "--admin")
            let publisher = try HTTPServerTests.createKey(TestEnvironment.uniqueName("pub"), "--events", "user.*")

            let create = Self.body(["url": "https://example.com/hooks", "events": ["user.*"]])
            #expect(try await server.request("POST", "/v1/webhooks", body: create).status == 401)
            let refused = try await server.request("POST", "/v1/webhooks", body: create, headers: ["Authorization": "Bearer \(publisher)"])
            #expect(refused.status == 403 && refused.errorCode == "admin_required")
            #expect(try await server.request("GET", "/v1/webhooks", headers: ["Authorization": "Bearer \(publisher)"]).status == 403)

            let auth = ["Authorization": "Bearer \(admin)"]
            for url in [
                "https://127.0.0.1/hooks", "https://localhost/hooks", "https://169.254.169.254/latest/meta-data", "https://[::1]/hooks",
                "https://[::ffff:10.0.0.1]/hooks", "https://10.1.2.3/hooks", "http://example.com/hooks", "ftp://example.com/x",
            ] {
                let answer = try await server.request("POST", "/v1/webhooks", body: Self.body(["url": .string(url), "events": ["#"]]), headers: auth)
                #expect(answer.status == 422 && answer.errorCode == "invalid_webhook" && answer.errorField == "url", "\(url): \(answer.json)")
            }
            let badPattern = try await server.request(
                "POST", "/v1/webhooks", body: Self.body(["url": "https://127.0.0.1/x", "events": []]), headers: auth)
            #expect(badPattern.status == 422)
            let unknownField = try await server.request(
                "POST", "/v1/webhooks", body: Self.body(["url": "https://example.com/x", "events": ["#"], "retries": 3]), headers: auth)
            #expect(unknownField.status == 400 && unknownField.errorField == "retries")
            let notJSON = try await server.request("POST", "/v1/webhooks", body: Array("{".utf8), headers: auth)
            #expect(notJSON.status == 400 && notJSON.errorCode == "malformed_json")
        }

        @Test func aSubscriptionsWholeLifeOverHTTP() async throws {
            let harness = try await ConsumerHarness.make()
            defer { Task { await harness.tearDown() } }
            let server = try await Server.start(harness, environment: ["WARREN_WEBHOOK_ALLOW_PRIVATE": "1"])
            defer { _ = server.stop() }
            let auth = ["Authorization": "Bearer \(try HTTPServerTests.createKey(TestEnvironment.uniqueName("admin"), "--admin"))"]

            let created = try await server.request(
                "POST", "/v1/webhooks", body: Self.body(["url": "http://127.0.0.1:9/hooks", "events": ["user.*", "payment.#"], "description": "crm"]),
                headers: auth)
            #expect(created.status == 201)
            let id = try #require(created.json["id"]?.stringValue)
            let secret = try #require(created.json["secret"]?.stringValue)
            #expect(id.hasPrefix("wh_") && secret.hasPrefix("whsec_"))
            #expect(created.json["events"] == ["user.*", "payment.#"] && created.json["enabled"] == true)

            let shown = try await server.request("GET", "/v1/webhooks/\(id)", headers: auth)
            #expect(shown.status == 200 && shown.json["secret"] == nil, "the secret is shown only when created")
            let listed = try await server.request("GET", "/v1/webhooks", headers: auth)
            #expect(listed.json["webhooks"].map { "\($0)" }?.contains(id) == true)
            #expect(!(listed.json["webhooks"].map { "\($0)" }?.contains(secret) ?? true))

            let given = try await server.request(
                "POST", "/v1/webhooks", body: Self.body(["url": "http://127.0.0.1:9/b", "events": ["#"], "secret": "our-own-shared-secret-1234"]),
                headers: auth)
            #expect(given.status == 201 && given.json["secret"] == "our-own-shared-secret-1234")
            let shortSecret = try await server.request(
                "POST", "/v1/webhooks", body: Self.body(["url": "http://127.0.0.1:9/b", "events": ["#"], "secret": "short"]), headers: auth)
            #expect(shortSecret.status == 422 && shortSecret.errorField == "secret")

            let patched = try await server.request(
                "PATCH", "/v1/webhooks/\(id)", body: Self.body(["events": ["user.created"], "enabled": false]), headers: auth)
            #expect(patched.status == 200 && patched.json["events"] == ["user.created"] && patched.json["enabled"] == false)
            #expect(patched.json["disabled_reason"] == "disabled by an operator")
            let enabled = try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["enabled": true]), headers: auth)
            #expect(enabled.json["enabled"] == true && enabled.json["disabled_reason"] == .null)
            #expect(try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["enabled": "yes"]), headers: auth).status == 400)
            // Each field alone (the others keep their values).
            let moved = try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["url": "http://LOCALHOST:9/moved"]), headers: auth)
            #expect(moved.status == 200 && moved.json["url"] == "http://localhost:9/moved" && moved.json["enabled"] == true, "\(moved.json)")
            let described = try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["description": .null]), headers: auth)
            #expect(described.status == 200 && described.json["description"] == .null && described.json["events"] == ["user.created"])
            let nul = try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["description": "a\u{0}b"]), headers: auth)
            #expect(nul.status == 422 && nul.errorField == "description", "NUL is refused, not a database error")
            #expect(try await server.request("GET", "/v1/webhooks/wh_%00x", headers: auth).status == 404)
            #expect(try await server.request("PATCH", "/v1/webhooks/\(id)", body: Self.body(["events": ["a..b"]]), headers: auth).errorField == "events")

            let rotated = try await server.request("POST", "/v1/webhooks/\(id)/rotate-secret", headers: auth)
            #expect(rotated.status == 200)
            #expect(rotated.json["secret"]?.stringValue?.hasPrefix("whsec_") == true && rotated.json["secret"]?.stringValue != secret)
            #expect(rotated.json["previous_secret_expires_at"] != nil)

            let log = try await server.request("GET", "/v1/webhooks/\(id)/deliveries?limit=10", headers: auth)
            #expect(log.status == 200 && log.json["attempts"] == [])
            let retry = try await server.request("POST", "/v1/webhooks/\(id)/deliveries/nope/retry", headers: auth)
            #expect(retry.status == 404 && retry.errorCode == "not_found")

            #expect(try await server.request("DELETE", "/v1/webhooks/\(id)", headers: auth).status == 204)
            #expect(try await server.request("GET", "/v1/webhooks/\(id)", headers: auth).status == 404)
            #expect(try await server.request("DELETE", "/v1/webhooks/\(id)", headers: auth).status == 404)
            if let other = given.json["id"]?.stringValue { _ = try await server.request("DELETE", "/v1/webhooks/\(other)", headers: auth) }
        }

        @Test func theCLIManagesSubscriptionsWithOneLineErrors() throws {
            let (refusedStatus, refused) = try HTTPServerTests.warren(["webhooks", "create", "--url", "https://127.0.0.1/x", "--events", "user.*"])
            #expect(refusedStatus == 1)
            #expect(refused.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
            #expect(refused.contains("loopback"), "\(refused)")

            let lifted = ["WARREN_WEBHOOK_ALLOW_PRIVATE": "1"]
            let (status, output) = try HTTPServerTests.warren(
                ["webhooks", "create", "--url", "http://127.0.0.1:9/x", "--events", "user.*", "payment.*", "--description", "crm"], environment: lifted)
            #expect(status == 0, "\(output)")
            let fields = Dictionary(uniqueKeysWithValues: output.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: "\t", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            })
            let id = try #require(fields["id"])
            #expect(fields["secret"]?.hasPrefix("whsec_") == true)

            let (_, listed) = try HTTPServerTests.warren(["webhooks", "list", "--json"])
            let array = try JSONValue(parsing: Array(listed.utf8))
            guard case .array(let items) = array else { throw TestFailure("not an array: \(listed)") }
            let mine = try #require(items.first { $0["id"]?.stringValue == id })
            #expect(mine["events"] == ["user.*", "payment.*"] && mine["description"] == "crm" && mine["secret"] == nil)

            #expect(try HTTPServerTests.warren(["webhooks", "disable", id]).1.contains("disabled"))
            #expect(try HTTPServerTests.warren(["webhooks", "enable", id]).1.contains("enabled"))
            let (rotateStatus, rotated) = try HTTPServerTests.warren(["webhooks", "rotate", id])
            #expect(rotateStatus == 0 && rotated.hasPrefix("whsec_"))
            #expect(try HTTPServerTests.warren(["webhooks", "deliveries", id, "--json"]).1.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            let (retryStatus, retryOutput) = try HTTPServerTests.warren(["webhooks", "retry", id, "no-such-event"])
            #expect(retryStatus == 1 && retryOutput.contains("no delivery of event 'no-such-event'"))
            #expect(try HTTPServerTests.warren(["webhooks", "delete", id]).0 == 0)
            let (showStatus, shown) = try HTTPServerTests.warren(["webhooks", "show", id])
            #expect(showStatus == 1 && shown.contains("no webhook subscription"))
        }
    }
}
