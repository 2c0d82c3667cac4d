import Testing

@testable import Postgres

@Suite struct ErrorTests {
    @Test func descriptionLeavesOutDetailAndQuery() {
        let error = PostgresError(
            code: .queryFailed,
            message: #"duplicate key value violates unique constraint "users_email_key""#,
            sqlState: "23505",
            detail: "Key (email)=(alice@example.com) already exists.",
            constraint: "users_email_key",
            table: "users",
            query: "INSERT INTO users (email) VALUES ($1)"
        )
        #expect(error.description.contains("23505"))
        #expect(error.description.contains("users_email_key"))
        #expect(!error.description.contains("alice@example.com"))
        #expect(!error.description.contains("INSERT"))
        #expect(String(reflecting: error).contains("alice@example.com"), "debugging still has it")
    }

    @Test func dataExceptionMessagesAreWithheld() {
        let error = PostgresError(
            code: .queryFailed,
            message: #"invalid input syntax for type integer: "4111 1111 1111 1111""#,
            sqlState: "22P02"
        )
        #expect(!error.description.contains("4111"))
        #expect(error.description.contains("22P02"))
    }
}
