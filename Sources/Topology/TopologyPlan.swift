/// What `apply` would change: the file's declarations compared with a vhost's live state.
///
/// Creations are what `apply` does; conflicts (`!`) are objects that exist with other
/// settings, which `apply` reports and leaves alone; removals (`-`) are bindings from the
/// exchange to queues that the file no longer has, which only `apply --prune` removes, and
/// bindings to a disabled consumer's queue, which `apply` always removes.
public struct TopologyPlan: Sendable, Equatable {
    public enum Change: Sendable, Hashable {
        case createExchange(ExchangeDeclaration)
        case createQueue(QueueDeclaration)
        case createBinding(BindingDeclaration)
        case conflict(Conflict)
        case removeBinding(BindingDeclaration)
        /// A live binding to the queue of a consumer with `enabled: false`.
        case unbindDisabled(BindingDeclaration)
    }

    /// A live object that differs from the file in one setting.
    public struct Conflict: Sendable, Hashable {
        /// `queue users.projection`, `exchange events`.
        public var object: String
        /// `x-delivery-limit`, `durable`, `type`.
        public var argument: String
        /// As text; nil when the setting is absent on that side.
        public var live: String?
        public var file: String?

        public init(object: String, argument: String, live: String?, file: String?) {
            self.object = object
            self.argument = argument
            self.live = live
            self.file = file
        }
    }

    public var changes: [Change]
    /// Declared objects that already exist exactly as the file says.
    public var unchanged: Int

    /// Compares `desired` with `live`.
    public init(desired: TopologyDeclarations, live: LiveTopology) {
        var changes: [Change] = []
        var unchanged = 0

        if let exchange = live.exchange {
            let differences = [
                exchange.type == desired.exchange.type ? nil : Conflict(object: "exchange \(exchange.name)", argument: "type", live: exchange.type, file: desired.exchange.type),
                exchange.durable ? nil : Conflict(object: "exchange \(exchange.name)", argument: "durable", live: "false", file: "true"),
            ].compactMap { $0 }
            changes += differences.map(Change.conflict)
            if differences.isEmpty { unchanged += 1 }
        } else {
            changes.append(.createExchange(desired.exchange))
        }

        for queue in desired.queues {
            guard let current = live.queues[queue.name] else {
                changes.append(.createQueue(queue))
                continue
            }
            var differences: [Conflict] = []
            if !current.durable {
                differences.append(Conflict(object: "queue \(queue.name)", argument: "durable", live: "false", file: "true"))
            }
            for key in Set(queue.arguments.keys).union(current.arguments.keys).sorted() where queue.arguments[key] != current.arguments[key] {
                differences.append(Conflict(
                    object: "queue \(queue.name)", argument: key,
                    live: current.arguments[key]?.description, file: queue.arguments[key]?.description))
            }
            changes += differences.map(Change.conflict)
            if differences.isEmpty { unchanged += 1 }
        }

        let liveBindings = Set(live.bindings)
        for binding in desired.bindings {
            if liveBindings.contains(binding) {
                unchanged += 1
            } else {
                changes.append(.createBinding(binding))
            }
        }
        let desiredBindings = Set(desired.bindings)
        let disabled = desired.disabledQueues
        for binding in live.bindings.sorted() where binding.exchange == desired.exchange.name && !desiredBindings.contains(binding) {
            changes.append(disabled.contains(binding.queue) ? .unbindDisabled(binding) : .removeBinding(binding))
        }

        self.changes = changes
        self.unchanged = unchanged
    }

    /// True when `apply` (with `prune`, also `apply --prune`) would do nothing.
    public func isEmpty(prune: Bool = false) -> Bool {
        changes.allSatisfy { change in
            if case .removeBinding = change { return !prune }
            return false
        }
    }

    public var conflicts: [Conflict] {
        changes.compactMap { if case .conflict(let conflict) = $0 { conflict } else { nil } }
    }

    /// What only `apply --prune` removes.
    public var bindingsToRemove: [BindingDeclaration] {
        changes.compactMap { if case .removeBinding(let binding) = $0 { binding } else { nil } }
    }

    /// What `apply` removes because the queue's consumer is disabled.
    public var bindingsOfDisabledConsumers: [BindingDeclaration] {
        changes.compactMap { if case .unbindDisabled(let binding) = $0 { binding } else { nil } }
    }

    /// One line per change, then `= N unchanged`:
    ///
    ///     + queue users.projection (quorum, x-delivery-limit=20, …)
    ///     + binding events -> users.projection (user.*)
    ///     ! queue X: x-delivery-limit differs (live 10, file 20) — needs manual action
    ///     - binding events -> old.consumer (user.*) — kept; apply --prune removes it
    ///     - binding events -> payments.customers (user.created) — consumer disabled
    ///     = 12 unchanged
    public func lines(prune: Bool = false) -> [String] {
        changes.map { $0.line(prune: prune) } + ["= \(unchanged) unchanged"]
    }
}

extension TopologyPlan.Change {
    /// The change as one line of `plan` output (see ``TopologyPlan/lines(prune:)``).
    public func line(prune: Bool) -> String {
        switch self {
        case .createExchange(let exchange):
            "+ exchange \(exchange.name) (\(exchange.type), durable)"
        case .createQueue(let queue):
            "+ queue \(queue.name) (\(([queue.type] + [queue.arguments.filter { $0.key != "x-queue-type" }.summary]).filter { !$0.isEmpty }.joined(separator: ", ")))"
        case .createBinding(let binding):
            "+ binding \(binding.label)"
        case .conflict(let conflict):
            "! \(conflict.object): \(conflict.argument) differs (live \(conflict.live ?? "not set"), file \(conflict.file ?? "not set")) — needs manual action"
        case .removeBinding(let binding):
            "- binding \(binding.label)" + (prune ? "" : " — kept; apply --prune removes it")
        case .unbindDisabled(let binding):
            "- binding \(binding.label) — consumer disabled"
        }
    }
}

extension BindingDeclaration {
    /// `events -> users.projection (user.*)`
    var label: String {
        "\(exchange) -> \(queue) (\(routingKey))" + (arguments.isEmpty ? "" : " [\(arguments.summary)]")
    }
}
