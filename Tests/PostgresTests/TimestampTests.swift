import Foundation
import Testing

@testable import Postgres

@Suite struct TimestampTests {
    /// 2024-05-01 12:00:00 UTC.
    private let noonUTC = Date(timeIntervalSince1970: 1_714_564_800)

    @Test(arguments: [
        ("2024-05-01 12:00:00+00", 0.0),
        ("2024-05-01 12:00:00Z", 0.0),
        ("2024-05-01T12:00:00Z", 0.0),
        ("2024-05-01 12:00:00", 0.0),
        ("2024-05-01 17:30:00+05:30", 0.0),
        ("2024-05-01 17:30:00+0530", 0.0),
        ("2024-05-01 07:00:00-05", 0.0),
        ("2024-05-02 01:45:00+13:45", 0.0),
        ("2024-05-01 12:00:00.5+00", 0.5),
        ("2024-05-01 12:00:00.123456+00", 0.123456),
        ("2024-05-01 12:00:00.000001+00", 0.000001),
        ("2024-05-01 12:00:00.1234567+00", 0.123456),
    ])
    func parsesOffsetsAndFractions(text: String, fraction: Double) throws {
        let date = try #require(PostgresTimestamp.parse(text))
        #expect(abs(date.timeIntervalSince(noonUTC) - fraction) < 0.000_000_5)
    }

    @Test func parsesHistoricOffsetWithSeconds() throws {
        // PostgreSQL prints pre-1900 local mean time offsets with seconds, e.g. Amsterdam's +00:19:32.
        let date = try #require(PostgresTimestamp.parse("1900-01-01 00:19:32+00:19:32"))
        #expect(date == Date(timeIntervalSince1970: -2_208_988_800))
    }

    @Test func parsesBCAndDistantYears() throws {
        let bc = try #require(PostgresTimestamp.parse("0044-03-15 12:00:00+00 BC"))
        #expect(PostgresTimestamp.format(bc) == "0044-03-15 12:00:00.000000+00 BC")
        let far = try #require(PostgresTimestamp.parse("12345-01-01 00:00:00+00"))
        #expect(PostgresTimestamp.format(far) == "12345-01-01 00:00:00.000000+00")
    }

    @Test(arguments: ["", "infinity", "-infinity", "2024-05-01", "2024-13-01 00:00:00+00", "2024-05-01 12:00:00+",
        "2024-05-01 12:00:00.+00", "2024-05-01 12:00:00+00 garbage"])
    func rejectsWhatItCannotRepresent(text: String) {
        #expect(PostgresTimestamp.parse(text) == nil)
    }

    @Test func formatsUTCWithMicroseconds() {
        #expect(PostgresTimestamp.format(noonUTC) == "2024-05-01 12:00:00.000000+00")
        #expect(PostgresTimestamp.format(noonUTC.addingTimeInterval(0.123456)) == "2024-05-01 12:00:00.123456+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.000001)) == "1969-12-31 23:59:59.999999+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01 00:00:00.000000+00")
    }

    @Test func roundTripsAtMicrosecondPrecision() throws {
        for seconds in [0.0, 1_714_564_800.123456, -1_000_000_000.654321, 4_102_444_800.000001, 951_782_400] {
            let date = Date(timeIntervalSince1970: seconds)
            let parsed = try #require(PostgresTimestamp.parse(PostgresTimestamp.format(date)))
            #expect(abs(parsed.timeIntervalSince(date)) < 0.000_001)
            // A value that came from the server survives a second trip exactly.
            #expect(PostgresTimestamp.parse(PostgresTimestamp.format(parsed)) == parsed)
        }
    }
}
