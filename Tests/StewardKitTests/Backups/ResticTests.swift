import Foundation
import Testing

@testable import StewardKit

@Suite("restic commands, messages and policies")
struct ResticTests {
    func host(_ transport: StewardKit.Host.Transport, become: StewardKit.Host.Become = .none) -> StewardKit.Host {
        StewardKit.Host(
            id: 7, name: "web-1", address: "10.0.0.5", transport: transport, sshPort: 2222, sshUser: "steward", become: become, groups: [], tags: [],
            variables: "", metricsURL: nil, metricsAllow: nil, notes: "", enabled: true, state: .up, stateDetail: nil, lastSeenAt: nil,
            createdAt: Date(), updatedAt: Date())
    }

    func target(_ transport: StewardKit.Host.Transport, path: String = "/srv/restic", become: StewardKit.Host.Become = .none) -> ResticTarget {
        var repository = BackupRepository()
        repository.name = "main"
        repository.path = path
        return ResticTarget(
            host: host(transport, become: become), repository: repository, storageHost: nil, password: "s3cret pass",
            identity: SSHIdentity(directory: "/data/ssh"),
            cacheDirectory: "/data/backups/cache")
    }

    @Test func localCommandsCarryThePasswordInTheEnvironmentNeverInArgv() {
        let command = target(.local).command(["backup", "--json", "--", "/etc"])
        #expect(command.argv == ["restic", "--repo", "/srv/restic", "backup", "--json", "--", "/etc"])
        #expect(command.environment?["RESTIC_PASSWORD"] == "s3cret pass")
        #expect(command.input == nil)
        #expect(!command.argv.joined(separator: " ").contains("s3cret"))
    }

    @Test func remoteCommandsQuoteEveryWordAndSendThePasswordOnStdin() {
        // Webmin's CVE-2022-36446 payload and friends stay literal words for the remote shell.
        let hostile = "/srv/u=1337;$(whoami);`id`'x"
        let command = target(.ssh, become: .sudo).command(["backup", "--", hostile])
        #expect(command.argv.first == "ssh")
        #expect(command.argv.contains("StrictHostKeyChecking=yes"))
        #expect(Array(command.argv.suffix(3).prefix(2)) == ["steward@10.0.0.5", "--"])
        let remote = command.argv.last!
        #expect(remote.hasPrefix("'sudo' '-n' '--' 'env' 'RESTIC_PROGRESS_FPS=1' 'RESTIC_PASSWORD_FILE=/dev/stdin' 'restic'"))
        #expect(remote.hasSuffix("'/srv/u=1337;$(whoami);`id`'\\''x'"))
        #expect(command.input == Data("s3cret pass\n".utf8))
        #expect(!command.argv.joined(separator: " ").contains("s3cret"))
    }

    @Test func shellQuotingRoundTripsThroughARealShell() throws {
        for word in ["plain", "with space", "it's", "$(id)", "`id`", "a;b|c&d", "\"q\"", "ünï", "-n", ""] {
            let script = "printf %s " + ResticTarget.shellQuote(word)
            let result = try ShortCommand.run(["/bin/sh", "-c", script])
            #expect(result.stdout == word, "\(word)")
        }
    }

    @Test func sftpRepositoriesUseStewardsKeyAndKnownHosts() {
        var repository = BackupRepository()
        repository.kind = .sftp
        repository.path = "/home/steward/repo"
        let storage = host(.ssh)
        let target = ResticTarget(
            host: host(.local), repository: repository, storageHost: storage, password: "pw", identity: SSHIdentity(directory: "/data/ssh"),
            cacheDirectory: "/c")
        let argv = target.command(["snapshots"]).argv
        #expect(argv[2] == "sftp:steward@10.0.0.5:/home/steward/repo")
        let option = argv[4]
        #expect(option.hasPrefix("sftp.command=ssh "))
        #expect(option.contains("UserKnownHostsFile=/data/ssh/known_hosts") && option.contains("-p 2222") && option.hasSuffix("-s sftp"))
    }

