/// The one error type of the Topology module: a broken topology file (with the line and
/// the key at fault), a live object that differs from the file, or a broker or management
/// API that could not be asked.
public struct TopologyError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// The topology file cannot be read, is not YAML, or does not fit the schema.
        public static let invalidFile = Code(name: "invalidFile")
        /// A live exchange or queue differs from the file and was left as it is.
        public static let inequivalent = Code(name: "inequivalent")
        /// The management HTTP API could not be reached or refused the request.
        public static let managementAPI = Code(name: "managementAPI")
        /// The broker refused a declaration for another reason (permissions, missing vhost).
        public static let broker = Code(name: "broker")
    }

    public var code: Code
    /// The topology file, for `invalidFile`.
    public var file: String?
    /// 1-based line in `file`, when known.
    public var line: Int?
    /// The key at fault, dotted with indexes: `consumers.users.projection.retry_delays[1]`.
    public var key: String?
    public var message: String

    public init(_ code: Code, file: String? = nil, line: Int? = nil, key: String? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `topology/topology.yaml:12: consumers.users.projection.retry_delays[1]: invalid duration '5x' …`
    public var description: String {
        let place = file.map { file in line.map { "\(file):\($0)" } ?? file }
        return [place, key, message].compactMap { $0 }.joined(separator: ": ")
    }
}
