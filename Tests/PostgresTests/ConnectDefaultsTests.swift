import Testing

@testable import Postgres

/// Warren's libpq defaults stay out of the way of what the operator configured.
@Suite struct ConnectDefaultsTests {
    @Test func everyDefaultAppliesWhenNothingElseIsConfigured() {
        let keys = LibPQConnect.applicableDefaults(conninfo: "postgresql://h/db", environment: [:]).map(\.key)
        #expect(keys.contains("connect_timeout") && keys.contains("options") && keys.contains("tcp_user_timeout"))
    }

    @Test func aLibpqEnvironmentVariableWinsOverItsDefault() {
        let keys = LibPQConnect.applicableDefaults(
            conninfo: "postgresql://h/db", environment: ["PGOPTIONS": "-c search_path=app", "PGAPPNAME": "ops"]).map(\.key)
        #expect(!keys.contains("options") && !keys.contains("application_name"))
        #expect(keys.contains("connect_timeout"))
    }

    @Test func aServiceFileGetsNoDefaults() {
        #expect(LibPQConnect.applicableDefaults(conninfo: "service=warren", environment: [:]).isEmpty)
        #expect(LibPQConnect.applicableDefaults(conninfo: "postgresql:///db", environment: ["PGSERVICE": "warren"]).isEmpty)
    }
}
