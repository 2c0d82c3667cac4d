/// Why a long-running command could not start or stopped with an error, said in one line
/// for the operator (the CLI prints it on stderr and exits 1). Never holds a secret: the
/// errors it wraps redact URLs and keys themselves.
public struct ApplicationError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
