import Testing
import Topology

/// A broken file gets one error naming the line and the key.
@Suite struct BrokenFileTests {
    static let valid = """
        exchange:
          name: events
          type: topic
        defaults:
          max_attempts: 5
          retry_delays: [5s, 30s]
        consumers:
          users.projection:
            bindings: ["user.*"]
            retry_delays: [5s, 30s]
        """

    /// `valid` with line `line` (1-based) replaced.
    static func replacing(line: Int, with text: String) -> String {
        var lines = valid.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[line - 1] = text
        return lines.joined(separator: "\n")
    }

    static let cases: [(yaml: String, error: String)] = [
        (replacing(line: 10, with: "    retry_delays: [5s, 5x]"),
         "topology/topology.yaml:10: consumers.users.projection.retry_delays[1]: invalid duration '5x' (use 500ms, 5s, 2m, 1h)"),
        (replacing(line: 10, with: "    retry_delay: [5s]"),
         "topology/topology.yaml:10: consumers.users.projection.retry_delay: unknown key (expected one of: bindings, enabled, max_attempts, retry_delays, prefetch, batch_size, batch_wait, delivery_limit)"),
        (replacing(line: 5, with: "  max_attempts: five"),
         "topology/topology.yaml:5: defaults.max_attempts: expected a whole number, found 'five'"),
        (replacing(line: 5, with: "  max_attempts: \"5\""),
         "topology/topology.yaml:5: defaults.max_attempts: expected a whole number, found '5'"),
        (replacing(line: 5, with: "  max_attempts: 0"),
         "topology/topology.yaml:5: defaults.max_attempts: 0 is out of range (1...1000)"),
        (replacing(line: 6, with: "  retry_delays: 5s"),
         "topology/topology.yaml:6: defaults.retry_delays: expected a list, found '5s'"),
        (replacing(line: 3, with: "  type: headers"),
         "topology/topology.yaml:3: exchange.type: unsupported exchange type 'headers' (use topic, direct or fanout)"),
        (replacing(line: 9, with: "    bindings: [\"user.*\", \"user*\"]"),
         "topology/topology.yaml:9: consumers.users.projection.bindings[1]: invalid pattern 'user*': '*' and '#' must be whole words, as in 'user.*' or 'payment.#'"),
        (replacing(line: 9, with: "    bindings: [user.created, user.created]"),
         "topology/topology.yaml:9: consumers.users.projection.bindings[1]: duplicate pattern 'user.created'"),
        (replacing(line: 9, with: "    binding: [user.created]"),
         "topology/topology.yaml:9: consumers.users.projection.binding: unknown key (expected one of: bindings, enabled, max_attempts, retry_delays, prefetch, batch_size, batch_wait, delivery_limit)"),
        (replacing(line: 10, with: "    enabled: disabled"),
         "topology/topology.yaml:10: consumers.users.projection.enabled: expected true or false, found 'disabled'"),
        (replacing(line: 10, with: "    enabled: \"false\""),
         "topology/topology.yaml:10: consumers.users.projection.enabled: expected true or false, found 'false'"),
        (replacing(line: 5, with: "  enabled: false"),
         "topology/topology.yaml:5: defaults.enabled: unknown key (expected one of: max_attempts, retry_delays, prefetch, batch_size, batch_wait, delivery_limit)"),
        (replacing(line: 8, with: "  users.dlq:"),
         "topology/topology.yaml:8: consumers.users.dlq: a consumer name may not end in '.dlq' or contain '.retry.' (Warren names its own queues so)"),
        (replacing(line: 1, with: "exchnge:"),
         "topology/topology.yaml:1: exchnge: unknown key (expected one of: exchange, defaults, consumers)"),
        (replacing(line: 9, with: "    bindings: [\"user.*\""),
         "topology/topology.yaml:10: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"),
        (replacing(line: 10, with: "    bindings: [x]"),
         "topology/topology.yaml:9: duplicate key 'bindings' (this is its first occurrence)"),
        (replacing(line: 10, with: "    prefetch: 10"),
         "topology/topology.yaml:10: consumers.users.projection.prefetch: 10 is less than batch_size 50 (a batch could never fill)"),
        ("consumers:\n", "topology/topology.yaml:1: consumers: no consumers (list at least one)"),
        ("", "topology/topology.yaml: the file is empty (expected exchange, defaults and consumers)"),
    ]

    @Test(arguments: cases)
    func reportsTheLineAndTheKey(yaml: String, error expected: String) {
        #expect {
            try Topology.parse(yaml, file: "topology/topology.yaml")
        } throws: { error in
            let error = error as? TopologyError
            #expect(error?.code == .invalidFile)
            #expect(error?.description == expected)
            return error != nil
        }
    }

    @Test func aBatchLargerThanPrefetchPointsAtTheBatchSize() {
        let yaml = """
            defaults:
              batch_size: 100
            consumers:
              a:
                bindings: ["#"]
            """
        #expect(throws: TopologyError(.invalidFile, file: "t.yaml", line: 2, key: "defaults.batch_size", "100 exceeds prefetch 50 (a batch could never fill)")) {
            try Topology.parse(yaml, file: "t.yaml")
        }
    }

    @Test func retriesNeedADelay() {
        let yaml = """
            consumers:
              a:
                bindings: ["#"]
                retry_delays: []
            """
        #expect(throws: TopologyError(.invalidFile, file: "t.yaml", line: 4, key: "consumers.a.retry_delays", "empty, but max_attempts is 5 (give at least one delay)")) {
            try Topology.parse(yaml, file: "t.yaml")
        }
    }
}
