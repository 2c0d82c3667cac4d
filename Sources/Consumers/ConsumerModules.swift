/// The consumer modules this release implements, by topology name. Consumers declared in
/// the topology without a module here (their adapters are not built yet) are skipped by
/// `warren run` and refused by `warren consume`.
public enum ConsumerModules {
    public static let all: [String: any ConsumerModule] = {
        let modules: [any ConsumerModule] = [UsersProjection(), PaymentsLedger()]
        return Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0) })
    }()
}
