import Redis
import Testing

@Suite struct RedisConfigurationTests {
    @Test func parsesHostPortDatabaseAndCredentials() throws {
        let plain = try RedisConfiguration(url: "redis://127.0.0.1:6379/0")
        #expect(plain.host == "127.0.0.1" && plain.port == 6379 && plain.database == 0 && plain.password == nil)
        let full = try RedisConfiguration(url: "redis://warren:s%40cret@cache.internal:6380/3")
        #expect(full.host == "cache.internal" && full.port == 6380 && full.database == 3)
        #expect(full.username == "warren" && full.password == "s@cret")
        let passwordOnly = try RedisConfiguration(url: "redis://:hunter2@localhost")
        #expect(passwordOnly.username == nil && passwordOnly.password == "hunter2" && passwordOnly.port == 6379)
        let ipv6 = try RedisConfiguration(url: "redis://[::1]:6379")
        #expect(ipv6.host == "::1")
    }

    @Test func descriptionNeverShowsThePassword() throws {
        let configuration = try RedisConfiguration(url: "redis://warren:hunter2@cache:6379/1")
        #expect(configuration.description == "redis://warren:***@cache:6379/1")
        #expect(!"\(configuration)".contains("hunter2"))
    }

    @Test func refusesWhatItCannotUseInOneLineWithoutTheURL() {
        let cases: [(String, String)] = [
            ("rediss://:hunter2@cache:6380", "TLS"),
            ("http://cache:6379", "redis://"),
            ("redis://:hunter2@cache:6379/zero", "database number"), ("redis://user:1234/s3cret@cache", "database number"),
            ("redis://:hunter2@cache:99999", "port"),
            ("redis://user@cache", "without a password"),
            ("redis://:hunter2@cache:6379/0?timeout=1", "query"),
            ("not a url", "not a URL"),
        ]
        for (url, expected) in cases {
            #expect {
                _ = try RedisConfiguration(url: url)
            } throws: { error in
                guard let error = error as? RedisError, error.kind == .configuration else { return false }
                return error.message.contains(expected) && !error.description.contains("hunter2") && !error.description.contains("s3cret") && !error.description.contains("\n")
            }
        }
    }
}

@Suite struct RedisAvailabilityTests {
    /// The state machine with times as offsets from one start, each call's result returned.
    struct Machine {
        let start = ContinuousClock.now
        var availability = RedisAvailability(probeInterval: .seconds(1))
        mutating func maySend(_ at: Duration) -> Bool { availability.maySend(at: start + at) }
        mutating func failed(_ at: Duration) -> RedisAvailability.Transition? { availability.failed(at: start + at) }
        mutating func succeeded(_ at: Duration) -> RedisAvailability.Transition? { availability.succeeded(at: start + at) }
    }

    @Test func upSendsEverythingAndTheFirstFailureTurnsItDownOnce() {
        var machine = Machine()
        let sent = [machine.maySend(.zero), machine.maySend(.zero)]
        #expect(sent == [true, true])
        let first = machine.failed(.zero)
        // Calls that were already in flight fail too: no second "went down".
        let second = machine.failed(.milliseconds(5))
        #expect(first == .wentDown && second == nil)
        #expect(!machine.availability.isUp)
    }

    @Test func downFailsFastAndLetsOneProbeThroughPerInterval() {
        var machine = Machine()
        _ = machine.failed(.zero)
        var sent = [machine.maySend(.milliseconds(10)), machine.maySend(.milliseconds(999))]
        sent.append(machine.maySend(.seconds(1)))  // the probe
        sent.append(machine.maySend(.milliseconds(1001)))  // only one per interval
        _ = machine.failed(.milliseconds(1500))  // the probe failed: the next one waits an interval from now
        sent.append(machine.maySend(.milliseconds(2000)))
        sent.append(machine.maySend(.milliseconds(2500)))
        #expect(sent == [false, false, true, false, false, true])
    }

    @Test func lateResultsOfCommandsSentBeforeAChangeAreIgnored() {
        var machine = Machine()
        _ = machine.failed(.seconds(10))  // down at 10 s
        // A reply to a command sent at 9 s, arriving at 11 s: old news, still down.
        let late = machine.availability.succeeded(at: machine.start + .seconds(11), sentAt: machine.start + .seconds(9))
        #expect(late == nil && !machine.availability.isUp)
        let recovered = machine.availability.succeeded(at: machine.start + .seconds(12), sentAt: machine.start + .seconds(12))
        #expect(recovered == .recovered(outage: .seconds(2)))
        // A timeout of a command sent during the outage, reported after the recovery: not a new outage.
        let stale = machine.availability.failed(at: machine.start + .seconds(12.5), sentAt: machine.start + .seconds(11.5))
        #expect(stale == nil && machine.availability.isUp)
        let fresh = machine.availability.failed(at: machine.start + .seconds(13), sentAt: machine.start + .seconds(12.8))
        #expect(fresh == .wentDown)
    }

    @Test func aSuccessRecoversAndReportsTheOutage() {
        var machine = Machine()
        let whileUp = machine.succeeded(.zero)  // up stays up, nothing to report
        _ = machine.failed(.zero)
        let recovered = machine.succeeded(.seconds(3))
        let sends = machine.maySend(.seconds(3))
        #expect(whileUp == nil && recovered == .recovered(outage: .seconds(3)) && sends)
        #expect(machine.availability.isUp)
    }
}
