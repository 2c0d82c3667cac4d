import Testing
import WarrenCore

@Suite struct TopicPatternTests {
    @Test(arguments: [
        ("user.created", "user.created", true),
        ("user.created", "user.deleted", false),
        ("user.*", "user.created", true),
        ("user.*", "user", false),
        ("user.*", "user.a.b", false),
        ("*.created", "user.created", true),
        ("*", "user", true),
        ("*", "user.created", false),
        ("#", "user.created", true),
        ("#", "user", true),
        ("#", "", true),
        ("*", "", false),
        ("user.#", "user", true),
        ("user.#", "user.created", true),
        ("user.#", "user.a.b.c", true),
        ("user.#", "users.created", false),
        ("#.created", "created", true),
        ("#.created", "user.created", true),
        ("#.created", "user.created.late", false),
        ("a.#.b", "a.b", true),
        ("a.#.b", "a.x.b", true),
        ("a.#.b", "a.x.y.b", true),
        ("a.#.b", "a.x.y", false),
        ("a.#.b", "b.a.b", false),
        ("a.*.#", "a", false),
        ("a.*.#", "a.b", true),
        ("a.*.#", "a.b.c.d", true),
        ("#.#", "a", true),
        ("#.*.#", "", false),
        ("#.*.#", "a.b", true),
        ("user*", "user.created", false),
    ] as [(String, String, Bool)])
    func topicSemantics(pattern: String, type: String, expected: Bool) {
        #expect(EventCatalog.matches(pattern: pattern, type: type) == expected, "\(pattern) vs \(type)")
    }
}
