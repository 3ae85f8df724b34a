import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import StewardKit

@Suite("Syslog intake: RFC 5424 and RFC 3164 messages, RFC 6587 framing, who may send, and lines stored per host")
struct SyslogTests {
    static func date(_ text: String) -> Date? { ISO8601DateFormatter().date(from: text) }

    static func origin(zone: String = "UTC", now: String = "2026-12-06T12:00:00Z") -> SyslogMessage.Origin {
        SyslogMessage.Origin(sender: "192.0.2.7", transport: "tcp", zone: TimeZone(identifier: zone)!, now: Self.date(now)!)
    }

    static func parse(_ text: String, zone: String = "UTC", now: String = "2026-12-06T12:00:00Z") -> LogLine {
        SyslogMessage.line(ArraySlice(Array(text.utf8)), origin: origin(zone: zone, now: now))
    }

    static func micros(_ text: String) -> Int64 { Int64((date(text)!.timeIntervalSince1970 * 1_000_000).rounded()) }

    @Test("RFC 5424: header fields, fractions and offsets, structured data with escapes, a BOM, nil values")
    func rfc5424() {
        let line = Self.parse(
            "<165>1 2026-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"][b@1 x=\"y\"] \u{FEFF}An application event log entry"
        )
        #expect(line.priority == 5 && line.fields["SYSLOG_FACILITY"] == "20")
        #expect(line.time == Self.micros("2026-10-11T22:14:15Z") + 3000)
        #expect(line.identifier == "evntslog" && line.pid == nil && line.fields["SYSLOG_MSGID"] == "ID47")
        #expect(line.fields["SYSLOG_HOSTNAME"] == "mymachine.example.com")
        #expect(line.fields["SYSLOG_STRUCTURED_DATA"] == "[exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"][b@1 x=\"y\"]")
        #expect(line.message == "An application event log entry")
        #expect(line.fields["STEWARD_SYSLOG_FORMAT"] == "rfc5424" && line.fields["STEWARD_SENDER"] == "192.0.2.7")

        let offset = Self.parse("<34>1 2026-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.")
        #expect(offset.time == Self.micros("2026-08-24T12:14:15Z") + 3 && offset.pid == 8710 && offset.priority == 2)
        #expect(offset.message == "%% It's time to make the do-nuts." && offset.fields["SYSLOG_STRUCTURED_DATA"] == nil)

        // No timestamp and no message: the time it arrived, said so.
        let bare = Self.parse("<14>1 - - - - - -")
        #expect(bare.time == Self.micros("2026-12-06T12:00:00Z") && bare.fields["STEWARD_SYSLOG_TIME"] == "received" && bare.message.isEmpty)
        // A time a sender cannot mean (far ahead) is not believed; the claim is kept.
        let ahead = Self.parse("<14>1 2099-01-01T00:00:00Z h app - - - soon")
        #expect(ahead.time == Self.micros("2026-12-06T12:00:00Z") && ahead.fields["STEWARD_CLAIMED_TIMESTAMP"] != nil)
        // A message that spans lines keeps them (octet counting carries it whole).
        let multi = Self.parse("<11>1 2026-12-06T11:00:00Z web1 app 7 - - first line\n  second line\n\tthird")
        #expect(multi.message == "first line\n  second line\n\tthird" && multi.priority == 3)
    }

    @Test("RFC 3164: the sender's zone, the nearest year (a December line in January is last year's), tags, pids and odd forms")
    func rfc3164() {
        let berlin = Self.parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", zone: "Europe/Berlin")
        #expect(berlin.time == Self.micros("2026-10-11T20:14:15Z") && berlin.priority == 2 && berlin.fields["SYSLOG_FACILITY"] == "4")
        #expect(berlin.identifier == "su" && berlin.fields["SYSLOG_HOSTNAME"] == "mymachine" && berlin.message.hasPrefix("'su root' failed"))

        let december = Self.parse("<13>Dec 31 23:59:00 host app[42]: last of the year", now: "2027-01-01T00:10:00Z")
        #expect(december.time == Self.micros("2026-12-31T23:59:00Z") && december.pid == 42 && december.identifier == "app")
        let january = Self.parse("<13>Jan  1 00:01:00 host app: first of the year", now: "2026-12-31T23:59:00Z")
        #expect(january.time == Self.micros("2027-01-01T00:01:00Z"))
        // 29 February exists only in leap years: read on 1 March 2029 it is 2028's, not a day rolled into March.
        let leap = Self.parse("<13>Feb 29 10:00:00 host app: leap", now: "2029-03-01T00:00:00Z")
        #expect(leap.time == Self.micros("2028-02-29T10:00:00Z"))

        // rsyslog's forwarding with a precise time, and a sender that writes no host name.
        let precise = Self.parse("<30>2026-12-06T11:58:01.123456+00:00 web2 nginx[9]: GET / 200")
        #expect(precise.time == Self.micros("2026-12-06T11:58:01Z") + 123_456 && precise.fields["SYSLOG_HOSTNAME"] == "web2" && precise.pid == 9)
        let hostless = Self.parse("<30>Dec  6 11:00:00 cron[77]: job done")
        #expect(hostless.identifier == "cron" && hostless.pid == 77 && hostless.fields["SYSLOG_HOSTNAME"] == nil && hostless.message == "job done")

        // No PRI, no time, no tag: user.notice, the time it arrived, all of it the message.
        let plain = Self.parse("just some words\r\n")
        #expect(plain.priority == 5 && plain.fields["SYSLOG_FACILITY"] == "1" && plain.message == "just some words")
        #expect(plain.fields["STEWARD_SYSLOG_TIME"] == "received")
        // A PRI out of range is text, not a priority.
        #expect(Self.parse("<999>x: y").message == "<999>x: y")
        // Invalid UTF-8 is replaced, never refused; an overlong message is cut and says so.
        #expect(SyslogMessage.line([0x3C, 0x31, 0x33, 0x3E, 0x61, 0x3A, 0x20, 0xFF, 0x62], origin: Self.origin()).message == "\u{FFFD}b")
        #expect(Self.parse("<13>a: " + String(repeating: "x", count: 40_000)).message.hasSuffix(" [cut]"))
    }

