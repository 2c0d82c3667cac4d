#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `timestamptz` text in and out, at PostgreSQL's microsecond precision.
///
/// Written by hand rather than with `ISO8601FormatStyle` because PostgreSQL's output
/// (`2024-05-01 12:00:00.123456+05:30`, `… BC`, offsets with seconds) is not quite ISO 8601,
/// and formatters round fractional seconds to milliseconds.
enum PostgresTimestamp {
    /// Days from 1970-01-01 to 2001-01-01, Foundation's reference date.
    private static let referenceDateDays: Int64 = 11_323
    private static let microsPerDay: Int64 = 86_400_000_000

    /// UTC, microseconds, e.g. `2024-05-01 06:30:00.000000+00`. Dates beyond PostgreSQL's range
    /// become `infinity`/`-infinity`, which is what the server would clamp them to in spirit.
    static func format(_ date: Date) -> String {
        let scaled = (date.timeIntervalSinceReferenceDate * 1_000_000).rounded()
        guard scaled.magnitude < 9.0e18 else { return scaled < 0 ? "-infinity" : "infinity" }
        let micros = Int64(scaled)
        let (days, microsOfDay) = floorDivide(micros, microsPerDay)
        let (year, month, day) = civilFromDays(days + referenceDateDays)
        let seconds = microsOfDay / 1_000_000
        let fraction = microsOfDay % 1_000_000
        let bc = year <= 0
        let result =
            "\(pad(bc ? 1 - year : year, 4))-\(pad(month, 2))-\(pad(day, 2)) "
            + "\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2)).\(pad(fraction, 6))+00"
        return bc ? result + " BC" : result
    }

    /// Parses PostgreSQL's ISO output and ISO 8601: `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z|±HH[[:]MM[[:]SS]]][ BC]`.
    /// No offset means UTC (a `timestamp` column, read in Warren's UTC session).
    static func parse(_ text: String) -> Date? {
        var scanner = Scanner(Array(text.utf8))
        guard let rawYear = scanner.number(minDigits: 4, maxDigits: 9), scanner.skip("-"),
            let month = scanner.number(minDigits: 2, maxDigits: 2), scanner.skip("-"),
            let day = scanner.number(minDigits: 2, maxDigits: 2), scanner.skip(" ") || scanner.skip("T"),
            let hour = scanner.number(minDigits: 2, maxDigits: 2), scanner.skip(":"),
            let minute = scanner.number(minDigits: 2, maxDigits: 2), scanner.skip(":"),
            let second = scanner.number(minDigits: 2, maxDigits: 2),
            (1...12).contains(month), (1...31).contains(day), hour <= 24, minute <= 59, second <= 60
        else { return nil }

        var micros: Int64 = 0
        if scanner.skip(".") {
            let digits = scanner.digits()
            guard !digits.isEmpty else { return nil }
            // Beyond microseconds is finer than PostgreSQL stores: truncate.
            for index in 0..<6 { micros = micros * 10 + (index < digits.count ? Int64(digits[index]) : 0) }
        }

        var offsetSeconds: Int64 = 0
        if scanner.skip("Z") {
            offsetSeconds = 0
        } else if let sign: Int64 = scanner.skip("+") ? 1 : scanner.skip("-") ? -1 : nil {
            guard let offsetHours = scanner.number(minDigits: 2, maxDigits: 2) else { return nil }
            var offset = offsetHours * 3600
            for unit: Int64 in [60, 1] {
                let hadColon = scanner.skip(":")
                guard let value = scanner.number(minDigits: 2, maxDigits: 2) else {
                    if hadColon { return nil }
                    break
                }
                offset += value * unit
            }
            offsetSeconds = sign * offset
        }
        let year = scanner.skip(" BC") ? 1 - rawYear : rawYear
        guard scanner.isAtEnd else { return nil }

        let days = daysFromCivil(year: year, month: month, day: day) - referenceDateDays
        let secondsOfDay = hour * 3600 + minute * 60 + second - offsetSeconds
        let total = (days * 86_400 + secondsOfDay) * 1_000_000 + micros
        return Date(timeIntervalSinceReferenceDate: Double(total) / 1_000_000)
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, astronomical years).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400).quotient
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097).quotient
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (quotient: Int64, remainder: Int64) {
        let quotient = a / b - (a % b < 0 ? 1 : 0)
        return (quotient, a - quotient * b)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var isAtEnd: Bool { index == bytes.count }

        mutating func skip(_ literal: String) -> Bool {
            let literal = Array(literal.utf8)
            guard bytes[index...].starts(with: literal) else { return false }
            index += literal.count
            return true
        }

        mutating func digits(max: Int = .max) -> [UInt8] {
            var result: [UInt8] = []
            while result.count < max, index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                result.append(bytes[index] - UInt8(ascii: "0"))
                index += 1
            }
            return result
        }

        mutating func number(minDigits: Int, maxDigits: Int) -> Int64? {
            let start = index
            let digits = digits(max: maxDigits)
            guard (minDigits...maxDigits).contains(digits.count) else {
                index = start
                return nil
            }
            return digits.reduce(0) { $0 * 10 + Int64($1) }
        }
    }
}
