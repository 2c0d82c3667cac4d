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
        "summary": "The broker is connected and not blocked, the database answers, and (warren run) every consumer is subscribed.",
        "operationId": "ready",
        "responses": {
          "200": { "description": "Ready.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } },
          "503": { "description": "Not ready; `problems` names each failing check (broker, database, consumers) and why.", "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Status" } } } }
        }
      }
    },
    "/metrics": {
      "get": {
        "summary": "Every metric in the Prometheus text format (the README's metrics table).",
        "operationId": "metrics",
        "responses": { "200": { "description": "Prometheus text format 0.0.4.", "content": { "text/plain": { "schema": { "type": "string" } } } } }
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
    "/v1/webhooks": {
      "post": {
        "summary": "Subscribe a URL to events (admin key). The secret (given, or a new whsec_ one) is shown only in this answer.",
        "operationId": "createWebhook",
        "security": [{ "apiKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WebhookInput" } } } },
        "responses": {
          "201": { "description": "Created.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WebhookWithSecret" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "422": { "$ref": "#/components/responses/InvalidWebhook" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      },
      "get": {
        "summary": "List subscriptions (admin key); never their secrets.",
        "operationId": "listWebhooks",
        "security": [{ "apiKey": [] }],
        "responses": {
          "200": { "description": "The subscriptions.", "content": { "application/json": { "schema": { "type": "object", "required": ["webhooks"], "properties": { "webhooks": { "type": "array", "items": { "$ref": "#/components/schemas/Webhook" } } } } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" }
        }
      }
    },
    "/v1/webhooks/{id}": {
      "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "get": {
        "summary": "One subscription (admin key).",
        "operationId": "getWebhook",
        "security": [{ "apiKey": [] }],
        "responses": {
          "200": { "description": "The subscription.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Webhook" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" }
        }
      },
      "patch": {
        "summary": "Change url, events, enabled or description (admin key). Enabling clears the failure record.",
        "operationId": "updateWebhook",
        "security": [{ "apiKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "url": { "type": "string" }, "events": { "type": "array", "items": { "type": "string" } }, "enabled": { "type": "boolean" }, "description": { "type": ["string", "null"] } } } } } },
        "responses": {
          "200": { "description": "The changed subscription.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Webhook" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "422": { "$ref": "#/components/responses/InvalidWebhook" }
        }
      },
      "delete": {
        "summary": "Delete the subscription, its pending deliveries and its log (admin key).",
        "operationId": "deleteWebhook",
        "security": [{ "apiKey": [] }],
        "responses": {
          "204": { "description": "Deleted." },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" }
        }
      }
    },
    "/v1/webhooks/{id}/rotate-secret": {
      "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": {
        "summary": "A new secret (given, or a new whsec_ one) signs from now on; the old one keeps signing beside it for 24 h (admin key).",
        "operationId": "rotateWebhookSecret",
        "security": [{ "apiKey": [] }],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "secret": { "type": "string" } } } } } },
        "responses": {
          "200": { "description": "The subscription with its new secret, shown only here.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WebhookWithSecret" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "422": { "$ref": "#/components/responses/InvalidWebhook" }
        }
      }
    },
    "/v1/webhooks/{id}/deliveries": {
      "parameters": [
        { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
        { "name": "event", "in": "query", "required": false, "schema": { "type": "string" }, "description": "Only this event's attempts." },
        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
        { "name": "before", "in": "query", "required": false, "schema": { "type": "integer" }, "description": "Attempts older than this attempt id (the previous page's next_before)." }
      ],
      "get": {
        "summary": "The delivery log, newest attempt first (admin key).",
        "operationId": "listWebhookDeliveries",
        "security": [{ "apiKey": [] }],
        "responses": {
          "200": { "description": "Attempts.", "content": { "application/json": { "schema": { "type": "object", "required": ["attempts"], "properties": { "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/DeliveryAttempt" } }, "next_before": { "type": "integer" } } } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" }
        }
      }
    },
    "/v1/webhooks/{id}/deliveries/{event}/retry": {
      "parameters": [
        { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
        { "name": "event", "in": "path", "required": true, "schema": { "type": "string" } }
      ],
      "post": {
        "summary": "Send the event to the subscription again, now, with a full retry schedule and the same webhook-id (admin key).",
        "operationId": "retryWebhookDelivery",
        "security": [{ "apiKey": [] }],
        "responses": {
          "202": { "description": "Pending.", "content": { "application/json": { "schema": { "type": "object" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/AdminRequired" },
          "404": { "$ref": "#/components/responses/NotFound" }
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
          "409": { "$ref": "#/components/responses/InProgress" },
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
          "409": { "$ref": "#/components/responses/InProgress" },
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
              "code": { "type": "string", "enum": ["unauthorized", "invalid_signature", "type_not_allowed", "invalid_event", "malformed_json", "too_large", "rate_limited", "unroutable", "unavailable", "not_configured", "unknown_source", "admin_required", "invalid_webhook", "not_found", "unknown_route", "method_not_allowed", "http_error", "internal"] },
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
      "WebhookInput": {
        "type": "object",
        "required": ["url", "events"],
        "additionalProperties": false,
        "properties": {
          "url": { "type": "string", "description": "https:// to a public address (see WARREN_WEBHOOK_HTTP_HOSTS, WARREN_WEBHOOK_ALLOW_PRIVATE)." },
          "events": { "type": "array", "minItems": 1, "items": { "type": "string" }, "description": "Event-type patterns: * one word, # any." },
          "secret": { "type": "string", "description": "16-256 bytes; whsec_<base64> keys Standard Webhooks signatures with the decoded bytes." },
          "description": { "type": "string" }
        }
      },
      "Webhook": {
        "type": "object",
        "required": ["id", "url", "events", "enabled", "created_at", "updated_at"],
        "properties": {
          "id": { "type": "string" }, "url": { "type": "string" }, "events": { "type": "array", "items": { "type": "string" } },
          "description": { "type": ["string", "null"] }, "enabled": { "type": "boolean" }, "disabled_reason": { "type": ["string", "null"] },
          "failing_since": { "type": ["string", "null"], "format": "date-time" },
          "previous_secret_expires_at": { "type": "string", "format": "date-time", "description": "While a rotation overlaps." },
          "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" }
        }
      },
      "WebhookWithSecret": { "allOf": [{ "$ref": "#/components/schemas/Webhook" }, { "type": "object", "required": ["secret"], "properties": { "secret": { "type": "string" } } }] },
      "DeliveryAttempt": {
        "type": "object",
        "required": ["id", "event_id", "attempt", "attempted_at", "latency_ms", "outcome"],
        "properties": {
          "id": { "type": "integer" }, "event_id": { "type": "string" }, "attempt": { "type": "integer" },
          "attempted_at": { "type": "string", "format": "date-time" }, "status_code": { "type": ["integer", "null"] },
          "latency_ms": { "type": "number" }, "outcome": { "type": "string", "enum": ["delivered", "retry", "failed", "gone"] },
          "error": { "type": ["string", "null"] }
        }
      },
      "WebhookAnswer": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" }, "type": { "type": "string" }, "duplicate": { "type": "boolean" } } }
    },
    "responses": {
      "AdminRequired": { "description": "The key is not an admin key (`admin_required`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InvalidWebhook": { "description": "The subscription cannot be stored as asked (`invalid_webhook`, with `field`): a refused URL, a bad pattern or secret.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "No such subscription or delivery (`not_found`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "BadRequest": { "description": "Malformed JSON (`malformed_json`) or an invalid event (`invalid_event`, with `field`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "Missing, unknown or revoked key (`unauthorized`), or a missing or non-verifying signature (`invalid_signature`, naming the header).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "TooLarge": { "description": "Body over WARREN_HTTP_MAX_BODY (`too_large`).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "The broker is unreachable or blocked, or the exchange is missing (`unavailable`); nothing was lost, retry.", "headers": { "Retry-After": { "$ref": "#/components/headers/RetryAfter" } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InProgress": { "description": "Another request is publishing this delivery right now (`in_progress`, with Redis); retry after `Retry-After`.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "WebhookAccepted": { "description": "Published and confirmed, or (`duplicate`: true) a delivery id seen before, not published again.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/WebhookAnswer" } } } }
    }
  }
}
"""#
}
