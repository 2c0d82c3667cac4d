import Foundation

/// Rows (the header first) as aligned columns, two spaces apart, no trailing spaces: the
/// tables `warren dlq list` and `warren status` print.
func textTable(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max()! }
    return rows.map { tableLine($0, widths) }.joined(separator: "\n")
}

/// One row padded to `widths` (a longer cell is never cut), two spaces apart, no trailing spaces.
private func tableLine(_ row: [String], _ widths: [Int]) -> String {
    zip(row, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: "  ")
        .trimmingCharacters(in: .whitespaces)
}

/// A `textTable` printed as rows come, for listings too long to hold: the first `sample`
/// rows are held to size the columns, then printed, and later rows are padded to those
/// widths (a longer cell pushes the rest of its row right, it is never cut).
struct StreamingTable {
    private var held: [[String]]
    private var widths: [Int]?
    private let sample: Int

    init(header: [String], sample: Int = 200) {
        held = [header]
        self.sample = sample
    }

    mutating func add(_ row: [String]) {
        guard let widths else {
            held.append(row)
            if held.count > sample { flush() }
            return
        }
        print(tableLine(row, widths))
    }

    /// Prints what is still held; nothing, not even the header, when no row came.
    mutating func finish() {
        if widths == nil, held.count > 1 { flush() }
    }

    private mutating func flush() {
        let widths = held[0].indices.map { column in held.map { $0[column].count }.max()! }
        for row in held { print(tableLine(row, widths)) }
        held = []
        self.widths = widths
    }
}
