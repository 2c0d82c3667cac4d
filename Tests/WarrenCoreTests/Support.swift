import Foundation
@testable import WarrenCore

/// The repository's `events/` directory, found from this file so tests run from anywhere.
let catalogDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("events").path

func schema(_ json: JSONValue) throws -> JSONSchema {
    try JSONSchema(json: json)
}

/// The violations as `field: message` lines, the way an operator reads them.
func violations(_ schema: JSONSchema, _ value: JSONValue) -> [String] {
    schema.validate(value).map(\.description)
}

/// A fresh temporary directory holding `files`, removed by the caller.
func temporaryCatalog(_ files: [String: String]) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-catalog-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for (name, text) in files {
        try Data(text.utf8).write(to: directory.appendingPathComponent(name))
    }
    return directory.path
}
