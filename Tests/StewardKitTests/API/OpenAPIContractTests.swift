import Foundation
import Testing

@testable import StewardKit

/// The document's component schemas and the Swift types that write the replies and read the bodies describe the same
/// JSON: the same keys, the same required keys, the same types, nullability and choices. The types' shapes come from
/// the types themselves (`SchemaProbe`), so a field added to, removed from or retyped in a resource or an input fails
/// here until the document says the same. Every schema in the document is either tied to its type below or listed,
/// with the reason, among the few written by hand.
@Suite("The OpenAPI document and the Codable types")
struct OpenAPIContractTests {
    /// Replies: schema name -> the type the handlers encode (with `APIJSON`: snake_case keys).
    static let replies: [(String, any Decodable.Type)] = [
        ("AccountMatrix", AccountMatrixResource.self), ("AlertHistory", CursorPage<AlertHistoryEntry>.self),
        ("AlertList", ItemList<LiveAlertResource>.self), ("AlertRule", AlertRuleResource.self), ("AlertRuleList", ItemList<AlertRuleResource>.self),
        ("AlertImport", AlertImportResult.self),
        ("BackupHostSnapshotList", CursorPage<BackupSnapshotResource>.self), ("BackupPlan", BackupPlanResource.self),
        ("BackupPlanList", CursorPage<BackupPlanResource>.self), ("BackupPlanSnapshotList", BackupPlanSnapshotList.self),
        ("BackupRunList", CursorPage<BackupRunResource>.self), ("BackupRepository", BackupRepositoryResource.self),
        ("BackupRepositoryList", CursorPage<BackupRepositoryResource>.self),
        ("BackupRetentionPreview", BackupRetentionPreviewResource.self), ("BackupSnapshotList", CursorPage<BackupSnapshotResource>.self),
        ("BackupTree", BackupTreeResource.self), ("Channel", ChannelResource.self), ("ChannelList", ItemList<ChannelResource>.self),
        ("RemoteWrite", RemoteWriteResource.self), ("RemoteWriteList", ItemList<RemoteWriteResource>.self),
        ("Check", CheckResource.self), ("CheckList", ItemList<CheckResource>.self), ("SLO", SLOResource.self),
        ("SLOList", ItemList<SLOResource>.self), ("SLOBudgetHistory", SLOBudgetHistory.self), ("SLOImport", SLOImportResult.self),
        ("CommitList", ItemList<ConfigCommitResource>.self), ("DeliveryList", ItemList<DeliveryResource>.self),
        ("DesiredUsers", ItemList<DesiredDefinitionResource>.self), ("FleetSummary", FleetSummaryResource.self), ("Group", GroupResource.self),
        ("GroupList", ItemList<GroupResource>.self), ("Host", HostResource.self), ("HostAccounts", HostAccountsResource.self),
        ("HostFacts", HostFactsResource.self), ("HostList", HostListResource.self), ("HostResults", ItemList<HostResultResource>.self),
        ("Job", JobResource.self), ("JobList", JobListResource.self), ("MaintenanceList", ItemList<MaintenanceWindowResource>.self),
        ("MaintenanceWindow", MaintenanceWindowResource.self), ("Me", MeResource.self), ("MetricQueryResult", MetricQueryResource.self),
        ("MetricSeriesList", CursorPage<MetricSeriesResource>.self), ("PendingPackageList", CursorPage<PendingPackageResource>.self),
        ("PendingUpdatesList", CursorPage<PendingUpdatesResource>.self), ("PlaybookList", PlaybookList.self),
        ("RolloutList", CursorPage<RolloutSummaryResource>.self), ("RolloutSummary", RolloutSummaryResource.self),
        ("SSHIdentity", SSHIdentityResource.self), ("Schedule", ScheduleResource.self), ("ScheduleList", CursorPage<ScheduleResource>.self),
        ("SchedulePreview", SchedulePreviewResource.self), ("Silence", SilenceResource.self), ("SilenceList", ItemList<SilenceResource>.self),
        ("AuditList", CursorPage<AuditEventResource>.self), ("LegalHoldList", CursorPage<LegalHoldResource>.self),
        ("LegalHold", LegalHoldResource.self), ("StorageFigures", StorageFiguresResource.self),
        ("DataRetentionPreview", DataRetentionPreviewResource.self), ("JobAcknowledgement", JobAcknowledgement.self),
        ("DefinitionCommit", DesiredSaved.self), ("HostServices", HostServicesResource.self),
        ("FleetServiceList", FleetServiceListResource.self), ("HostDetail", HostDetailResource.self), ("Rollout", RolloutResource.self),
        ("RolloutCreated", RolloutCreatedResource.self), ("UserChangeJob", UserChangeAccepted.self),
        ("DataRetentionList", CursorPage<DataRetentionRecordResource>.self), ("DataRetentionRecord", DataRetentionRecordResource.self),
        ("ServiceUnitDetail", ServiceUnitDetailResource.self), ("HostProcesses", HostProcessesResource.self),
        ("HostOverview", HostOverviewResource.self), ("HostPackages", HostPackagesResource.self),
        ("PackageSearch", PackageSearchResource.self), ("FleetPackage", FleetPackageResource.self),
        ("HostCron", HostCronResource.self), ("DesiredServices", ItemList<DesiredServiceResource>.self),
        ("HostDisksNetwork", HostDisksNetworkResource.self), ("FleetCron", ItemList<ScheduledTaskResource>.self), ("LogPage", LogPageResource.self),
        ("LogSourceList", ItemList<LogSourceResource>.self), ("SyslogIntake", SyslogIntakeResource.self), ("SyslogSender", SyslogSenderResource.self),
        ("LogFileList", ItemList<LogFileResource>.self), ("LogFile", LogFileResource.self),
        ("PromQLInstant", PromQLController.Instant.self), ("PromQLRange", PromQLController.RangeResult.self),
    ]

