import Foundation

/// The `format` values Warren asserts (draft 2020-12 treats them as annotations unless a
/// validator opts in; the catalog opts in because a malformed email is a bad event).
extension JSONSchema.Format {
    var phrase: String {
        switch self {
        case .email: "a valid email address"
        case .uuid: "a valid UUID"
        case .dateTime: "a valid RFC 3339 date-time"
        }
    }

    func accepts(_ text: String) -> Bool {
        switch self {
        case .email: Self.isEmailAddress(text)
        case .uuid: text.utf8.count == 36 && UUID(uuidString: text) != nil
        case .dateTime: RFC3339.parse(text) != nil
        }
    }

    /// A sane check, not RFC 5322 in full: one `@`, a dot-atom local part of at most 64
    /// bytes, and a domain of at least two DNS labels. Quoted local parts and IP literals
    /// are refused: real senders do not use them and providers reject them. Non-ASCII
    /// letters are allowed for internationalised addresses (RFC 6531).
    static func isEmailAddress(_ text: String) -> Bool {
        guard text.utf8.count <= 254 else { return false }
        return isASCIIEmailAddress(text.utf8) ?? isEmailAddressByCharacters(text)
    }

    static func isEmailAddressByCharacters(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        let (local, domain) = (parts[0], parts[1])

        let localSymbols = Set("!#$%&'*+/=?^_`{|}~-")
        let localWords = local.split(separator: ".", omittingEmptySubsequences: false)
        guard !local.isEmpty, local.utf8.count <= 64,
            localWords.allSatisfy({ !$0.isEmpty && $0.allSatisfy { isWordCharacter($0) || localSymbols.contains($0) } })
        else { return false }

        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2,
            labels.allSatisfy({ label in
                !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                    && label.allSatisfy { isWordCharacter($0) || $0 == "-" }
            }),
            let topLevel = labels.last, !topLevel.allSatisfy(\.isNumber)
        else { return false }
        return true
    }

    /// The same rules over bytes, for the usual all-ASCII address (the `Character` walk
    /// above costs Unicode property lookups per letter); nil if `text` is not ASCII.
    static func isASCIIEmailAddress(_ text: String.UTF8View) -> Bool? {
        var sawAt = false, localBytes = 0
        var labels = 0, labelBytes = 0, labelAllDigits = true
        var previous: UInt8 = 0  // 0: start of a dot-atom word or DNS label
        for byte in text {
            guard byte < 0x80 else { return nil }
            let word = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            if !sawAt {
                switch byte {
                case UInt8(ascii: "@"):
                    guard localBytes > 0, localBytes <= 64, previous != UInt8(ascii: ".") else { return false }
                    sawAt = true
                    previous = 0
                    continue
                case UInt8(ascii: "."):
                    guard previous != 0, previous != UInt8(ascii: ".") else { return false }
                default:
                    guard word || localSymbolBytes.contains(byte) else { return false }
                }
                localBytes += 1
                previous = byte
            } else {
                switch byte {
                case UInt8(ascii: "."):
                    guard labelBytes > 0, previous != UInt8(ascii: "-") else { return false }
                    labels += 1
                    labelBytes = 0
                    labelAllDigits = true
                    previous = 0
                    continue
                case UInt8(ascii: "-"):
                    guard labelBytes > 0 else { return false }
                default:
                    guard word else { return false }
                }
                labelBytes += 1
                guard labelBytes <= 63 else { return false }
                if !(byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) { labelAllDigits = false }
                previous = byte
            }
        }
        // The last label: present, not ending in "-", not all digits, after at least one other.
        return sawAt && labels >= 1 && labelBytes > 0 && previous != UInt8(ascii: "-") && !labelAllDigits
    }

    private static let localSymbolBytes = Set("!#$%&'*+/=?^_`{|}~-".utf8)

    private static func isWordCharacter(_ c: Character) -> Bool {
        // A letter with combining marks is one Character, so `isLetter` covers accents.
        c.isLetter || c.isNumber
    }
}
