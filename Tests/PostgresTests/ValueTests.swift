import Foundation
import Testing

@testable import Postgres

@Suite struct ValueTests {
    @Test func byteaHexDecodes() {
        #expect(PostgresBytea.decodeHex("\\x") == [])
        #expect(PostgresBytea.decodeHex("\\x00ff10Ab") == [0x00, 0xFF, 0x10, 0xAB])
        #expect(PostgresBytea.decodeHex("\\x0") == nil)
        #expect(PostgresBytea.decodeHex("\\xzz") == nil)
        #expect(PostgresBytea.decodeHex("00ff") == nil, "escape format is not accepted")
    }

    @Test func bytesAreSentAsBinary() {
        let value = PostgresValue([0, 1, 255] as [UInt8])
        #expect(value.payload == .binary([0, 1, 255]))
        #expect(value.type == .bytea)
        #expect(PostgresValue(Data([7])).payload == .binary([7]))
    }

    @Test func scalarsAreSentAsTypedText() {
        #expect(PostgresValue(42).payload == .text("42"))
        #expect(PostgresValue(42).type == .int8)
        #expect(PostgresValue(true).payload == .text("t"))
        #expect(PostgresValue(Double.infinity).payload == .text("Infinity"))
        #expect(PostgresValue(-Double.infinity).payload == .text("-Infinity"))
        #expect(PostgresValue(Double.nan).payload == .text("NaN"))
        #expect(PostgresValue("x").type == .unspecified, "lets a string fill uuid or jsonb columns")
        let id = UUID()
        #expect(PostgresValue(id).payload == .text(id.uuidString))
    }

    @Test func literalsBuildBindLists() {
        let binds: [PostgresValue?] = ["a", 1, true, 2.5, nil]
        #expect(binds.map { $0?.type } == [.unspecified, .int8, .bool, .float8, nil])
    }

    @Test func jsonIsEncoded() throws {
        struct Payload: Codable, Equatable { var amount: Int }
        let value = try PostgresValue.json(Payload(amount: 1999))
        #expect(value.payload == .text(#"{"amount":1999}"#))
        #expect(value.type == .jsonb)
    }

    @Test func interpolationsBecomeBinds() {
        let name = "Robert'); DROP TABLE students;--"
        let missing: Int? = nil
        let query: PostgresQuery = "SELECT * FROM \(identifier: "odd\"name") WHERE name = \(name) AND age = \(missing) LIMIT \(5)"
        #expect(query.sql == #"SELECT * FROM "odd""name" WHERE name = $1 AND age = $2 LIMIT $3"#)
        #expect(query.binds == [.init(name), nil, .init(5)])
    }

    @Test func nulInTextIsRejectedWithoutEchoingIt() {
        #expect {
            _ = try BindParameters(["ok", "secret\u{0}value"])
        } throws: { error in
            let error = error as? PostgresError
            return error?.code == .invalidValue && error?.description.contains("secret") == false
                && error?.message.contains("$2") == true
        }
    }
}

@Suite struct RowDecodingTests {
    private let row = PostgresRow(
        columns: [
            PostgresColumn(name: "name", type: .text),
            PostgresColumn(name: "age", type: .int4),
            PostgresColumn(name: "nickname", type: .varchar),
            PostgresColumn(name: "active", type: .bool),
            PostgresColumn(name: "blob", type: .bytea),
            PostgresColumn(name: "at", type: .timestamptz),
            PostgresColumn(name: "payload", type: .jsonb),
        ],
        cells: ["Ada", "36", nil, "t", "\\xdeadbeef", "2024-05-01 12:00:00.25+00", #"{"amount": 5}"#]
    )

    @Test func decodesByNameAndIndex() throws {
        #expect(try row.decode(String.self, "name") == "Ada")
        #expect(try row["age", as: Int.self] == 36)
        #expect(try row.decode(Int64.self, at: 1) == 36)
        #expect(try row[3, as: Bool.self] == true)
        #expect(try row.decode([UInt8].self, "blob") == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(try row.decode(Date.self, "at") == Date(timeIntervalSince1970: 1_714_564_800.25))
        #expect(try row.decode(String?.self, "nickname") == nil)
        #expect(try row.decode(String?.self, "name") == "Ada")
        struct Payload: Decodable, Equatable { var amount: Int }
        #expect(try row.decodeJSON(Payload.self, "payload") == Payload(amount: 5))
    }

    @Test func nullIntoNonOptionalIsAClearError() {
        #expect {
            try row.decode(String.self, "nickname")
        } throws: { error in
            (error as? PostgresError)?.code == .decoding && (error as? PostgresError)?.message.contains("nickname") == true
        }
    }

    @Test func typeMismatchNamesColumnAndTypesButNotTheValue() {
        #expect {
            try row.decode(Int.self, "name")
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .decoding && error.message.contains("name") && error.message.contains("text")
                && error.message.contains("Int") && !error.description.contains("Ada")
        }
    }

    @Test func unknownColumnIsAnError() {
        #expect(throws: PostgresError.self) { try row.decode(String.self, "nope") }
    }
}