    /// Request bodies: schema name -> the input type the handlers decode (keys as their `CodingKeys` name them).
    static let bodies: [(String, any Decodable.Type)] = [
        ("AdhocRun", AdhocInput.self), ("AlertRuleInput", AlertRuleInput.self), ("ChannelInput", ChannelInput.self),
        ("RemoteWriteInput", RemoteWriteInput.self), ("CheckInput", CheckInput.self), ("SLOInput", SLOInput.self),
        ("GroupChange", GroupChange.self), ("GroupInput", GroupInput.self), ("HostInput", HostInput.self),
        ("HostKeyTrust", HostKeyTrustInput.self), ("MaintenanceWindowInput", MaintenanceWindowInput.self), ("PlaybookRun", PlaybookRunInput.self),
        ("RolloutInput", RolloutInput.self), ("SchedulePreviewRequest", SchedulePreviewInput.self), ("ScheduleUpdate", ScheduleInput.self),
        ("SilenceInput", SilenceInput.self), ("UserChange", UserChangeInput.self), ("LegalHoldInput", LegalHoldInput.self),
        ("RolloutApproval", RolloutDecisionInput.self), ("RolloutDenial", RolloutDecisionInput.self),
        ("SyslogSenderInput", SyslogSenderInput.self), ("LogFileInput", LogFileInput.self),
        ("DataRetentionInput", RetentionPolicyInput.self), ("HostCreate", HostInput.self), ("RolloutCreate", RolloutInput.self),
        ("ServiceUnitAction", ServiceUnitActionInput.self), ("ProcessSignalInput", ProcessSignalInput.self),
        ("PackageActionInput", PackageActionInput.self), ("CronEntryInput", CronEntryInput.self),
        ("DesiredServiceInput", DesiredServiceInput.self),
    ]

    /// Schemas whose JSON no single Codable type states, with the reason; the e2e tests read real replies against
    /// them with every object closed (Tests/e2e/test_openapi.py).
    static let handWritten: [String: String] = [
        "Problem": "RFC 9457 problem details, written by Problem's own encoder",
        "Health": "the /healthz and /readyz bodies, answered before any route (the fast path writes them as fixed bytes)",
        "Binary": "a file download, not JSON", "OpenAPIDocument": "this document itself",
        "PrometheusRuleFile": "a Prometheus rule file (YAML) as Prometheus defines it", "PrometheusRuleFileText": "the same, as text",
        "PrometheusRuleFileUpload": "the same, uploaded",
        "SLOExportText": "Sloth or OpenSLO YAML written by SLOFormats", "SLOImportUpload": "Sloth or OpenSLO YAML as uploaded",
        "HostKeyVerdict": "one shape per verdict (oneOf), written by hand from the HostKeyVerdict enum",
        "BackupPlanCreate": "BackupPlanInput with its required fields; BackupPlanInput is compared with BackupInput's field lists below",
        "BackupPlanInput": "compared with BackupInput's field lists below", "BackupRetentionInput": "as BackupPlanInput",
        "BackupRepositoryInput": "a repository body, read field by field from [String: JSONValue] by the backups API",
        "BackupRepositoryPassword": "as BackupRepositoryInput", "BackupRestore": "as BackupRepositoryInput",
        "DesiredUser": "a desired user's definition, read field by field from [String: JSONValue] as it is read from YAML",
        "DesiredGroup": "as DesiredUser",
    ]

    static var schemas: [String: JSONValue] {
        guard case .object(let document) = APIDocumentation().document(), case .object(let components)? = document["components"],
            case .object(let schemas)? = components["schemas"]
        else { return [:] }
        return schemas
    }

