/// Why a dead-letter or outbox operation stopped. `description` names the queue or message
/// concerned and never includes message bodies.
public struct OperationsError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The message or queue asked for does not exist.
        public static let notFound = Code("notFound")
        /// A message has no `x-warren-original-*` headers to replay it to.
        public static let noDestination = Code("noDestination")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
