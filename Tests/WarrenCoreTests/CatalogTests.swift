import Foundation
import Testing
@testable import WarrenCore

@Suite struct CatalogTests {
    let catalog: EventCatalog

    init() throws {
        catalog = try EventCatalog(directory: catalogDirectory)
    }

    func event(_ type: String, _ data: JSONValue?) -> CloudEvent {
        CloudEvent(type: type, source: "/tests", data: data)
    }

    /// The error `validate` throws, or nil when the event is valid.
    func refusal(_ type: String, _ data: JSONValue?) -> EventError? {
        do {
            try catalog.validate(event(type, data))
            return nil
        } catch {
            return error
        }
    }

    static let validPayment: [String: JSONValue] = [
        "payment_id": "pi_1", "user_id": "usr_1", "amount": 1250, "currency": "EUR",
    ]

    @Test func knowsTheDocumentedTypes() {
        #expect(catalog.types == ["payment.failed", "payment.succeeded", "user.created", "user.deleted", "user.updated", "webhook.endpoint.disabled"])
        #expect(catalog.openPatterns == ["stripe.#"], "what /webhooks/stripe publishes for Stripe types Warren does not map")
        #expect(catalog.schema(for: "user.created") != nil)
        #expect(catalog.schema(for: "user.exploded") == nil)
    }

    @Test func everySchemaAcceptsItsOwnExamples() throws {
        for type in catalog.types {
            let path = catalogDirectory + "/\(type).schema.json"
            let json = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            guard case .array(let examples)? = json["examples"] else {
                Issue.record("\(type) has no examples")
                continue
            }
            for example in examples {
                #expect(refusal(type, example) == nil, "\(type): \(example)")
            }
        }
    }

