@testable import HTTPAPI
import Testing
import WarrenCore

/// The OpenAPI document is valid JSON, names itself 3.1, and lists exactly the routes the
/// server registers (each route's answers are checked against it in `HTTPServerTests`).
@Suite struct OpenAPITests {
    static func document() throws -> JSONValue { try JSONValue(parsing: Array(OpenAPIDocument.json.utf8)) }

    @Test func theDocumentListsExactlyTheServersRoutes() throws {
        let document = try Self.document()
        #expect(document["openapi"] == "3.1.0")
        let paths = try #require(document["paths"]?.objectValue)
        var documented: Set<String> = []
        for (path, operations) in paths {
            // A path item also holds shared `parameters`, which is not an operation.
            for method in operations.objectValue?.keys ?? [:].keys where method != "parameters" {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        #expect(documented == Set(Routes.routes))
    }

    /// Every `$ref` points at something the document defines.
    @Test func everyReferenceResolves() throws {
        let document = try Self.document()
        var references: [String] = []
        func collect(_ value: JSONValue) {
            switch value {
            case .object(let object):
                if let reference = object["$ref"]?.stringValue { references.append(reference) }
                object.values.forEach(collect)
            case .array(let items): items.forEach(collect)
            default: break
            }
        }
        collect(document)
        #expect(!references.isEmpty)
        for reference in references {
            var node: JSONValue? = document
            for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
            #expect(node != nil, "\(reference)")
        }
    }
}
