#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A result column's name and type, shared by every row of a result.
public struct PostgresColumn: Sendable, Hashable {
    public let name: String
    public let type: PostgresDataType
}

/// One row of a query result, copied out of libpq: it outlives the connection.
public struct PostgresRow: Sendable {
    public let columns: [PostgresColumn]
    /// Text-format cells; nil is SQL NULL.
    let cells: [String?]

    init(columns: [PostgresColumn], cells: [String?]) {
        self.columns = columns
        self.cells = cells
    }

    /// Decodes the first column named `column` (PostgreSQL allows duplicate names).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ column: String) throws -> T {
        guard let index = columns.firstIndex(where: { $0.name == column }) else {
            throw PostgresError(
                code: .decoding,
                message: "no column named \(column); columns: \(columns.map(\.name).joined(separator: ", "))",
                context: column
            )
        }
        return try decode(type, at: index)
    }

    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at index: Int) throws -> T {
        guard columns.indices.contains(index) else {
            throw PostgresError(
                code: .decoding,
                message: "column index \(index) out of range; the row has \(columns.count) columns"
            )
        }
        let column = columns[index]
        guard let text = cells[index] else {
            if let nullable = T.self as? any PostgresNullDecodable.Type, let null = nullable.postgresNull as? T {
                return null
            }
            throw PostgresError(
                code: .decoding,
                message: "column \(column.name) is NULL; decode \(T.self)? to accept NULL",
                column: column.name,
                context: column.name
            )
        }
        guard let value = T(postgresText: text, type: column.type) else {
            // The cell's text is not in the message: it may be personal data.
            throw PostgresError(
                code: .decoding,
                message: "cannot decode column \(column.name) of type \(column.type) as \(T.self)",
                column: column.name,
                context: column.name
            )
        }
        return value
    }

    /// `json`/`jsonb` (or text) column decoded with `JSONDecoder`.
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self, _ column: String, decoder: JSONDecoder = JSONDecoder())
        throws -> T
    {
        let text = try decode(String.self, column)
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw PostgresError(
                code: .decoding,
                message: "column \(column) is not valid JSON for \(T.self)",
                column: column,
                context: column
            )
        }
    }

    public subscript<T: PostgresDecodable>(column: String, as type: T.Type) -> T {
        get throws { try decode(type, column) }
    }

    public subscript<T: PostgresDecodable>(index: Int, as type: T.Type) -> T {
        get throws { try decode(type, at: index) }
    }
}
