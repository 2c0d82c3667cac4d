extension EventCatalog {
    /// AMQP topic matching, as a topic exchange routes: words are separated by `.`, `*`
    /// stands for exactly one word and `#` for zero or more. `user.*` matches `user.created`
    /// but not `user.a.b`; `#` matches everything; `a.#.b` matches `a.b` and `a.x.y.b`.
    public static func matches(pattern: String, type: String) -> Bool {
        // The two commonest patterns, decided without splitting: `#` matches everything,
        // and a pattern without wildcards only the same text.
        if pattern == "#" { return true }
        if !pattern.utf8.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "#") }) { return pattern == type }
        let patternWords = words(pattern)
        let typeWords = words(type)
        // reachable[j]: the pattern words seen so far can consume exactly the first j
        // type words. Dynamic programming keeps `#.#.#` patterns linear per word.
        var reachable = [Bool](repeating: false, count: typeWords.count + 1)
        reachable[0] = true
        for word in patternWords {
            var next = [Bool](repeating: false, count: typeWords.count + 1)
            for j in 0...typeWords.count where reachable[j] {
                switch word {
                case "#":
                    for k in j...typeWords.count { next[k] = true }
                case "*":
                    if j < typeWords.count { next[j + 1] = true }
                default:
                    if j < typeWords.count, typeWords[j] == word { next[j + 1] = true }
                }
            }
            reachable = next
        }
        return reachable[typeWords.count]
    }

    /// RabbitMQ splits on every dot and treats the empty key as zero words.
    private static func words(_ text: String) -> [Substring] {
        text.isEmpty ? [] : text.split(separator: ".", omittingEmptySubsequences: false)
    }

    /// Non-empty words without wildcards, like `user.created`.
    static func isValidType(_ type: String) -> Bool {
        !type.isEmpty && words(type).allSatisfy { !$0.isEmpty && !$0.contains("*") && !$0.contains("#") && !$0.contains(where: \.isWhitespace) }
    }

    /// Non-empty words, each either a literal word, `*` or `#`.
    public static func isValidPatternText(_ pattern: String) -> Bool { isValidPattern(pattern) }

    static func isValidPattern(_ pattern: String) -> Bool {
        !pattern.isEmpty && words(pattern).allSatisfy { word in
            word == "*" || word == "#" || isValidType(String(word))
        }
    }
}
