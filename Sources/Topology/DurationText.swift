/// Durations as topology files write them: a whole number and a unit, `500ms`, `5s`,
/// `2m`, `1h`. Whole milliseconds only, because that is what `x-message-ttl` can hold.
public enum DurationText {
    private static let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]

    /// The duration `text` writes, or nil if it is not `<digits><unit>`.
    public static func parse(_ text: String) -> Duration? {
        // "ms" before "m" and "s": the longest suffix that fits wins.
        for (suffix, scale) in units.sorted(by: { $0.suffix.count > $1.suffix.count }) where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy(\.isASCII), number.allSatisfy(\.isNumber),
                  let value = Int64(number), case let (ms, overflow) = value.multipliedReportingOverflow(by: scale), !overflow
            else { return nil }
            return .milliseconds(ms)
        }
        return nil
    }

    /// The shortest way to write `duration` in the largest unit that divides it: `2m`, `90s`.
    public static func format(_ duration: Duration) -> String {
        let ms = milliseconds(duration)
        for (suffix, scale) in units.reversed() where ms != 0 && ms % scale == 0 {
            return "\(ms / scale)\(suffix)"
        }
        return "\(ms)ms"
    }

    /// Whole milliseconds (truncated), as `x-message-ttl` wants them.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
