import Foundation

extension PromQL {
    /// Parses an expression, checking its types as Prometheus does (a range where a function wants one, a scalar
    /// where a number goes). A refusal names the construct and where it is.
    public static func parse(_ text: String) throws(ParseError) -> Expr {
        var parser = Parser(tokens: try tokens(text))
        let expr = try parser.expression(0)
        guard case .end = parser.current.kind else { throw parser.error("unexpected \(parser.describe(parser.current)) after a complete expression") }
        return expr
    }

    struct Parser {
        var tokens: [Token]
        var index = 0
        /// Sub-expressions open around the current token: bounded, so no input can exhaust the stack.
        var depth = 0
        static let maximumDepth = 128

        var current: Token { tokens[index] }

        func error(_ message: String, at position: Int? = nil) -> ParseError { ParseError(position: position ?? current.position, message: message) }

        func describe(_ token: Token) -> String {
            switch token.kind {
            case .identifier(let name): "\(name)"
            case .number(let value): "the number \(value)"
            case .string(let text): "the string \(PromQL.quoted(text))"
            case .duration(let value): "the duration \(PromQL.formatDuration(value))"
            case .punctuation(let text): "\"\(text)\""
            case .end: "the end of the expression"
            }
        }

        func isPunctuation(_ text: String) -> Bool {
            if case .punctuation(text) = current.kind { return true }
            return false
        }

        func isKeyword(_ word: String) -> Bool {
            if case .identifier(let name) = current.kind { return name.lowercased() == word }
            return false
        }

        mutating func expect(_ text: String, _ context: String) throws(ParseError) {
            guard isPunctuation(text) else { throw error("expected \"\(text)\" \(context), found \(describe(current))") }
            index += 1
        }

        /// The binary operator at the current token, if any.
        func binaryOperator() -> BinaryOp? {
            switch current.kind {
            case .punctuation(let text): BinaryOp(rawValue: text)
            case .identifier(let name): ["and", "or", "unless", "atan2"].contains(name.lowercased()) ? BinaryOp(rawValue: name.lowercased()) : nil
            default: nil
            }
        }

        /// Precedence climbing; `^` binds to the right, every other operator to the left.
        mutating func expression(_ minimum: Int) throws(ParseError) -> Expr {
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw error("the expression nests more than \(Self.maximumDepth) levels deep") }
            var lhs = try unary()
            while let op = binaryOperator(), op.precedence >= minimum {
                let position = current.position
                index += 1
                var returnBool = false
                if isKeyword("bool") {
                    guard op.isComparison else { throw error("bool goes only after a comparison operator (==, !=, >, <, >=, <=)") }
                    returnBool = true
                    index += 1
                }
                var matching: VectorMatching?
                if isKeyword("on") || isKeyword("ignoring") {
                    var vectorMatching = VectorMatching()
                    vectorMatching.on = isKeyword("on")
                    index += 1
                    vectorMatching.labels = try labelList("after on/ignoring")
                    if isKeyword("group_left") || isKeyword("group_right") {
                        guard !op.isSet else { throw error("group_left and group_right do not go with \(op.rawValue)") }
                        let left = isKeyword("group_left")
                        index += 1
                        let include = isPunctuation("(") ? try labelList("after group_left/group_right") : []
                        if vectorMatching.on, let both = include.first(where: vectorMatching.labels.contains) {
                            throw error("label \(both) must not be both in on (...) and in group_left/group_right (...)")
                        }
                        vectorMatching.cardinality = left ? .manyToOne(include) : .oneToMany(include)
                    }
                    matching = vectorMatching
                } else if isKeyword("group_left") || isKeyword("group_right") {
                    throw error("group_left and group_right need on (...) or ignoring (...) before them")
                }
                let rhs = try expression(op == .pow ? op.precedence : op.precedence + 1)
                lhs = try binary(op, lhs, rhs, returnBool: returnBool, matching: matching, at: position)
            }
            return lhs
        }

        func binary(_ op: BinaryOp, _ lhs: Expr, _ rhs: Expr, returnBool: Bool, matching: VectorMatching?, at position: Int) throws(ParseError)
            -> Expr
        {
            for side in [lhs, rhs] where side.type == .matrix || side.type == .string {
                throw error(
                    "\(op.rawValue) needs numbers or instant vectors on both sides, not a \(side.type == .matrix ? "range vector" : "string")",
                    at: position)
            }
            let scalars = lhs.type == .scalar && rhs.type == .scalar
            if op.isComparison, scalars, !returnBool {
                throw error("a comparison between two numbers needs bool (\(op.rawValue) bool)", at: position)
            }
            if op.isSet, lhs.type == .scalar || rhs.type == .scalar {
                throw error("\(op.rawValue) needs instant vectors on both sides", at: position)
            }
            if matching != nil, lhs.type == .scalar || rhs.type == .scalar {
                throw error("on/ignoring go only between two instant vectors", at: position)
            }
            return .binary(op, lhs, rhs, returnBool: returnBool, matching: matching)
        }