    @Test("RFC 6587 framing: octet counts across reads, line framing, both on one connection, and limits")
    func framing() throws {
        var framer = SyslogFramer()
        let first = "<13>1 - - - - - - one\nline"
        let stream = "\(first.utf8.count) \(first)<13>plain two\n<13>plain three\n"
        var frames: [String] = []
        // Byte by byte: every split point.
        for byte in stream.utf8 { frames += try framer.push([byte]).map { String(decoding: $0, as: UTF8.self) } }
        #expect(frames == [first, "<13>plain two", "<13>plain three"])
        #expect(framer.finish() == nil)

        var trailing = SyslogFramer()
        #expect(try trailing.push(Array("<13>no line end".utf8)).isEmpty)
        #expect(trailing.finish().map { String(decoding: $0, as: UTF8.self) } == "<13>no line end")

        var half = SyslogFramer()
        #expect(try half.push(Array("30 <13>short".utf8)).isEmpty)
        #expect(half.finish() == nil && half.damaged == 1)

        var long = SyslogFramer()
        let cut = try long.push(Array(repeating: UInt8(ascii: "a"), count: SyslogFramer.maxFrame + 10) + Array("tail\n<13>next\n".utf8))
        #expect(cut.count == 2 && cut[0].count == SyslogFramer.maxFrame && String(decoding: cut[1], as: UTF8.self) == "<13>next")
        #expect(long.damaged == 1)

        var huge = SyslogFramer()
        #expect(throws: SyslogFramer.Failure.self) { try huge.push(Array("9999999 <13>x".utf8)) }
        var garbled = SyslogFramer()
        #expect(throws: SyslogFramer.Failure.self) { try garbled.push(Array("12x<13>abc".utf8)) }
    }

    static func host(_ id: Int64, _ name: String, _ address: String, transport: StewardKit.Host.Transport = .ssh) -> StewardKit.Host {
        StewardKit.Host(
            id: id, name: name, address: address, transport: transport, sshPort: 22, sshUser: "root", become: .none, groups: [], tags: [],
            variables: "", metricsURL: nil, metricsAllow: nil, notes: "", enabled: true, state: .up, stateDetail: nil, lastSeenAt: nil,
            createdAt: Date(), updatedAt: Date())
    }

    @Test("who may send: the most specific entry decides; a host named, by address, loopback as the panel host, or no host")
    func routes() {
        func sender(_ network: String, host: Int64? = nil, zone: String = "") -> SyslogSender {
            var sender = SyslogSender()
            sender.network = network
            sender.hostID = host
            sender.timeZone = zone
            return sender
        }
        // A tunnelled host also named 127.0.0.1 comes first: loopback is still the panel host.
        let hosts = [
            Self.host(4, "tunnel", "127.0.0.1"), Self.host(1, "panel", "127.0.0.1", transport: .local), Self.host(2, "sw1", "10.0.0.5"),
            Self.host(3, "web", "2001:db8::7"),
        ]
        let routes = SyslogRoutes(
            senders: [sender("10.0.0.0/8"), sender("10.0.0.9", host: 2, zone: "Asia/Tokyo"), sender("127.0.0.1"), sender("2001:db8::/32")],
            hosts: hosts, zones: [2: "Europe/Berlin"])
        #expect(routes.decide("10.0.0.5") == .host(id: 2, zone: TimeZone(identifier: "Europe/Berlin")!))
        #expect(routes.decide("10.0.0.9") == .host(id: 2, zone: TimeZone(identifier: "Asia/Tokyo")!))
        #expect(routes.decide("10.1.2.3") == .unattributed(network: "10.0.0.0/8"))
        #expect(routes.decide("127.0.0.1") == .host(id: 1, zone: .current))
        #expect(routes.decide("2001:db8:0:0::7") == .host(id: 3, zone: .current))
        #expect(routes.decide("192.0.2.1") == .refused)
        #expect(routes.decide("not an address") == .refused)
        #expect(SyslogRoutes().decide("127.0.0.1") == .refused, "nothing is accepted before an admin lists a sender")

        var bad = SyslogSender()
        bad.network = "10.0.0.0/33"
        bad.timeZone = "Mars/Olympus"
        bad.hostID = 99
        #expect(Set(bad.problems(hosts: hosts).keys) == ["network", "time_zone", "host"])
    }

