import AMQP
import Foundation
import FuzzTargets
import Testing
import WarrenCore

/// The fuzzers' committed corpus (`Fuzz/corpus/TARGET`: seeds, and each input that ever
/// crashed a target) replayed through every target: nothing traps, every round trip holds.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let targets: [FuzzTarget] = {
        let catalog = try! EventCatalog(directory: root.appendingPathComponent("events").path)
        return FuzzTargets.all(catalog: catalog)
    }()

    @Test(arguments: targets.map(\.name))
    func everyCommittedInputPasses(target name: String) throws {
        let target = try #require(Self.targets.first { $0.name == name })
        let directory = Self.root.appendingPathComponent("Fuzz/corpus/\(name)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(!files.isEmpty, "a seed corpus for \(name)")
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            #expect(target.run(bytes) == nil, "\(name)/\(file)")
        }
    }

    /// The targets can fail: a broken round trip is reported, not hidden.
    @Test func aTargetReportsWhatDoesNotRoundTrip() {
        let broken = FuzzTarget(name: "broken") { bytes in
            FieldTableCodec.decode(bytes) == nil ? "not a table" : nil
        }
        #expect(broken.run(Array("nope".utf8)) == "not a table")
    }

    /// The URL target would catch an error that repeats the password.
    @Test func aRefusedAMQPURLNeverRepeatsItsPassword() {
        // The first was found by the fuzzer: Foundation reads it as a relative path with
        // no password, and the error repeated it whole.
        for url in ["a@qp://user:s3cr3tPW@host:99999/", "amqp:4/:s3cr3tPW@[::(1]:/x/y", "amqp://user:s3cr3tPW@host:99999/", "amqp://user:s3cr3tPW@host/%zz", "http://user:s3cr3tPW@host/", "amqp://user:s3cr3tPW@"] {
            #expect(FuzzTargets.amqpURL.run(Array(url.utf8)) == nil, "\(url)")
        }
    }

    /// Found by the fuzzer: a header name of invalid UTF-8 is read with each bad byte
    /// replaced (3 bytes each), so a 100-byte name comes back over AMQP's 255: encoding it
    /// is refused (the consumer then dead-letters with Warren's headers alone), where
    /// rabbitmq-c would write a truncated length and a corrupt frame.
    @Test func aHeaderNameThatGrowsPast255BytesIsRefusedNotCorrupted() throws {
        var wire: [UInt8] = [100] + [UInt8](repeating: 0xB6, count: 100) + [UInt8(ascii: "V")]
        wire = withUnsafeBytes(of: UInt32(wire.count).bigEndian, Array.init) + wire
        let (table, _) = try #require(FieldTableCodec.decode(wire))
        #expect(table.keys.first?.utf8.count == 300)
        #expect(throws: AMQPError.self) { try FieldTableCodec.encode(table) }
    }

    /// Headers decoded from the wire keep their values through an encode and decode.
    @Test func aFieldTableSurvivesItsRoundTrip() throws {
        let table: AMQPTable = ["x-warren-attempts": .int64(3), "nested": .table(["list": .array([.string("a"), .int32(-1)])])]
        let bytes = try #require(try FieldTableCodec.encode(table))
        let decoded = try #require(FieldTableCodec.decode(bytes))
        #expect(decoded.table == table && !decoded.tooDeep)
    }
}
