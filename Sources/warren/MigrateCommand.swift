import ArgumentParser
import Foundation
import Postgres

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the SQL migrations in order; already-applied files are skipped, changed ones refused.")

    @OptionGroup var options: GlobalOptions

    @Option(help: "Directory of versioned SQL files (0001_name.sql). [env: WARREN_MIGRATIONS]")
    var migrations: String = Environment.value("WARREN_MIGRATIONS", default: "migrations")

    func run() async throws {
        try await oneShot {
            let logger = options.logger("warren.migrate", oneShot: true)
            let migrator = try PostgresMigrator(directory: migrations, logger: logger)
            let connection = try await PostgresConnection.connect(to: options.databaseURL, logger: logger)
            let applied: [Int]
            do {
                applied = try await migrator.migrate(on: connection)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
            print(applied.isEmpty ? "migrations: up to date" : "migrations: applied \(applied.map { String(format: "%04d", $0) }.joined(separator: ", "))")
        }
    }
}
