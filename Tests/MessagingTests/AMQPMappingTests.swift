@testable import AMQP
import Foundation
import Messaging
import Testing
import WarrenCore

/// The CloudEvents → AMQP mapping is public contract: services in other languages and ops
/// tools read these properties.
@Suite struct AMQPMappingTests {
    @Test func everyContractFieldIsMapped() throws {
        let time = Date(timeIntervalSince1970: 1_714_557_600.250)
        let event = CloudEvent(
            type: "payment.succeeded", source: "/services/billing",
            data: ["payment_id": "p1", "user_id": "u1", "amount": 1250, "currency": "EUR"], id: "evt-1", time: time,
            subject: "p1")
        let message = event.amqpMessage(correlationID: "order-7", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(message.routingKey == "payment.succeeded")
        #expect(message.properties.contentType == "application/cloudevents+json")
        #expect(message.properties.deliveryMode == AMQPProperties.persistentDeliveryMode)
        #expect(message.properties.messageID == "evt-1")
        #expect(message.properties.type == "payment.succeeded")
        #expect(message.properties.appID == "/services/billing")
        #expect(message.properties.timestamp == 1_714_557_600)
        #expect(message.properties.correlationID == "order-7")
        #expect(message.properties.headers?["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        let back = try CloudEvent(jsonBytes: message.body)
        #expect(back == event)
        #expect(try JSONValue(parsing: message.body)["time"] == "2024-05-01T10:00:00.250Z")
    }

    @Test func withoutCorrelationOrTraceThereAreNoSuchProperties() {
        let message = CloudEvent(type: "user.deleted", source: "/s", data: ["id": "u"]).amqpMessage()
        #expect(message.properties.correlationID == nil)
        #expect(message.properties.headers == nil)
    }
}

/// What the AMQP mapping cannot carry is refused with the CloudEvents field named.
@Suite struct AMQPEncodableTests {
    @Test(arguments: ["id", "type", "source"])
    func attributesOverAShortStringAreRefusedByName(_ field: String) throws {
        var event = CloudEvent(type: "user.created", source: "/tests", data: ["id": "u1"])
        let long = String(repeating: "é", count: 128)  // 256 bytes, 128 characters
        switch field {
        case "id": event.id = long
        case "type": event.type = long
        default: event.source = long
        }
        let error = try #require(throws: EventError.self) { try event.validateForAMQP() }
        #expect(error.field == field)
        #expect(error.code == .invalidAttribute)
    }

    @Test func exactly255BytesIsFine() throws {
        var event = CloudEvent(type: "user.created", source: "/tests", data: ["id": "u1"])
        event.id = String(repeating: "x", count: 255)
        try event.validateForAMQP()
    }

    /// The trace travels in `traceparent`/`tracestate`: the event's own, else the trace of
    /// the task publishing it; a delivery gives it back.
    @Test func traceContextTravelsInHeaders() throws {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let event = CloudEvent(type: "user.created", source: "/t", data: nil, id: "e1")
        #expect(event.amqpMessage().properties.headers?["traceparent"] == nil)
        let current = try #require(TraceContext(traceparent: parent, tracestate: "v=1"))
        let message = TraceContext.$current.withValue(current) { event.amqpMessage() }
        #expect(message.properties.headers?["traceparent"] == .string(parent) && message.properties.headers?["tracestate"] == .string("v=1"))
        let delivery = AMQPDelivery(
            body: message.body, properties: message.properties, deliveryTag: 1, redelivered: false, exchange: "events",
            routingKey: "user.created", consumerTag: "c", messageCount: nil, channelID: 1, generation: 0)
        let received = try CloudEvent(delivery: delivery)
        #expect(received.traceContext == current)
    }
}
