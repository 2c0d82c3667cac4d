import CRabbitMQ
import Glibc

/// Owns the C memory behind outgoing tables, properties and strings for one rabbitmq-c
/// call. Everything it hands out lives until `reset()` or deinit, and is freed there only.
/// A bump allocator over one reusable block, so a publish costs no malloc; what does not
/// fit goes to malloc and is freed at reset.
final class CArena {
    private let block: UnsafeMutableRawPointer
    private let capacity: Int
    private var offset = 0
    private var overflow: [UnsafeMutableRawPointer] = []

    init(capacity: Int = 64 * 1024) {
        self.capacity = capacity
        block = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        reset()
        block.deallocate()
    }

    func reset() {
        offset = 0
        for pointer in overflow { free(pointer) }
        overflow.removeAll(keepingCapacity: true)
    }

    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let start = (offset + 15) & ~15
        if start + count <= capacity {
            offset = start + count
            return block + start
        }
        guard let pointer = malloc(max(count, 1)) else { fatalError("out of memory") }
        overflow.append(pointer)
        return pointer
    }

    func bytes(_ text: String) -> amqp_bytes_t {
        var text = text
        return text.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ raw: UnsafeRawBufferPointer) -> amqp_bytes_t {
        let block = allocate(raw.count)
        if raw.count > 0 { block.copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        return amqp_bytes_t(len: raw.count, bytes: block)
    }

    /// A NUL-terminated copy, for the rabbitmq-c calls that take `char const *`.
    func cString(_ text: String) -> UnsafePointer<CChar> {
        let utf8 = Array(text.utf8CString)
        let block = allocate(utf8.count)
        utf8.withUnsafeBytes { block.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return UnsafePointer(block.assumingMemoryBound(to: CChar.self))
    }

    func table(_ table: AMQPTable?) -> amqp_table_t {
        guard let table, !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(MemoryLayout<amqp_table_entry_t>.stride * table.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: table.count)
        // Sorted so the same table always encodes to the same bytes.
        for (index, key) in table.keys.sorted().enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: value(table[key]!))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func value(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        func kind(_ c: Character) { field.kind = c.asciiValue! }
        switch value {
        case .bool(let v): kind("t"); field.value.boolean = v ? 1 : 0
        case .int8(let v): kind("b"); field.value.i8 = v
        case .uint8(let v): kind("B"); field.value.u8 = v
        case .int16(let v): kind("s"); field.value.i16 = v
        case .uint16(let v): kind("u"); field.value.u16 = v
        case .int32(let v): kind("I"); field.value.i32 = v
        case .uint32(let v): kind("i"); field.value.u32 = v
        case .int64(let v): kind("l"); field.value.i64 = v
        case .uint64(let v): kind("L"); field.value.u64 = v
        case .float(let v): kind("f"); field.value.f32 = v
        case .double(let v): kind("d"); field.value.f64 = v
        case .decimal(let scale, let v): kind("D"); field.value.decimal = amqp_decimal_t(decimals: scale, value: v)
        case .string(let v): kind("S"); field.value.bytes = bytes(v)
        case .bytes(let v): kind("x"); field.value.bytes = v.withUnsafeBytes { bytes($0) }
        case .invalidUTF8String(let v): kind("S"); field.value.bytes = v.withUnsafeBytes { bytes($0) }
        case .timestamp(let v): kind("T"); field.value.u64 = v
        case .table(let v): kind("F"); field.value.table = table(v)
        case .void: kind("V")
        case .array(let items):
            kind("A")
            let entries = allocate(MemoryLayout<amqp_field_value_t>.stride * max(items.count, 1))
                .bindMemory(to: amqp_field_value_t.self, capacity: max(items.count, 1))
            for (index, item) in items.enumerated() { entries[index] = self.value(item) }
            field.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
        }
        return field
    }

    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func set(_ flag: Int32, _ text: String?, _ field: inout amqp_bytes_t) {
            guard let text else { return }
            flags |= UInt32(flag)
            field = bytes(text)
        }
        set(AMQP_BASIC_CONTENT_TYPE_FLAG, p.contentType, &c.content_type)
        set(AMQP_BASIC_CONTENT_ENCODING_FLAG, p.contentEncoding, &c.content_encoding)
        set(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlationID, &c.correlation_id)
        set(AMQP_BASIC_REPLY_TO_FLAG, p.replyTo, &c.reply_to)
        set(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, &c.expiration)
        set(AMQP_BASIC_MESSAGE_ID_FLAG, p.messageID, &c.message_id)
        set(AMQP_BASIC_TYPE_FLAG, p.type, &c.type)
        set(AMQP_BASIC_USER_ID_FLAG, p.userID, &c.user_id)
        set(AMQP_BASIC_APP_ID_FLAG, p.appID, &c.app_id)
        set(AMQP_BASIC_CLUSTER_ID_FLAG, p.clusterID, &c.cluster_id)
        if let headers = p.headers {
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
            c.headers = table(headers)
        }
        if let mode = p.deliveryMode { flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG); c.delivery_mode = mode }
        if let priority = p.priority { flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG); c.priority = priority }
        if let timestamp = p.timestamp { flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG); c.timestamp = timestamp }
        c._flags = flags
        return c
    }
}

// MARK: - Incoming: copy out of rabbitmq-c's pools into Swift values at once.

extension String {
    /// Invalid UTF-8 is replaced: for what only names things (exchanges, queues, tags).
    init(amqp bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else { self = ""; return }
        self = String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }

    /// For the message's own strings (property values, header names): invalid UTF-8 is
    /// replaced too, as a Swift string must be valid, and reported, so that a message
    /// that would not survive a copy unchanged is never copied.
    init(amqp bytes: amqp_bytes_t, report: inout DecodeReport) {
        if let text = String(validatingAMQP: bytes) {
            self = text
        } else {
            report.notUTF8 = true
            self = String(amqp: bytes)
        }
    }