    /// A free port for TCP and UDP on loopback.
    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        return channel.localAddress!.port!
    }

    @Test("real sockets: TCP with both framings and UDP from a listed sender are stored under its host; others are refused")
    func intake() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        var settings = SyslogIntake.Settings()
        settings.bind = "127.0.0.1"
        settings.port = try Self.freePort()
        // New Year's Day, to read a December line as last year's.
        let newYear = Self.date("2027-01-01T00:05:00Z")!
        settings.clock = { newYear }
        let intake = SyslogIntake(
            store: server.logs, senders: SyslogSenderStore(database: server.database), hosts: server.hosts,
            readings: HostReadingStore(database: server.database), settings: settings, logger: Logger(label: "test"))
        var deviceSettings = HostSettings()
        deviceSettings.name = "switch1"
        deviceSettings.address = "192.0.2.50"
        let device = try server.hosts.create(deviceSettings, by: .system, now: Date())
        let channels = await intake.listen()
        #expect(channels.count == 2 && intake.status().problems.isEmpty)

        // One address holds at most 16 connections (a listed device cannot take every slot).
        var loopback = SyslogSender()
        loopback.network = "127.0.0.2"
        loopback.hostID = device.id
        _ = try SyslogSenderStore(database: server.database).create(loopback, hosts: try server.hosts.all(), by: .system, now: Date())
        intake.reload()
        let admitted = (0..<20).filter { _ in intake.admit("127.0.0.2") }.count
        #expect(admitted == SyslogIntake.maxConnectionsPerAddress && intake.admit("127.0.0.3") == false)
        for _ in 0..<admitted { intake.closed("127.0.0.2") }
        #expect(intake.admit("127.0.0.2"))
        intake.closed("127.0.0.2")

        // Nobody is listed: the connection is closed and counted.
        try await Self.sendTCP(port: settings.port, "<13>refused: nobody listed\n")
        try await Task.sleep(for: .milliseconds(200))
        intake.flush()
        #expect(intake.status().senders.first { $0.address == "127.0.0.1" }?.counts.refused == 1)

        var sender = SyslogSender()
        sender.network = "127.0.0.1"
        sender.hostID = device.id
        _ = try SyslogSenderStore(database: server.database).create(sender, hosts: try server.hosts.all(), by: .system, now: Date())
        intake.reload()
        let multi = "<11>1 2026-12-31T23:00:00.5Z switch1 ifmgr 3 - - link down on Gi0/1\nflap count 3"
        try await Self.sendTCP(port: settings.port, "\(multi.utf8.count) \(multi)<14>Dec 31 23:59:30 switch1 sshd[5]: line framed\n")
        try await Self.sendUDP(port: settings.port, "<12>1 - switch1 udpapp - - - over udp")
        var stored: [LogLine] = []
        for _ in 0..<50 where stored.count < 3 {
            try await Task.sleep(for: .milliseconds(100))
            intake.flush()
            var query = LogQuery(from: 0, to: EpochMilliseconds.from(newYear) + 86_400_000)
            query.maxPriority = 7
            query.hostIDs = [device.id]
            stored = try server.logs.search(query).hits.map(\.line)
        }
        let messages = Set(stored.map(\.message))
        #expect(messages == ["link down on Gi0/1\nflap count 3", "line framed", "over udp"])
        let times = Dictionary(stored.map { ($0.message, $0.time) }, uniquingKeysWith: { a, _ in a })
        #expect(times["line framed"] == Self.micros("2026-12-31T23:59:30Z"), "a December line read in January is last year's")
        #expect(times["link down on Gi0/1\nflap count 3"] == Self.micros("2026-12-31T23:00:00Z") + 500_000)
        #expect(times["over udp"] == Self.micros("2027-01-01T00:05:00Z"), "no timestamp: when it arrived")
        #expect(Set(stored.compactMap { $0.fields["STEWARD_SYSLOG_TRANSPORT"] }) == ["tcp", "udp"])
        #expect(try server.logs.sources().contains { $0.hostID == device.id && $0.source == "syslog" && $0.linesTotal == 3 })
        let counts = intake.status().senders.first { $0.address == "127.0.0.1" }?.counts
        #expect(counts?.received == 3 && counts?.stored == 3)
        for channel in channels { try await channel.close() }
    }

    static func sendTCP(port: Int, _ text: String) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        // A refused sender's connection may be closed before the write.
        try? await channel.writeAndFlush(ByteBuffer(string: text)).get()
        try? await Task.sleep(for: .milliseconds(50))
        try? await channel.close().get()
    }

    static func sendUDP(port: Int, _ text: String) async throws {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let target = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(string: text))).get()
        try await channel.close().get()
    }
}
