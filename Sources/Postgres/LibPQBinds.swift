import CLibPQ

/// Bind parameters laid out as `PQexecParams` wants them: parallel arrays of types, values,
/// lengths and formats. The value buffers are C copies, freed by `deallocate()`.
struct BindParameters {
    private(set) var types: [Oid] = []
    private(set) var values: [UnsafePointer<CChar>?] = []
    private(set) var lengths: [Int32] = []
    private(set) var formats: [Int32] = []

    init(_ binds: [PostgresValue?]) throws {
        do {
            for (index, bind) in binds.enumerated() {
                try append(bind, number: index + 1)
            }
        } catch {
            deallocate()
            throw error
        }
    }

    private mutating func append(_ bind: PostgresValue?, number: Int) throws {
        guard let bind else {
            types.append(0)
            values.append(nil)
            lengths.append(0)
            formats.append(0)
            return
        }
        let bytes: [UInt8]
        switch bind.payload {
        case .text(let text):
            // The message names the parameter, never its value.
            guard !text.utf8.contains(0) else {
                throw PostgresError(
                    code: .invalidValue, message: "bind parameter $\(number) contains a NUL byte, which text cannot hold")
            }
            bytes = Array(text.utf8) + [0]
            formats.append(0)
        case .binary(let data):
            bytes = data
            formats.append(1)
        }
        guard bytes.count <= Int32.max else {
            throw PostgresError(code: .invalidValue, message: "bind parameter $\(number) is larger than 2 GB")
        }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
        bytes.withUnsafeBytes { source in
            UnsafeMutableRawBufferPointer(start: buffer, count: bytes.count).copyMemory(from: source)
        }
        types.append(bind.type.oid)
        values.append(UnsafePointer(buffer))
        lengths.append(Int32(bytes.count))
    }

    mutating func deallocate() {
        for value in values { value.map { UnsafeMutablePointer(mutating: $0).deallocate() } }
        values = []
    }
}