    @Test func userCreated() {
        let valid: [String: JSONValue] = ["id": "usr_1", "name": "Ada Lovelace", "email": "ada@example.com"]
        #expect(refusal("user.created", .object(valid)) == nil)

        var missingEmail = valid
        missingEmail["email"] = nil
        #expect(refusal("user.created", .object(missingEmail)) == EventError(.schemaViolation, field: "data.email", "is required"))

        var badEmail = valid
        badEmail["email"] = "ada at example.com"
        #expect(refusal("user.created", .object(badEmail))?.description == "data.email: must be a valid email address")

        var emptyName = valid
        emptyName["name"] = ""
        #expect(refusal("user.created", .object(emptyName))?.description == "data.name: must be at least 1 character long")

        var longName = valid
        longName["name"] = .string(String(repeating: "é", count: 201))
        #expect(refusal("user.created", .object(longName))?.description == "data.name: must be at most 200 characters long")

        var extra = valid
        extra["password"] = "hunter2"
        #expect(
            refusal("user.created", .object(extra))
                == EventError(.schemaViolation, field: "data.password", "is not allowed (additionalProperties: false)"))
    }

    @Test func allViolationsAreReportedInOneError() throws {
        let error = try #require(refusal("user.created", ["id": 7, "nickname": "x"]))
        #expect(error.code == .schemaViolation)
        #expect(error.field == "data.name")
        #expect(
            error.description
                == "data.name: is required; data.email: is required; data.id: must be a string; data.nickname: is not allowed (additionalProperties: false)"
        )
    }

    @Test func dataThatIsNotAnObject() {
        #expect(refusal("user.deleted", nil)?.description == "data: must be an object")
        #expect(refusal("user.deleted", "usr_1")?.description == "data: must be an object")
    }

    @Test func userUpdatedNeedsAChange() {
        #expect(refusal("user.updated", ["id": "usr_1", "name": "Ada"]) == nil)
        #expect(refusal("user.updated", ["id": "usr_1", "email": "ada@example.org"]) == nil)
        #expect(refusal("user.updated", ["id": "usr_1", "name": "Ada", "email": "ada@example.org"]) == nil)
        let error = refusal("user.updated", ["id": "usr_1"])
        #expect(error?.field == "data")
        #expect(error?.message == "must match at least one anyOf branch: (data.name: is required) or (data.email: is required)")
        #expect(refusal("user.updated", ["name": "Ada"])?.description == "data.id: is required")
    }

    @Test func userDeleted() {
        #expect(refusal("user.deleted", ["id": "usr_1"]) == nil)
        #expect(refusal("user.deleted", [:])?.description == "data.id: is required")
        #expect(refusal("user.deleted", ["id": "usr_1", "name": "Ada"])?.field == "data.name")
    }

    @Test func paymentSucceeded() {
        #expect(refusal("payment.succeeded", .object(Self.validPayment)) == nil)

        var float = Self.validPayment
        float["amount"] = 12.5
        #expect(refusal("payment.succeeded", .object(float)) == EventError(.schemaViolation, field: "data.amount", "must be an integer"))

        var wholeFloat = Self.validPayment
        wholeFloat["amount"] = 1250.0
        #expect(refusal("payment.succeeded", .object(wholeFloat)) == nil)

        var negative = Self.validPayment
        negative["amount"] = -1
        #expect(refusal("payment.succeeded", .object(negative))?.description == "data.amount: must be at least 0")

        var text = Self.validPayment
        text["amount"] = "12.50"
        #expect(refusal("payment.succeeded", .object(text))?.description == "data.amount: must be an integer")

        var lowercase = Self.validPayment
        lowercase["currency"] = "eur"
        #expect(
            refusal("payment.succeeded", .object(lowercase))
                == EventError(.schemaViolation, field: "data.currency", "must match pattern ^[A-Z]{3}$"))

        var extra = Self.validPayment
        extra["card_number"] = "4242424242424242"
        #expect(refusal("payment.succeeded", .object(extra))?.description == "data.card_number: is not allowed (additionalProperties: false)")

        var missing = Self.validPayment
        missing["user_id"] = nil
        #expect(refusal("payment.succeeded", .object(missing))?.description == "data.user_id: is required")
    }

    @Test func paymentFailed() {
        var valid = Self.validPayment
        valid["failure_code"] = "card_declined"
        valid["failure_message"] = "Your card was declined."
        #expect(refusal("payment.failed", .object(valid)) == nil)
        #expect(refusal("payment.failed", .object(Self.validPayment))?.description == "data.failure_code: is required; data.failure_message: is required")

        var float = valid
        float["amount"] = 12.5
        #expect(refusal("payment.failed", .object(float))?.description == "data.amount: must be an integer")
    }

    @Test func unknownTypeIsRefusedNamingTheKnownOnes() throws {
        let error = try #require(refusal("user.exploded", ["id": "usr_1"]))
        #expect(error.code == .unknownType)
        #expect(error.field == "type")
        #expect(
            error.message
                == "unknown event type \"user.exploded\" (known types: payment.failed, payment.succeeded, user.created, user.deleted, user.updated, webhook.endpoint.disabled; open patterns: stripe.#)"
        )
    }

    @Test func openPatternsAcceptEventsWithoutSchema() throws {
        let directory = try temporaryCatalog([
            "catalog.json": #"{"open": ["test.*", "audit.#"]}"#,
            "user.deleted.schema.json": #"{"type": "object", "required": ["id"]}"#,
            "README.md": "not a schema",
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let catalog = try EventCatalog(directory: directory)
        #expect(catalog.types == ["user.deleted"])
        for type in ["test.ping", "audit", "audit.login.failed"] {
            #expect(throws: Never.self) { try catalog.validate(event(type, ["anything": [1, 2]])) }
        }
        #expect(catalog.isOpen("test.a.b") == false)
        #expect(throws: EventError.self) { try catalog.validate(event("test.a.b", nil)) }
        #expect(throws: EventError.self) { try catalog.validate(event("user.deleted", [:])) }
        do {
            try catalog.validate(event("billing.x", nil))
        } catch {
            #expect(error.message.hasSuffix("(known types: user.deleted; open patterns: test.*, audit.#)"))
        }
    }

    @Test func aMissingIndexMeansNoOpenPatterns() throws {
        let directory = try temporaryCatalog(["user.deleted.schema.json": "true"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try EventCatalog(directory: directory).openPatterns == [])
    }

    @Test(arguments: [
        ("catalog.json", #"{"open": "test.*"}"#, "catalog.json: #/open: must be an array of type patterns"),
        ("catalog.json", #"{"opne": ["test.*"]}"#, #"catalog.json: #/opne: unknown key (expected "open")"#),
        ("catalog.json", #"{"open": ["test.*x"]}"#, #"catalog.json: #/open/0: "test.*x" is not a topic pattern: dot-separated words, * or #"#),
        ("catalog.json", "{open: []}", "catalog.json: not valid JSON (invalid JSON at byte 1: expected a string key)"),
        ("user.created.schema.json", #"{"type": "text"}"#, "user.created.schema.json: #/type: unknown type \"text\" (known: null, boolean, object, array, number, integer, string)"),
        ("user.created.schema.json", #"{"properties": {"a": {"minimum": "0"}}}"#, "user.created.schema.json: #/properties/a/minimum: must be a number"),
        ("user..created.schema.json", "true", "user..created.schema.json: \"user..created\" is not an event type: use dot-separated words without * or #"),
    ])
    func loadErrorsNameTheFile(file: String, text: String, expected: String) throws {
        let directory = try temporaryCatalog([file: text])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect {
            try EventCatalog(directory: directory)
        } throws: { error in
            (error as? CatalogError)?.description == "\(directory)/\(expected)"
        }
    }

    @Test func aMissingDirectoryIsAClearError() {
        #expect(throws: CatalogError(.unreadable, file: "/nonexistent/events", "cannot list the event catalog directory")) {
            try EventCatalog(directory: "/nonexistent/events")
        }
    }
}