    /// Nil when the bytes are not valid UTF-8; validated in place, without a copy first.
    init?(validatingAMQP bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else { self = ""; return }
        guard let text = String(validating: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self) else { return nil }
        self = text
    }
}

/// What decoding a message's properties found that Swift values cannot carry exactly.
struct DecodeReport: Sendable, Equatable {
    /// Headers nested deeper than `maxFieldDepth`; the deeper values read as `.void`.
    var tooDeep = false
    /// A string property or a header name that is not valid UTF-8 (read with replacement).
    var notUTF8 = false
}

extension Array where Element == UInt8 {
    init(amqp bytes: amqp_bytes_t) {
        guard bytes.len > 0, let base = bytes.bytes else { self = []; return }
        self = Array(UnsafeRawBufferPointer(start: base, count: bytes.len))
    }
}

/// How deep incoming field tables and arrays are decoded. A header nested deeper is
/// hostile or broken (RabbitMQ and Warren write at most two levels): decoding it
/// recursively could exhaust the I/O thread's stack, so deeper values become `.void`
/// and the message is marked (`AMQPDelivery.headersTooDeep`) for its consumer to refuse.
let maxFieldDepth = 32

extension AMQPFieldValue {
    init(amqp field: amqp_field_value_t, depth: Int = 0, report: inout DecodeReport) {
        switch Character(Unicode.Scalar(field.kind)) {
        case "t": self = .bool(field.value.boolean != 0)
        case "b": self = .int8(field.value.i8)
        case "B": self = .uint8(field.value.u8)
        case "s": self = .int16(field.value.i16)
        case "u": self = .uint16(field.value.u16)
        case "I": self = .int32(field.value.i32)
        case "i": self = .uint32(field.value.u32)
        case "l": self = .int64(field.value.i64)
        case "L": self = .uint64(field.value.u64)
        case "f": self = .float(field.value.f32)
        case "d": self = .double(field.value.f64)
        case "D": self = .decimal(scale: field.value.decimal.decimals, value: field.value.decimal.value)
        case "S": self = String(validatingAMQP: field.value.bytes).map(AMQPFieldValue.string) ?? .invalidUTF8String([UInt8](amqp: field.value.bytes))
        case "x": self = .bytes([UInt8](amqp: field.value.bytes))
        case "T": self = .timestamp(field.value.u64)
        case "F" where depth >= maxFieldDepth, "A" where depth >= maxFieldDepth:
            report.tooDeep = true
            self = .void
        case "F": self = .table(AMQPTable(amqp: field.value.table, depth: depth + 1, report: &report))
        case "A":
            let array = field.value.array
            var items: [AMQPFieldValue] = []
            items.reserveCapacity(Int(max(0, array.num_entries)))
            for index in 0..<Int(max(0, array.num_entries)) {
                items.append(AMQPFieldValue(amqp: array.entries[index], depth: depth + 1, report: &report))
            }
            self = .array(items)
        default: self = .void
        }
    }
}

extension AMQPTable {
    init(amqp table: amqp_table_t, depth: Int = 0, report: inout DecodeReport) {
        let count = Int(Swift.max(0, table.num_entries))
        self.init(minimumCapacity: count)
        for index in 0..<count {
            let entry = table.entries[index]
            self[String(amqp: entry.key, report: &report)] = AMQPFieldValue(amqp: entry.value, depth: depth, report: &report)
        }
    }

    /// For tables that come from rabbitmq-c replies (queue arguments and the like).
    init(amqp table: amqp_table_t) {
        var ignored = DecodeReport()
        self.init(amqp: table, report: &ignored)
    }
}

extension AMQPProperties {
    /// `report` says what could not be read exactly (see ``DecodeReport``).
    init(amqp c: amqp_basic_properties_t, report: inout DecodeReport) {
        self.init()
        let flags = c._flags
        func text(_ flag: Int32, _ field: amqp_bytes_t) -> String? {
            flags & UInt32(flag) != 0 ? String(amqp: field, report: &report) : nil
        }
        contentType = text(AMQP_BASIC_CONTENT_TYPE_FLAG, c.content_type)
        contentEncoding = text(AMQP_BASIC_CONTENT_ENCODING_FLAG, c.content_encoding)
        correlationID = text(AMQP_BASIC_CORRELATION_ID_FLAG, c.correlation_id)
        replyTo = text(AMQP_BASIC_REPLY_TO_FLAG, c.reply_to)
        expiration = text(AMQP_BASIC_EXPIRATION_FLAG, c.expiration)
        messageID = text(AMQP_BASIC_MESSAGE_ID_FLAG, c.message_id)
        type = text(AMQP_BASIC_TYPE_FLAG, c.type)
        userID = text(AMQP_BASIC_USER_ID_FLAG, c.user_id)
        appID = text(AMQP_BASIC_APP_ID_FLAG, c.app_id)
        clusterID = text(AMQP_BASIC_CLUSTER_ID_FLAG, c.cluster_id)
        if flags & UInt32(AMQP_BASIC_HEADERS_FLAG) != 0 { headers = AMQPTable(amqp: c.headers, report: &report) }
        if flags & UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 { deliveryMode = c.delivery_mode }
        if flags & UInt32(AMQP_BASIC_PRIORITY_FLAG) != 0 { priority = c.priority }
        if flags & UInt32(AMQP_BASIC_TIMESTAMP_FLAG) != 0 { timestamp = c.timestamp }
    }

    init(amqp c: amqp_basic_properties_t) {
        var ignored = DecodeReport()
        self.init(amqp: c, report: &ignored)
    }
}