        mutating func labelList(_ context: String) throws(ParseError) -> [String] {
            try expect("(", context)
            var names: [String] = []
            while !isPunctuation(")") {
                guard case .identifier(let name) = current.kind, !name.contains(":") else {
                    throw error("expected a label name \(context), found \(describe(current))")
                }
                names.append(name)
                index += 1
                if isPunctuation(",") { index += 1 } else { break }
            }
            try expect(")", "to close the label list")
            return names
        }

        mutating func unary() throws(ParseError) -> Expr {
            if isPunctuation("-") || isPunctuation("+") {
                let minus = isPunctuation("-")
                let position = current.position
                index += 1
                // Unary minus binds looser than ^: -2^2 is -4.
                let operand = try expression(BinaryOp.pow.precedence)
                guard operand.type == .scalar || operand.type == .vector else {
                    throw error("a sign goes before a number or an instant vector", at: position)
                }
                if case .number(let value) = operand { return .number(minus ? -value : value) }
                return minus ? .negate(operand) : operand
            }
            return try postfix(try primary())
        }

        /// Range, offset and the refused subquery and `@` after an operand.
        mutating func postfix(_ operand: Expr) throws(ParseError) -> Expr {
            var expr = operand
            while true {
                if isPunctuation("[") {
                    let position = current.position
                    index += 1
                    guard case .duration(let range) = current.kind else {
                        throw error("expected a duration such as 5m in [...], found \(describe(current))")
                    }
                    index += 1
                    if isPunctuation(":") { throw error("subqueries (expr[range:step]) are not supported", at: position) }
                    try expect("]", "to close the range")
                    guard case .selector(var selector) = expr, selector.range == nil, selector.offset == 0 else {
                        throw error("a range [...] goes only right after a metric selector", at: position)
                    }
                    guard range > 0 else { throw error("a range must be longer than zero", at: position) }
                    selector.range = range
                    expr = .selector(selector)
                } else if isKeyword("offset") {
                    let position = current.position
                    index += 1
                    guard case .selector(var selector) = expr, selector.offset == 0 else {
                        throw error("offset goes only after a metric selector (or its range)", at: position)
                    }
                    let negative = isPunctuation("-")
                    if negative { index += 1 }
                    guard case .duration(let offset) = current.kind else {
                        throw error("expected a duration after offset, found \(describe(current))")
                    }
                    guard offset > 0 else { throw error("an offset must be longer than zero") }
                    index += 1
                    selector.offset = negative ? -offset : offset
                    expr = .selector(selector)
                } else if isPunctuation("@") {
                    throw error("the @ modifier is not supported")
                } else {
                    return expr
                }
            }
        }

