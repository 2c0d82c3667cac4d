@testable import HTTPAPI
import Testing

/// `Authorization: Bearer <key>` as RFC 6750 and 9110 allow it: the scheme in any case,
/// blanks around the token ignored; anything else is no bearer token.
@Suite struct BearerTokenTests {
    @Test(arguments: [
        ("Bearer wk_abc", "wk_abc"), ("bearer wk_abc", "wk_abc"), ("BEARER wk_abc", "wk_abc"), ("bEaReR   wk_abc \t ", "wk_abc"),
        ("Bearer ", ""), ("Bearer \t", ""),
    ])
    func theTokenIsTakenWhateverTheSchemesCase(header: String, token: String) {
        #expect(Routes.bearerToken(header) == token)
    }

    @Test(arguments: ["Basic d2s6", "Bearerwk_abc", "Bear", "", "Token wk_abc", " Bearer wk_abc", "Bearer\twk_abc"])
    func otherSchemesHaveNoToken(header: String) {
        #expect(Routes.bearerToken(header) == nil)
    }
}