    @Test("every reply type has exactly the keys, required keys and types of its schema")
    func repliesMatchTheirSchemas() throws { try expectNoDifferences(Self.replies, keys: .snakeCase, reply: true) }

    @Test("every request body type accepts exactly the fields of its schema, with their types")
    func bodiesMatchTheirSchemas() throws { try expectNoDifferences(Self.bodies, keys: .asDeclared, reply: false) }

    private func expectNoDifferences(_ pairs: [(String, any Decodable.Type)], keys: WireKeys, reply: Bool) throws {
        var problems: [String] = []
        for (name, type) in pairs { problems += try compare(type, keys: keys, against: name, reply: reply) }
        #expect(problems.isEmpty, Comment(rawValue: "\(problems.count) differences:\n" + problems.joined(separator: "\n")))
    }

    @Test("every schema in the document is tied to a type, reached from one, or listed as written by hand")
    func everySchemaIsAccountedFor() {
        var tied = Set(Self.replies.map(\.0) + Self.bodies.map(\.0) + Self.handWritten.keys)
        // A schema referenced from a tied one is compared where it is referenced (Alert through AlertList, ...).
        for name in Self.replies.map(\.0) + Self.bodies.map(\.0) { tied.formUnion(Self.references(from: Self.schemas[name])) }
        let referenced = Set(Self.schemas.keys)
        #expect(referenced.subtracting(tied).sorted() == [], "schemas with no type and no reason")
        #expect(tied.subtracting(referenced).sorted() == [], "types tied to schemas the document lacks")
    }

    /// Backup plan bodies are read field by field (`BackupInput`, shared with the form): its field lists are the contract.
    @Test("a backup plan body's documented fields are the ones BackupInput reads, lists as lists and flags as flags")
    func backupPlanFieldsMatchTheReader() throws {
        let comparison = SchemaComparison(schemas: Self.schemas, reply: false)
        guard case .object(let properties)? = comparison.resolved(try #require(Self.schemas["BackupPlanInput"]))["properties"] else {
            Issue.record("BackupPlanInput lists no properties")
            return
        }
        let read = BackupInput.listFields.union(BackupInput.flagFields).union(BackupInput.scalarFields)
        #expect(Set(properties.keys) == read)
        for field in BackupInput.listFields {
            #expect(properties[field].map { comparison.typeNames($0).types.contains("array") } == true, "\(field) is a list")
        }
        for field in BackupInput.flagFields {
            #expect(properties[field].map { comparison.typeNames($0).types == ["boolean"] } == true, "\(field) is a flag")
        }
        guard case .object(let retention)? = Self.schemas["BackupRetentionInput"]?["properties"] else {
            Issue.record("BackupRetentionInput lists no properties")
            return
        }
        #expect(Set(retention.keys) == Set(RetentionPolicy.fields + ["keep_within"]))
    }

    @Test("the comparison finds a field the document lacks, a missing one and a wrong type")
    func theComparisonCanFail() throws {
        struct Drifted: Codable {
            var id: Int64
            var name: Int
            var extraField: String
        }
        let problems = try compare(Drifted.self, keys: .snakeCase, against: "Group", reply: true)
        #expect(problems.contains { $0.contains("extra_field") && $0.contains("not in the document") })
        #expect(problems.contains { $0.contains(".hosts") && $0.contains("no such property") })
        #expect(problems.contains { $0.contains(".name") && $0.contains("integer") })
    }

    /// Every schema name reached through `$ref` from a schema.
    static func references(from schema: JSONValue?) -> Set<String> {
        var found: Set<String> = []
        var queue = [schema].compactMap { $0 }
        while let next = queue.popLast() {
            switch next {
            case .object(let fields):
                if case .string(let reference)? = fields["$ref"], let name = reference.split(separator: "/").last.map(String.init),
                    found.insert(name).inserted, let target = schemas[name]
                {
                    queue.append(target)
                }
                queue += fields.values
            case .array(let items): queue += items
            default: break
            }
        }
        return found
    }

    private func compare(_ type: any Decodable.Type, keys: WireKeys, against name: String, reply: Bool) throws -> [String] {
        guard let schema = Self.schemas[name] else { return ["\(name): not in the document"] }
        let shape = try probe(type, keys: keys)
        var problems: [String] = []
        SchemaComparison(schemas: Self.schemas, reply: reply).compare(shape, schema, at: name, into: &problems)
        return problems
    }

    private func probe<T: Decodable>(_ type: T.Type, keys: WireKeys) throws -> WireShape {
        try SchemaProbe(keys: keys).shape(of: type).shape
    }
}

/// Compares a probed shape with a JSON Schema from the document, resolving `$ref`, `allOf` and nullable forms.
struct SchemaComparison {
    let schemas: [String: JSONValue]
    let reply: Bool