        mutating func primary() throws(ParseError) -> Expr {
            let token = current
            switch token.kind {
            case .number(let value):
                index += 1
                return .number(value)
            case .string(let text):
                index += 1
                return .string(text)
            case .duration(let value):
                throw error("a duration (\(PromQL.formatDuration(value))) goes only in [...] or after offset")
            case .punctuation("("):
                index += 1
                let inner = try expression(0)
                try expect(")", "to close the parenthesis opened at character \(token.position + 1)")
                return .paren(inner)
            case .punctuation("{"):
                return .selector(try selector(name: nil, at: token.position))
            case .identifier(let name):
                index += 1
                let lower = name.lowercased()
                if PromQL.aggregations.contains(lower) && (isPunctuation("(") || isKeyword("by") || isKeyword("without")) {
                    return try aggregate(lower, at: token.position)
                }
                if lower == "count_values" { throw error("the aggregation count_values is not supported", at: token.position) }
                if isPunctuation("(") {
                    return try call(name, at: token.position)
                }
                if ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"].contains(lower) {
                    throw error("\(name) cannot start an expression", at: token.position)
                }
                return .selector(try selector(name: name, at: token.position))
            case .punctuation(let text):
                throw error("unexpected \"\(text)\"")
            case .end:
                throw error("the expression ends too early")
            }
        }

        mutating func call(_ name: String, at position: Int) throws(ParseError) -> Expr {
            guard let signature = PromQL.functions[name] else {
                if PromQL.unsupportedFunctions.contains(name) { throw error("the function \(name) is not supported", at: position) }
                throw error("unknown function \(name)", at: position)
            }
            try expect("(", "after \(name)")
            let arguments = try argumentList()
            try expect(")", "to close the arguments of \(name)")
            let needed = signature.arguments.count - signature.optional
            guard arguments.count >= needed, arguments.count <= signature.arguments.count else {
                let count = needed == signature.arguments.count ? "\(needed)" : "\(needed) to \(signature.arguments.count)"
                throw error("\(name) takes \(count) argument\(signature.arguments.count == 1 ? "" : "s"), not \(arguments.count)", at: position)
            }
            for (offset, argument) in arguments.enumerated() where argument.type != signature.arguments[offset] {
                throw error(
                    "argument \(offset + 1) of \(name) must be \(Self.article(signature.arguments[offset])), not \(Self.article(argument.type))",
                    at: position)
            }
            return .call(name, arguments)
        }

        /// Arguments up to the closing parenthesis (not read); a trailing comma is refused, as Prometheus refuses it.
        mutating func argumentList() throws(ParseError) -> [Expr] {
            var arguments: [Expr] = []
            while !isPunctuation(")") {
                arguments.append(try expression(0))
                guard isPunctuation(",") else { break }
                index += 1
                if isPunctuation(")") { throw error("a trailing comma is not allowed in a call's arguments") }
            }
            return arguments
        }

        static func article(_ type: ValueType) -> String {
            switch type {
            case .scalar: "a number"
            case .vector: "an instant vector"
            case .matrix: "a range vector (such as x[5m])"
            case .string: "a string"
            }
        }

        mutating func aggregate(_ op: String, at position: Int) throws(ParseError) -> Expr {
            var grouping: Grouping?
            func readGrouping(_ parser: inout Parser) throws(ParseError) {
                if parser.isKeyword("by") || parser.isKeyword("without") {
                    let by = parser.isKeyword("by")
                    parser.index += 1
                    let labels = try parser.labelList("after \(by ? "by" : "without")")
                    grouping = by ? .by(labels) : .without(labels)
                }
            }
            try readGrouping(&self)
            try expect("(", "after \(op)")
            let arguments = try argumentList()
            try expect(")", "to close \(op)(...)")
            if grouping == nil { try readGrouping(&self) }
            let takesParameter = ["topk", "bottomk", "quantile"].contains(op)
            guard arguments.count == (takesParameter ? 2 : 1) else {
                throw error("\(op) takes \(takesParameter ? "a parameter and an instant vector" : "one instant vector")", at: position)
            }
            guard arguments.last!.type == .vector else {
                throw error("\(op) aggregates an instant vector, not \(Self.article(arguments.last!.type))", at: position)
            }
            if takesParameter, arguments[0].type != .scalar { throw error("the parameter of \(op) must be a number", at: position) }
            return .aggregate(op, parameter: takesParameter ? arguments[0] : nil, grouping: grouping, arguments.last!)
        }

        mutating func selector(name: String?, at position: Int) throws(ParseError) -> Selector {
            var matchers: [Matcher] = []
            if isPunctuation("{") {
                index += 1
                while !isPunctuation("}") {
                    let namePosition = current.position
                    guard case .identifier(let label) = current.kind, !label.contains(":") else {
                        throw error("expected a label name in {...}, found \(describe(current))")
                    }
                    index += 1
                    guard case .punctuation(let opText) = current.kind, let op = MatchOp(rawValue: opText) else {
                        throw error("expected =, !=, =~ or !~ after \(label), found \(describe(current))")
                    }
                    index += 1
                    guard case .string(let value) = current.kind else {
                        throw error("expected a quoted value after \(label)\(opText), found \(describe(current))")
                    }
                    index += 1
                    do {
                        matchers.append(try Matcher(name: label, op: op, value: value))
                    } catch {
                        throw self.error("\(PromQL.quoted(value)) is not a valid regular expression", at: namePosition)
                    }
                    if isPunctuation(",") { index += 1 } else { break }
                }
                try expect("}", "to close the label matchers")
            }
            var metric = name
            if metric != nil, matchers.contains(where: { $0.name == "__name__" }) { throw error("the metric name is given twice", at: position) }
            if let named = matchers.firstIndex(where: { $0.name == "__name__" && $0.op == .equal }) {
                metric = matchers.remove(at: named).value
            }
            // Prometheus refuses a selector that every series would match.
            if metric == nil, !matchers.contains(where: { !$0.matches("") }) {
                throw error("a selector needs a metric name or a matcher that does not match the empty string", at: position)
            }
            return Selector(name: metric, matchers: matchers)
        }
    }
}
