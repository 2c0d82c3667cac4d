import Glibc

/// Lines from a file descriptor as raw bytes (no decoding, so nothing is repaired), read in
/// 64 KiB blocks: memory holds at most one line of up to `maxLineBytes`; a longer line is
/// skipped to its end and reported by its length.
struct LineReader {
    enum Line {
        case bytes([UInt8])
        case tooLong(Int)
    }

    let fileDescriptor: Int32
    let maxLineBytes: Int
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private var start = 0
    private var end = 0
    private var atEnd = false
    private var number = 0
    /// Set when reading failed (not the end of input): the errno.
    private(set) var failure: Int32?

    init(fileDescriptor: Int32, maxLineBytes: Int) {
        self.fileDescriptor = fileDescriptor
        self.maxLineBytes = maxLineBytes
    }

    /// Lines returned so far.
    var lineCount: Int { number }

    /// The next line (1-based number, without its `\n`), or nil at the end of input.
    mutating func next() -> (Int, Line)? {
        var line: [UInt8] = []
        var length = 0
        while true {
            if start == end {
                // The last line may lack its newline.
                guard !atEnd, fill() else { return length > 0 ? finish(line, length) : nil }
            }
            let newline = buffer[start..<end].firstIndex(of: 0x0A)
            let stop = newline ?? end
            length += stop - start
            if length <= maxLineBytes { line.append(contentsOf: buffer[start..<stop]) } else { line = [] }
            start = newline.map { $0 + 1 } ?? end
            if newline != nil { return finish(line, length) }
        }
    }

    private mutating func finish(_ line: [UInt8], _ length: Int) -> (Int, Line) {
        number += 1
        return (number, length > maxLineBytes ? .tooLong(length) : .bytes(line))
    }

    /// Reads the next block; false at the end of input (or on a read error).
    private mutating func fill() -> Bool {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { return fill() }
        if count < 0 { failure = errno }
        guard count > 0 else {
            atEnd = true
            return false
        }
        start = 0
        end = count
        return true
    }
}