    @Test func backupMessagesAreParsed() {
        let status = ResticMessage.parse(
            #"{"message_type":"status","seconds_elapsed":2,"seconds_remaining":130,"percent_done":0.42,"total_files":3000,"files_done":1200,"total_bytes":3113851289,"bytes_done":1288490188}"#
        )
        guard case .status(let value) = status else {
            Issue.record("not a status: \(status)")
            return
        }
        #expect(value.filesDone == 1200 && value.totalBytes == 3_113_851_289 && value.secondsRemaining == 130)
        #expect(ResticMessage.progressText(value) == "42% · 1.2 GiB of 2.9 GiB · 1200 of 3000 files · about 2 min left")
        let summary = ResticMessage.parse(
            #"{"message_type":"summary","files_new":40,"files_changed":2,"files_unmodified":7,"data_added":392875,"total_bytes_processed":368613,"total_duration":0.21,"snapshot_id":"188da4e1"}"#
        )
        #expect(
            summary
                == .summary(
                    .init(
                        filesNew: 40, filesChanged: 2, filesUnmodified: 7, bytesAdded: 392_875, bytesProcessed: 368_613, duration: 0.21,
                        snapshotID: "188da4e1")))
        #expect(
            ResticMessage.parse(#"{"message_type":"error","error":{"message":"permission denied"},"during":"archival","item":"/root/x"}"#)
                == .error("/root/x: permission denied"))
        #expect(ResticMessage.parse("successfully removed locks") == .text("successfully removed locks"))
    }

    @Test func failuresAreExplainedInWordsThatSayWhatToDo() {
        #expect(
            ResticDiagnosis.explain("Fatal: wrong password or no key found", repository: "r", host: "h")!.contains(
                "password for repository r is wrong"))
        #expect(
            ResticDiagnosis.explain(
                "Fatal: unable to open config file: stat /x/config: no such file or directory\nIs there a repository at the following location?",
                repository: "r", host: "h")!
                .contains("there is no restic repository at r"))
        #expect(
            ResticDiagnosis.explain("Save(<data/2b1c>) returned error: write /r/data/2b: no space left on device", repository: "r", host: "h")!
                .contains("is full"))
        #expect(
            ResticDiagnosis.explain("bash: line 1: restic: command not found", repository: "r", host: "web-1")!.contains("not installed on web-1"))
        #expect(ResticDiagnosis.explain("all fine", repository: "r", host: "h") == nil)
    }

    @Test func retentionAlwaysKeepsTheNewestSnapshot() {
        #expect(RetentionPolicy().keepsEverything)
        #expect(RetentionPolicy(daily: 7).resticFlags == ["--keep-last", "1", "--keep-daily", "7"])
        #expect(RetentionPolicy(last: 0, within: "30d").resticFlags == ["--keep-last", "1", "--keep-within", "30d"])
        #expect(RetentionPolicy(last: 5, hourly: 24, yearly: 3).resticFlags == ["--keep-last", "5", "--keep-hourly", "24", "--keep-yearly", "3"])
        #expect(RetentionPolicy(within: "1y6m2d").problems().isEmpty)
        #expect(RetentionPolicy(within: "7 days").problems()["keep_within"] != nil)
        #expect(RetentionPolicy(within: "d7").problems()["keep_within"] != nil)
        #expect(RetentionPolicy(daily: -1).problems()["keep_daily"] != nil)
    }

    @Test func pathsAreAbsoluteAndCannotTraverse() {
        for bad in ["", "etc", "../etc", "/srv/../etc", "/srv/./x", "/srv//x", "/srv/x/", "/a\nb", "/a\0b"] {
            #expect(BackupPaths.problem(bad) != nil, "\(bad.debugDescription)")
        }
        for good in ["/", "/etc", "/srv/odd name/ünï", "/srv/a..b", "/srv/.hidden"] {
            #expect(BackupPaths.problem(good) == nil, "\(good)")
        }
        #expect(BackupPaths.contains("/srv", "/srv/x") && BackupPaths.contains("/srv", "/srv") && !BackupPaths.contains("/srv", "/srvx"))
        #expect(
            BackupService.snapshotProblem("../../etc") != nil && BackupService.snapshotProblem("5b4dbedd") == nil
                && BackupService.snapshotProblem("latest") == nil)
        #expect(BackupService.snapshotProblem("5B4DBEDD") != nil && BackupService.snapshotProblem("--help") != nil)
        #expect(
            !BackupService.isHookName("-rf") && !BackupService.isHookName("../x.sh") && !BackupService.isHookName("a b")
                && BackupService.isHookName("dump-database.sh"))
    }

    @Test func verifySubsetsFollowResticsSyntax() {
        for good in ["5%", "1/10", "500M", "2G", "0.5%"] { #expect(BackupService.isSubset(good), "\(good)") }
        for bad in ["", "0%", "101%", "3/2", "1/0", "5", "lots", "5%%"] { #expect(!BackupService.isSubset(bad), "\(bad)") }
    }
}
