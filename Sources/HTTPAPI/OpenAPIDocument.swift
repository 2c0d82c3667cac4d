/// The OpenAPI 3.1 document of Warren's HTTP surface, served at `GET /openapi.json` and
/// printed by `warren serve --openapi`. `OpenAPITests` checks it lists exactly the routes
/// `Routes` registers, and `HTTPServerTests` that each route answers as documented.
public enum OpenAPIDocument {
    public static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Warren HTTP API",
    "version": "1.0.0",
    "description": "What `warren serve` (and `warren run`) answer. Nothing is answered 2xx before the broker confirmed what the request published. Every error body is an Error object."
  },
  "servers": [{ "url": "http://127.0.0.1:8080" }],
  "paths": {
    "/healthz": {
      "get": {
        "summary": "The process is up.",
        "operationId": "health",
        "responses": { "200": { "description": "Up.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } } }
      }
    },
    "/readyz": {
      "get": {
        "summary": "The broker is connected and not blocked, and the database answers.",
        "operationId": "ready",
        "responses": {
          "200": { "description": "Ready.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } },
          "503": { "description": "Not ready; `problems` names the broker and/or database.", "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "summary": "This document.",
        "operationId": "openapi",
        "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } } }
      }
    },
    "/v1/events": {
      "post": {
        "summary": "Publish one event or an array of events, in order.",
        "operationId": "publishEvents",
        "security": [{ "apiKey": [] }],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": { "oneOf": [{ "$ref": "#/components/schemas/EventInput" }, { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/EventInput" } }] }
            }
          }
        },
        "responses": {
          "202": { "description": "Every event was confirmed by the broker.", "content": { "application/json": { "schema": { "type": "object", "required": ["ids"], "properties": { "ids": { "type": "array", "items": { "type": "string" } } } } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "description": "The key may not publish this type (`type_not_allowed`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "413": { "$ref": "#/components/responses/TooLarge" },
          "422": { "description": "No queue is bound for the type (`unroutable`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "429": { "description": "Over the key's rate (`rate_limited`).", "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/webhooks/stripe": {
      "post": {
        "summary": "A Stripe webhook (Stripe-Signature); payment_intent.succeeded / payment_intent.payment_failed become payment.succeeded / payment.failed, other types stripe.<type>.",
        "operationId": "stripeWebhook",
        "parameters": [{ "name": "Stripe-Signature", "in": "header", "required": true, "schema": { "type": "string" }, "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">" }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": {
          "200": { "$ref": "#/components/responses/WebhookAccepted" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "description": "STRIPE_WEBHOOK_SECRET is not set (`not_configured`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "413": { "$ref": "#/components/responses/TooLarge" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/webhooks/{source}": {
      "post": {
        "summary": "A webhook of a source configured in webhooks/sources.yaml (x-signature or Standard Webhooks).",
        "operationId": "sourceWebhook",
        "parameters": [
          { "name": "source", "in": "path", "required": true, "schema": { "type": "string" } },
          { "name": "webhook-id", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Standard Webhooks sources." },
          { "name": "webhook-timestamp", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Standard Webhooks sources: unix seconds." },
          { "name": "webhook-signature", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Standard Webhooks sources: space-separated v1,<base64>." }
        ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": {
          "200": { "$ref": "#/components/responses/WebhookAccepted" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "description": "Unknown source (`unknown_source`) or no secret set (`not_configured`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "413": { "$ref": "#/components/responses/TooLarge" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    }
  },
  "components": {
    "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "A key from `warren keys create`." } },
    "headers": { "RetryAfter": { "description": "Seconds to wait before retrying.", "schema": { "type": "integer" } } },
    "schemas": {
      "Status": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" }, "problems": { "type": "object", "additionalProperties": { "type": "string" } } } },
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
              "code": { "type": "string", "enum": ["unauthorized", "invalid_signature", "type_not_allowed", "invalid_event", "malformed_json", "too_large", "rate_limited", "unroutable", "unavailable", "not_configured", "unknown_source", "internal"] },
              "message": { "type": "string" },
              "field": { "type": "string", "description": "The JSON path of the offending field, `[i].` prefixed in an array." }
            }
          }
        }
      },
      "EventInput": {
        "description": "A CloudEvent 1.0 in structured mode (has specversion), or the short form.",
        "type": "object",
        "required": ["type"],
        "properties": {
          "specversion": { "const": "1.0" },
          "id": { "type": "string" },
          "source": { "type": "string" },
          "type": { "type": "string" },
          "subject": { "type": "string" },
          "time": { "type": "string", "format": "date-time" },
          "datacontenttype": { "type": "string" },
          "data": {}
        }
      },
      "WebhookAnswer": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" }, "type": { "type": "string" }, "duplicate": { "type": "boolean" } } }
    },
    "responses": {
      "BadRequest": { "description": "Malformed JSON (`malformed_json`) or an invalid event (`invalid_event`, with `field`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "Missing, unknown or revoked key (`unauthorized`), or a missing or non-verifying signature (`invalid_signature`, naming the header).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "TooLarge": { "description": "Body over WARREN_HTTP_MAX_BODY (`too_large`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "The broker is unreachable or blocked, or the exchange is missing (`unavailable`); nothing was lost, retry.", "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "WebhookAccepted": { "description": "Published and confirmed, or (`duplicate`: true) a delivery id seen before, not published again.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WebhookAnswer" } } } }
    }
  }
}
"""#
}