    func compare(_ shape: WireShape, _ schema: JSONValue, at path: String, into problems: inout [String]) {
        let schema = resolved(schema)
        let (allowsNull, types) = typeNames(schema)
        switch shape {
        case .any:
            return
        case .nullable(let inner):
            if reply && !allowsNull && !types.isEmpty { problems.append("\(path): the type may write null; the document does not allow it") }
            compare(inner, schema, at: path, into: &problems)
            return
        default: break
        }
        guard !types.isEmpty else { return }  // no type in the document: anything goes
        switch shape {
        case .string:
            expect("string", types, path, &problems)
        case .choice(let values):
            expect("string", types, path, &problems)
            if case .array(let listed)? = schema["enum"] {
                let documented = Set(listed.compactMap { if case .string(let text) = $0 { text } else { nil } })
                if documented != Set(values) {
                    problems.append("\(path): the type accepts \(values.sorted()), the document lists \(documented.sorted())")
                }
            } else if reply == false {
                problems.append("\(path): the type accepts only \(values.sorted()); the document lists no enum")
            }
        case .integer:
            expect("integer", types, path, &problems)
        case .number:
            if !types.contains("number") && !types.contains("integer") {
                problems.append("\(path): the type is a number, the document says \(types)")
            }
        case .boolean:
            expect("boolean", types, path, &problems)
        case .array(let item):
            expect("array", types, path, &problems)
            if let items = schema["items"] { compare(item, items, at: path + "[]", into: &problems) }
        case .map(let value):
            expect("object", types, path, &problems)
            if let additional = schema["additionalProperties"], case .object = additional {
                compare(value, additional, at: path + "{}", into: &problems)
            } else if case .object(let properties)? = schema["properties"] {
                // Fixed keys (a resource's links): each documented key must be a value the map holds.
                for (key, property) in properties.sorted(by: { $0.key < $1.key }) { compare(value, property, at: "\(path).\(key)", into: &problems) }
            }
        case .object(let fields):
            expect("object", types, path, &problems)
            guard case .object(let properties)? = schema["properties"] else {
                problems.append("\(path): the type has fields \(fields.keys.sorted()); the document lists no properties")
                return
            }
            let required = Set(stringList(schema["required"]))
            for (key, field) in fields.sorted(by: { $0.key < $1.key }) {
                guard let property = properties[key] else {
                    problems.append("\(path).\(key): the type has it, it is not in the document")
                    continue
                }
                if reply {
                    if field.required && !required.contains(key) {
                        problems.append("\(path).\(key): always written, the document does not require it")
                    }
                    if !field.required && required.contains(key) { problems.append("\(path).\(key): left out when empty, the document requires it") }
                }
                compare(field.shape, property, at: "\(path).\(key)", into: &problems)
            }
            for key in properties.keys.sorted() where fields[key] == nil {
                problems.append("\(path).\(key): in the document, the type has no such property")
            }
        case .any, .nullable: break
        }
    }

    private func expect(_ type: String, _ types: Set<String>, _ path: String, _ problems: inout [String]) {
        if !types.contains(type) { problems.append("\(path): the type is \(type), the document says \(types.sorted())") }
    }

    /// `$ref` followed, `allOf` merged into one object, `anyOf [X, null]` turned into X with null allowed.
    func resolved(_ schema: JSONValue) -> JSONValue {
        var schema = schema
        while case .string(let reference)? = schema["$ref"], let name = reference.split(separator: "/").last,
            let target = schemas[String(name)]
        {
            schema = target
        }
        if case .array(let parts)? = schema["allOf"] {
            var properties: [String: JSONValue] = [:]
            var required: [String] = []
            for part in parts.map(resolved) {
                if case .object(let more)? = part["properties"] { properties.merge(more) { a, _ in a } }
                required += stringList(part["required"])
            }
            return ["type": "object", "properties": .object(properties), "required": JSONValue(required)]
        }
        if case .array(let options)? = schema["anyOf"] {
            let nonNull = options.map(resolved).filter { typeNames($0).types != ["null"] }
            if nonNull.count == 1, var only = Optional(nonNull[0]) {
                let (_, types) = typeNames(only)
                only["type"] = JSONValue(types.sorted() + ["null"])
                return only
            }
        }
        return schema
    }

    func typeNames(_ schema: JSONValue) -> (allowsNull: Bool, types: Set<String>) {
        var names: Set<String> = []
        switch schema["type"] {
        case .string(let one)?: names = [one]
        case .array(let many)?: names = Set(stringList(.array(many)))
        default: break
        }
        let allowsNull = names.contains("null")
        names.remove("null")
        return (allowsNull, names)
    }

    func stringList(_ value: JSONValue?) -> [String] {
        guard case .array(let items)? = value else { return [] }
        return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
    }
}
