import CRabbitMQ

/// AMQP 0-9-1 method numbers (class << 16 | method). amqp_framing.h defines these as
/// casts, which Swift does not import.
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelFlow: amqp_method_number_t = 0x0014_0014
    static let channelFlowOK: amqp_method_number_t = 0x0014_0015
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOK: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicPublish: amqp_method_number_t = 0x003C_0028
    static let basicGetOK: amqp_method_number_t = 0x003C_0047
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicReject: amqp_method_number_t = 0x003C_005A
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

enum FrameType {
    static let method: UInt8 = 1
    static let header: UInt8 = 2
    static let body: UInt8 = 3
}

extension AMQPError {
    /// Turns a rabbitmq-c status code into an error with the library's own wording.
    static func library(_ status: Int32, _ context: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        let code: Code
        switch status {
        case AMQP_STATUS_TIMEOUT.rawValue: code = .timeout
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
            AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
            code = .tls
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue,
            AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue,
            AMQP_STATUS_TCP_ERROR.rawValue, AMQP_STATUS_UNEXPECTED_STATE.rawValue,
            AMQP_STATUS_BAD_AMQP_DATA.rawValue:
            code = .connectionLost
        default: code = .library
        }
        return AMQPError(code, "\(context): \(text)")
    }

    /// Errors after which the connection cannot be used any more.
    var isFatalToConnection: Bool {
        code == .connectionLost || code == .connectionClosed || code == .timeout || code == .library
    }
}
