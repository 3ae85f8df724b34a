import Foundation

extension PromQL {
    /// An expression written back as PromQL text that parses to the same expression (parentheses as written).
    public static func format(_ expr: Expr) -> String {
        switch expr {
        case .number(let value): return formatNumber(value)
        case .string(let text): return quoted(text)
        case .selector(let selector): return format(selector)
        case .call(let name, let arguments): return name + "(" + arguments.map(format).joined(separator: ", ") + ")"
        case .aggregate(let name, let parameter, let grouping, let inner):
            var text = name
            switch grouping {
            case .by(let labels)?: text += " by (" + labels.joined(separator: ", ") + ")"
            case .without(let labels)?: text += " without (" + labels.joined(separator: ", ") + ")"
            case nil: break
            }
            return text + " (" + (parameter.map { format($0) + ", " } ?? "") + format(inner) + ")"
        case .binary(let op, let lhs, let rhs, let returnBool, let matching):
            var text = format(lhs) + " " + op.rawValue
            if returnBool { text += " bool" }
            if let matching {
                if matching.on || !matching.labels.isEmpty {
                    text += (matching.on ? " on (" : " ignoring (") + matching.labels.joined(separator: ", ") + ")"
                }
                switch matching.cardinality {
                case .oneToOne: break
                case .manyToOne(let labels): text += " group_left (" + labels.joined(separator: ", ") + ")"
                case .oneToMany(let labels): text += " group_right (" + labels.joined(separator: ", ") + ")"
                }
            }
            return text + " " + format(rhs)
        case .negate(let inner): return "-" + format(inner)
        case .paren(let inner): return "(" + format(inner) + ")"
        }
    }

    static func format(_ selector: Selector) -> String {
        var text = selector.name ?? ""
        if !selector.matchers.isEmpty || selector.name == nil {
            text += "{" + selector.matchers.map(\.description).joined(separator: ", ") + "}"
        }
        if let range = selector.range { text += "[" + formatDuration(range) + "]" }
        if selector.offset != 0 {
            text += " offset " + (selector.offset < 0 ? "-" : "") + formatDuration(abs(selector.offset))
        }
        return text
    }

    /// A number as PromQL reads it back: whole numbers without a fraction, Inf and NaN by name.
    public static func formatNumber(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension PromQL.Expr {
    /// The expression with every selector passed through `transform`.
    public func mappingSelectors(_ transform: (PromQL.Selector) -> PromQL.Selector) -> PromQL.Expr {
        switch self {
        case .number, .string: return self
        case .selector(let selector): return .selector(transform(selector))
        case .call(let name, let arguments): return .call(name, arguments.map { $0.mappingSelectors(transform) })
        case .aggregate(let name, let parameter, let grouping, let inner):
            return .aggregate(name, parameter: parameter?.mappingSelectors(transform), grouping: grouping, inner.mappingSelectors(transform))
        case .binary(let op, let lhs, let rhs, let returnBool, let matching):
            return .binary(op, lhs.mappingSelectors(transform), rhs.mappingSelectors(transform), returnBool: returnBool, matching: matching)
        case .negate(let inner): return .negate(inner.mappingSelectors(transform))
        case .paren(let inner): return .paren(inner.mappingSelectors(transform))
        }
    }
}
