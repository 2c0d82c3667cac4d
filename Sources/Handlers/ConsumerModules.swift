import Consumers

/// The consumer modules this release implements, by topology name. Consumers declared in
/// the topology without a module here (their adapters are not built yet) are skipped by
/// `warren run` and refused by `warren consume`.
public enum ConsumerModules {
    public static let all: [String: ConsumerHandler] = {
        let modules: [any ConsumerModule] = [UsersProjection(), PaymentsLedger()]
        return Dictionary(uniqueKeysWithValues: modules.map { ($0.name, .transactional($0)) })
    }()

    /// `all` plus the modules that need a configured provider, for those given.
    public static func make(email: EmailNotifications?, payments: PaymentsCustomers?) -> [String: ConsumerHandler] {
        var modules = all
        for module in [email as (any CallingModule)?, payments].compactMap({ $0 }) { modules[module.name] = .calling(module) }
        return modules
    }
}
