import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import StewardKit

/// A host as node_exporter reports it (4 KiB blocks): a root with ext4's 5 % reserved for root, a /boot, a data disk
/// without reserved blocks (xfs), a bind mount of the data disk, and the mounts the fullest figure must leave out.
/// df on such a host (`df -B4096 --output=target,size,used,avail,pcent`) shows:
///
///     /       25600000   2560000  21760000  11%
///     /boot     249856     30000    207364  13%
///     /srv   262144000  36700160 225443840  14%
///
/// (size − available) / size, the figure before, gave 15 % for `/` and 17.01 % for /boot, and so named the wrong mount.
private let sampleHostMetrics = #"""
    # TYPE node_filesystem_size_bytes gauge
    node_filesystem_size_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 104857600000
    node_filesystem_size_bytes{device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/boot"} 1023410176
    node_filesystem_size_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/srv"} 1073741824000
    node_filesystem_size_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/var/lib/postgresql"} 1073741824000
    node_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1677721600
    node_filesystem_size_bytes{device="udev",fstype="devtmpfs",mountpoint="/dev"} 8388608000
    node_filesystem_size_bytes{device="/dev/loop3",fstype="squashfs",mountpoint="/snap/core22/1380"} 77725696
    node_filesystem_size_bytes{device="overlay",fstype="overlay",mountpoint="/var/lib/docker/overlay2/3f1c/merged"} 104857600000
    # TYPE node_filesystem_free_bytes gauge
    node_filesystem_free_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 94371840000
    node_filesystem_free_bytes{device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/boot"} 900530176
    node_filesystem_free_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/srv"} 923417968640
    node_filesystem_free_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/var/lib/postgresql"} 923417968640
    node_filesystem_free_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 16777216
    node_filesystem_free_bytes{device="udev",fstype="devtmpfs",mountpoint="/dev"} 8388608000
    node_filesystem_free_bytes{device="/dev/loop3",fstype="squashfs",mountpoint="/snap/core22/1380"} 0
    node_filesystem_free_bytes{device="overlay",fstype="overlay",mountpoint="/var/lib/docker/overlay2/3f1c/merged"} 94371840000
    # TYPE node_filesystem_avail_bytes gauge
    node_filesystem_avail_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 89128960000
    node_filesystem_avail_bytes{device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/boot"} 849362944
    node_filesystem_avail_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/srv"} 923417968640
    node_filesystem_avail_bytes{device="/dev/nvme1n1",fstype="xfs",mountpoint="/var/lib/postgresql"} 923417968640
    node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 16777216
    node_filesystem_avail_bytes{device="udev",fstype="devtmpfs",mountpoint="/dev"} 8388608000
    node_filesystem_avail_bytes{device="/dev/loop3",fstype="squashfs",mountpoint="/snap/core22/1380"} 0
    node_filesystem_avail_bytes{device="overlay",fstype="overlay",mountpoint="/var/lib/docker/overlay2/3f1c/merged"} 89128960000
    """#

@Suite struct FilesystemFigureTests {
    func mounts(_ families: [PrometheusText.Family]) -> [HostSummary.Filesystem] {
        var byName: [String: [PrometheusText.Sample]] = [:]
        for family in families { for sample in family.samples { byName[sample.name, default: []].append(sample) } }
        return HostSummary.filesystems(
            size: byName["node_filesystem_size_bytes"] ?? [], free: byName["node_filesystem_free_bytes"] ?? [],
            available: byName["node_filesystem_avail_bytes"] ?? [])
    }

    @Test func fullestFilesystemIsDfUsePercent() throws {
        let families = try PrometheusText.parse(sampleHostMetrics)
        let found = mounts(families)
        // tmpfs, devtmpfs, squashfs and the overlay are left out; the bind mount counts once, at its shorter mount point.
        #expect(found.map(\.mountpoint) == ["/", "/boot", "/srv"])
        #expect(found.map(\.usedPercent) == [11, 13, 14])
        let root = try #require(found.first)
        #expect(root.usedBytes == 2_560_000 * 4096 && root.availableBytes == 21_760_000 * 4096)
        let fullest = try #require(HostSummary.fullest(found))
        #expect(fullest.mountpoint == "/srv" && fullest.usedPercent == 14)
        #expect(HostSummary.derive(families, time: 0, previous: nil).values[HostSummary.filesystemPercent] == 14)
        #expect(MonitoringController.filesystemDetail(fullest) == "/srv · 140 GiB used of 1000 GiB, 860 GiB available")
    }

    @Test func reservedBlocksAreNeitherUsedNorAvailable() throws {
        // The panel host of the report: ext4 with 62.5 % of its blocks reserved (df -B1 /: 270553174016 size,
        // 21234208768 used, 80208977920 avail, 21%); (size − available) / size read 70.35 %.
        let root = HostSummary.Filesystem(
            mountpoint: "/", device: "/dev/vda", type: "ext4", sizeBytes: 270_553_174_016, freeBytes: 249_318_965_248,
            availableBytes: 80_208_977_920)
        #expect(root.usedBytes == 21_234_208_768)
        #expect(root.usedPercent == 21)
        // df's rounding: up to a whole percent, in integers, so an exact 21 stays 21 and a hair above it is 22.
        #expect(HostSummary.dfPercent(used: 21, available: 79) == 21)
        #expect(HostSummary.dfPercent(used: 2_100_000_000_001, available: 7_899_999_999_999) == 22)
        #expect(HostSummary.dfPercent(used: 1, available: 1_000_000_000_000) == 1)
        #expect(HostSummary.dfPercent(used: 0, available: 4096) == 0)
        #expect(HostSummary.dfPercent(used: 0, available: 0) == nil)
        #expect(HostSummary.dfPercent(used: 4096, available: 0) == 100)
        // Without free bytes (an allow list that drops them) reserved blocks count as used, as before.
        let families = try PrometheusText.parse(
            sampleHostMetrics.split(separator: "\n").filter { !$0.contains("node_filesystem_free_bytes") }.joined(separator: "\n"))
        #expect(mounts(families).first?.usedPercent == 15)
    }

    @Test func overlayCountsOnlyAsAContainerRoot() {
        #expect(ProcCollector.skipsFilesystem(type: "overlay", mountpoint: "/var/lib/docker/overlay2/3f1c/merged"))
        #expect(!ProcCollector.skipsFilesystem(type: "overlay", mountpoint: "/"))
        #expect(ProcCollector.skipsFilesystem(type: "tmpfs", mountpoint: "/"))
        #expect(!ProcCollector.skipsFilesystem(type: "ext4", mountpoint: "/boot"))
    }

    @Test func fleetOverviewNamesTheMount() throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "db-01"
        settings.address = "192.0.2.10"
        settings.groups = ["databases"]
        let host = try hosts.create(settings, by: AuditActor(actor: "test"), now: Date())
        let store = try MetricStore(database: database)
        let collector = MetricCollector(store: store, hosts: hosts, intervalSeconds: 10, timeoutSeconds: 2, logger: quietLogger)
        let time: Int64 = 1_800_000_000_000
        try collector.ingest(host: host, families: try PrometheusText.parse(sampleHostMetrics), time: time, scrapeSeconds: 0.01)
        let dashboard = MetricsDashboard(store: store, hosts: hosts, database: database)
        let fleet = try dashboard.fleet(now: time + 1000)
        let row = try #require(fleet.rows.first)
        #expect(row.value(HostSummary.filesystemPercent) == 14)
        #expect(row.fullestFilesystem?.mountpoint == "/srv")
        #expect(fleet.groups.first { $0.name == "databases" }?.filesystemMaxWhere == "db-01:/srv")
        let everyone = try #require(fleet.groups.first)
        #expect(MonitoringController.filesystemText(everyone) == "14 % (db-01:/srv)")
        // The host's chart draws each mount at df's figure too.
        let charts = try dashboard.charts(for: host, range: 3_600_000, now: time + 1000).charts
        let lines = try #require(charts.first { $0.key == "filesystems" }).chart.lines
        #expect(Set(lines.map(\.name)) == ["/", "/boot", "/srv", "/var/lib/postgresql"])
        #expect(lines.first { $0.name == "/" }?.values.compactMap { $0 }.last == 11)
    }

    @Test func hostPageShowsDfUsePercentAndNamesTheFullestMount() async throws {
        // Ansible's mount facts for the sample host: size and available bytes, no free ones.
        let facts = #"""
            {"filesystems": [
              {"mount": "/", "device": "/dev/nvme0n1p2", "fstype": "ext4", "size_total": 104857600000, "size_available": 89128960000},
              {"mount": "/boot", "device": "/dev/nvme0n1p1", "fstype": "ext4", "size_total": 1023410176, "size_available": 849362944}
            ]}
            """#
        let gathered = HostFacts(
            try #require(try JSONSerialization.jsonObject(with: Data(facts.utf8)) as? [String: Any]), gatheredAt: Date(), jobID: nil)
        // Without metrics the reserved blocks are unknown and count as used, rounded up as df rounds.
        #expect(gathered.filesystems.map { HostFacts.dfFilesystem($0, live: []).usedPercent } == [15, 18])
        let live = mounts(try PrometheusText.parse(sampleHostMetrics))
        // With them, the reserved blocks of the same filesystem make each mount df's Use%, as the dashboard shows it.
        #expect(gathered.filesystems.map { HostFacts.dfFilesystem($0, live: live).usedPercent } == [11, 13])

        let harness = try await ServerHarness()
        let host = try await makeHostWithFacts(harness.server, name: "db-01", address: "192.0.2.10", facts: facts)
        _ = try harness.server.collector.ingest(
            host: host, families: try PrometheusText.parse(sampleHostMetrics), time: EpochMilliseconds.from(Date()), scrapeSeconds: 0.01)
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/hosts/\(host.id)", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"<td data-sort="11">11%</td>"#) && page.contains(#"<td data-sort="13">13%</td>"#))
                #expect(page.contains("14 % · /srv · 140 GiB used of 1000 GiB, 860 GiB available"))
            }
        }
    }

    /// This machine's own `df` against the panel host's collector, mount by mount (read-only: df and statvfs).
    @Test func panelHostAgreesWithDf() throws {
        func df() throws -> [String: (type: String, size: Double, percent: Double)] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/df")
            process.arguments = ["-B1", "--output=fstype,size,pcent,target"]
            process.environment = ["LC_ALL": "C"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            var rows: [String: (type: String, size: Double, percent: Double)] = [:]
            for line in output.split(separator: "\n").dropFirst() {
                // The mount point is the rest of the line (it may hold spaces).
                let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                guard fields.count == 4, let size = Double(fields[1]), let percent = Double(fields[2].dropLast()) else { continue }
                rows[fields[3].trimmingCharacters(in: .whitespaces)] = (String(fields[0]), size, percent)
            }
            return rows
        }
        let before = try df()
        let mine = mounts(ProcCollector().collect())
        let after = try df()
        let root = try #require(before["/"])
        if ProcCollector.skipsFilesystem(type: root.type, mountpoint: "/") { return }  // a live system's tmpfs root
        #expect(mine.contains { $0.mountpoint == "/" }, "the panel host's root is missing")
        var compared = 0
        for filesystem in mine {
            guard let was = before[filesystem.mountpoint], let now = after[filesystem.mountpoint] else { continue }
            #expect(filesystem.sizeBytes == was.size, "\(filesystem.mountpoint): size")
            // Files may come and go between the two df runs: Steward's figure lies between them.
            let percent = try #require(filesystem.usedPercent)
            #expect(
                min(was.percent, now.percent) <= percent && percent <= max(was.percent, now.percent),
                "\(filesystem.mountpoint): Steward \(percent) %, df \(was.percent) % then \(now.percent) %")
            compared += 1
        }
        #expect(compared > 0)
    }
}
