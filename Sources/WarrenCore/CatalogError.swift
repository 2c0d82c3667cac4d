/// Why the event catalog, or one of its schemas, could not be loaded. Names the file and,
/// for schemas, the place inside it (a JSON pointer such as `#/properties/amount/minimum`).
public struct CatalogError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// The directory or a file in it could not be read.
        public static let unreadable = Code(name: "unreadable")
        /// A file is not valid JSON.
        public static let invalidJSON = Code(name: "invalidJSON")
        /// A schema uses a keyword wrongly, or one Warren does not support.
        public static let invalidSchema = Code(name: "invalidSchema")
        /// `catalog.json` is not `{"open": [patterns]}`, or a schema file name is not a type.
        public static let invalidCatalog = Code(name: "invalidCatalog")
    }

    public var code: Code
    /// The file at fault, as the catalog was asked to read it.
    public var file: String?
    /// Where in the file, as a JSON pointer (`#/properties/email/format`).
    public var location: String?
    public var message: String

    public init(_ code: Code, file: String? = nil, location: String? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.location = location
        self.message = message
    }

    public var description: String {
        [file, location, message].compactMap { $0 }.joined(separator: ": ")
    }
}
