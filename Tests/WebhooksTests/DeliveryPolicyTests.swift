import Foundation
import Testing
@testable import Webhooks

@Suite struct DeliveryPolicyTests {
    let policy = DeliveryPolicy()

    @Test func theDefaultScheduleIsSevenRetriesOverAboutADay() {
        #expect(policy.schedule == [.seconds(5), .seconds(300), .seconds(1_800), .seconds(7_200), .seconds(18_000), .seconds(36_000), .seconds(36_000)])
        #expect(policy.maximumAttempts == 8)
        #expect(policy.timeout == .seconds(15))
        #expect(policy.disableAfter == .seconds(5 * 86_400))
    }

    @Test func twoHundredsAreDelivered() {
        for status in [200, 201, 202, 204, 299] { #expect(policy.decide(.response(status: status, retryAfter: nil), attempt: 1) == .delivered) }
    }

    @Test func goneDisables() {
        #expect(policy.decide(.response(status: 410, retryAfter: nil), attempt: 1) == .gone)
        #expect(policy.decide(.response(status: 410, retryAfter: nil), attempt: 8) == .gone)
    }

    @Test func serverErrorsThrottlingAndTimeoutsAreRetriedOnTheSchedule() {
        let retried: [AttemptResult] = [
            .response(status: 500, retryAfter: nil), .response(status: 503, retryAfter: nil), .response(status: 429, retryAfter: nil),
            .response(status: 408, retryAfter: nil), .timedOut, .failed("connection refused"),
        ]
        for result in retried {
            #expect(policy.decide(result, attempt: 1) == .retry(after: .seconds(5)), "\(result)")
            #expect(policy.decide(result, attempt: 2) == .retry(after: .seconds(300)), "\(result)")
            #expect(policy.decide(result, attempt: 7) == .retry(after: .seconds(36_000)), "\(result)")
            #expect(policy.decide(result, attempt: 8) == .failed, "after the last attempt: \(result)")
        }
    }

    @Test func redirectsAndOtherClientErrorsFailAtOnce() {
        for status in [301, 302, 307, 308, 400, 401, 403, 404, 422, 100] {
            #expect(policy.decide(.response(status: status, retryAfter: nil), attempt: 1) == .failed, "\(status)")
        }
    }

    @Test func retryAfterIsHonouredWhenLongerAndCapped() {
        #expect(policy.decide(.response(status: 429, retryAfter: .seconds(60)), attempt: 1) == .retry(after: .seconds(60)))
        #expect(policy.decide(.response(status: 503, retryAfter: .seconds(1)), attempt: 1) == .retry(after: .seconds(5)), "shorter: the schedule wins")
        #expect(policy.decide(.response(status: 429, retryAfter: .seconds(10 * 86_400)), attempt: 1) == .retry(after: .seconds(86_400)))
        #expect(policy.decide(.response(status: 429, retryAfter: .seconds(60)), attempt: 8) == .failed)
    }

    @Test func readsRetryAfterAsSecondsOrHTTPDate() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(DeliveryPolicy.retryAfter("120", now: now) == .seconds(120))
        #expect(DeliveryPolicy.retryAfter("Tue, 14 Nov 2023 22:15:20 GMT", now: now) == .seconds(120))
        #expect(DeliveryPolicy.retryAfter("-1", now: now) == nil)
        #expect(DeliveryPolicy.retryAfter("soon", now: now) == nil)
        #expect(DeliveryPolicy.retryAfter(nil, now: now) == nil)
    }

    @Test func settingsComeFromTheEnvironmentWithClearErrors() throws {
        let settings = try WebhookDispatcherSettings.from(environment: [
            "WARREN_WEBHOOK_TIMEOUT": "2", "WARREN_WEBHOOK_RETRY_SCHEDULE": "1,0.5", "WARREN_WEBHOOK_CONCURRENCY": "3", "WARREN_WEBHOOK_RATE": "0",
        ])
        #expect(settings.policy.timeout == .seconds(2))
        #expect(settings.policy.schedule == [.seconds(1), .milliseconds(500)])
        #expect(settings.perSubscriptionConcurrency == 3)
        #expect(settings.ratePerSecond == nil)
        #expect(throws: WebhookError.self) { try WebhookDispatcherSettings.from(environment: ["WARREN_WEBHOOK_TIMEOUT": "never"]) }
        #expect(throws: WebhookError.self) { try WebhookDispatcherSettings.from(environment: ["WARREN_WEBHOOK_CONCURRENCY": "0"]) }
    }
}
