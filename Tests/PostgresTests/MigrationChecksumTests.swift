import Foundation
import Logging
import Testing

@testable import Postgres

/// The checksum recorded for each applied migration is part of what an existing database
/// holds: it must stay the lowercase hex SHA-256 of the file's bytes, or every database
/// migrated before would refuse its own files as changed.
@Suite struct MigrationChecksumTests {
    @Test func aMigrationsChecksumIsTheLowercaseHexSHA256OfItsBytes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("abc".utf8).write(to: directory.appendingPathComponent("0001_abc.sql"))
        try Data("The quick brown fox jumps over the lazy dog".utf8).write(to: directory.appendingPathComponent("0002_fox.sql"))
        let migrations = try PostgresMigrator(directory: directory.path, logger: Logger(label: "test")).loadMigrations()
        #expect(migrations.map(\.checksum) == [
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
        ])
    }
}
