import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("Install and removal rollouts: their plans, their rules and who may propose them")
struct PackageRolloutTests {
    @Test("an install's plan is apt's simulation with the dependencies it brings; a name no repository offers fails it")
    func aptInstallPlan() {
        let report: [String: Any] = [
            "pkg_mgr": "apt",
            "pinned": [
                "Inst steward-extra-lib (1.0 Steward:stewardtest-security [all])", "Inst steward-extra-pkg (1.0 Steward:stewardtest-security [all])",
            ],
        ]
        let (changes, problem) = PackagePlan.install(["steward-extra-pkg"], report: report)
        #expect(problem.isEmpty && changes.map(\.package) == ["steward-extra-lib", "steward-extra-pkg"] && changes.allSatisfy { $0.current.isEmpty })
        let (_, missing) = PackagePlan.install(
            ["steward-extra-pkg", "nosuch"], report: ["pkg_mgr": "apt", "pinned": ["E: Unable to locate package nosuch"]])
        #expect(missing.contains("E: Unable to locate package nosuch") && missing.contains("check the name"))
        let (_, pin) = PackagePlan.install(
            ["steward-extra-pkg=0.9"], report: ["pkg_mgr": "apt", "pinned": ["E: Version '0.9' for 'steward-extra-pkg' was not found"]])
        #expect(pin.contains("cannot install the pinned version"))
        // Already installed everywhere: nothing to do, and that is no problem.
        #expect(PackagePlan.install(["bash"], report: ["pkg_mgr": "apt", "pinned": [String]()]) == ([], ""))
    }

    @Test("on dnf an install takes the newest offered version of each named package not installed")
    func dnfInstallPlan() {
        let report: [String: Any] = [
            "pkg_mgr": "dnf",
            "dnf_offered": ["htop.x86_64  3.2.1-1.el9  epel", "htop.x86_64  3.3.0-1.el9  epel", "tmux.x86_64  3.2a-5.el9  baseos"],
            "dnf_installed": ["tmux 3.2a-4.el9", "package htop is not installed", "package nosuch is not installed"],
        ]
        let (changes, problem) = PackagePlan.install(["htop", "tmux"], report: report)
        #expect(changes.map { "\($0.package) \($0.candidate)" } == ["htop 3.3.0-1.el9"] && problem.isEmpty)
        let (_, missing) = PackagePlan.install(["htop", "nosuch"], report: report)
        #expect(missing.contains("nosuch") && missing.contains("check the name"))
    }

    @Test("a removal's plan shows every package that goes, and refuses essential ones and what Steward needs on the host")
    func removalPlan() {
        let (changes, problem) = PackagePlan.removal(
            ["steward-extra-lib"],
            report: ["pkg_mgr": "apt", "removals": ["Remv steward-extra-pkg [1.0]", "Remv steward-extra-lib [1.0]"]])
        #expect(problem.isEmpty)
        #expect(
            changes == [
                PendingUpdate(package: "steward-extra-pkg", current: "1.0", candidate: "", origin: "", security: false),
                PendingUpdate(package: "steward-extra-lib", current: "1.0", candidate: "", origin: "", security: false),
            ])
        // Not installed on this host: nothing to remove.
        #expect(PackagePlan.removal(["steward-extra-lib"], report: ["pkg_mgr": "apt", "removals": [String]()]) == ([], ""))
        let (_, essential) = PackagePlan.removal(
            ["bash"],
            report: ["pkg_mgr": "apt", "removals": ["WARNING: The following essential packages will be removed.", "Remv bash [5.2.15-2+b8]"]])
        #expect(essential.contains("essential"))
        let (_, cascade) = PackagePlan.removal(
            ["libwrap0"], report: ["pkg_mgr": "apt", "removals": ["Remv openssh-server [1:9.2p1-2+deb12u3]", "Remv libwrap0 [7.6.q-32]"]])
        #expect(cascade.contains("would also remove openssh-server"))
        // dnf's own answer lists what goes with the named package; a long name sits alone on its line.
        let dnf = [
            "Dependencies resolved.", "================", " Package        Arch     Version      Repository     Size", "================",
            "Removing:", " openssh        x86_64   8.7p1-38.el9 @baseos        1.9 M", "Removing dependent packages:",
            " openssh-server x86_64   8.7p1-38.el9 @baseos        1.0 M", " a-very-long-package-name-that-wraps",
            "                x86_64   1:2.0-1.el9  @appstream     12 k", "", "Transaction Summary", "================", "Remove  3 Packages",
            "Operation aborted.",
        ]
        #expect(
            PendingUpdate.dnfRemovals(dnf).map { "\($0.package) \($0.current)" } == [
                "openssh 8.7p1-38.el9", "openssh-server 8.7p1-38.el9", "a-very-long-package-name-that-wraps 1:2.0-1.el9",
            ])
        let (_, sshd) = PackagePlan.removal(["openssh"], report: ["pkg_mgr": "dnf", "dnf_removal": dnf])
        #expect(sshd.contains("would also remove openssh-server"))
        let (rpm, _) = PackagePlan.removal(
            ["htop", "tmux"], report: ["pkg_mgr": "dnf", "dnf_installed": ["htop 3.3.0-1.el9", "package tmux is not installed"]])
        #expect(rpm.map(\.package) == ["htop"] && rpm[0].current == "3.3.0-1.el9")
        #expect(PendingUpdate.parseAptRemoval("Remv libfoo:i386 [1.2]")?.package == "libfoo:i386")
        #expect(PendingUpdate.parseAptRemoval("Remv x") == nil && PendingUpdate.parseAptRemoval("Inst a (1 b)") == nil)
    }

    @Test("install and remove name packages; a removal names no version and never what Steward needs to reach a host")
    func rules() {
        var rollout = Rollout()
        rollout.title = "Tools"
        rollout.targets = ["web"]
        rollout.expiresAt = 2
        for what in [Rollout.What.install, .remove] {
            rollout.what = what
            rollout.packages = []
            #expect(rollout.problems(now: 1)["packages"] == "name at least one package")
            rollout.packages = ["u=1337;$(whoami);"]
            #expect(rollout.problems(now: 1)["packages"] != nil)
            rollout.packages = ["htop", "tmux"]
            #expect(rollout.problems(now: 1).isEmpty)
            #expect(Rollout.What(what: what.storage.what, action: what.storage.action) == what)
        }
        rollout.packages = ["htop=3.3.0-1"]
        #expect(rollout.problems(now: 1)["packages"]?.contains("without a version") == true)
        rollout.packages = ["htop", "openssh-server"]
        #expect(rollout.problems(now: 1)["packages"]?.contains("cut every target off") == true)
        rollout.what = .security
        #expect(rollout.problems(now: 1)["packages"]?.contains("install or remove") == true)
        // apt reads a trailing - or _ as remove or purge.
        #expect(Rollout.packageProblem("htop-") != nil && Rollout.packageProblem("htop_") != nil && Rollout.packageProblem("g++") == nil)
        #expect(Rollout.What(what: "packages", action: "upgrade") == .packages && Rollout.What(what: "all", action: "upgrade") == .all)
    }

    @Test("an operator may propose upgrades but not installs or removals, nor change an admin's install; the form is prefilled from links")
    func adminsInstall() async throws {
        let harness = try await ServerHarness()
        let body = #"{"title":"Install htop","what":"install","packages":["htop"],"targets":["localhost"],"approvals_required":1}"#
        @Sendable func call(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String) async throws -> (
            HTTPResponse.Status, [String: Any]
        ) {
            try await client.execute(uri: uri, method: method, headers: ServiceActionsTests.jsonHeaders, body: ByteBuffer(string: body)) { response in
                (response.status, (try? json(response)) ?? [:])
            }
        }
        try await harness.test(as: [.operator]) { client in
            let (status, problem) = try await call(client, .post, "/api/v1/rollouts", body)
            #expect(status == .forbidden && (problem["detail"] as? String)?.contains("admin") == true, "\(problem)")
            let (upgrade, _) = try await call(client, .post, "/api/v1/rollouts", body.replacingOccurrences(of: "\"install\"", with: "\"packages\""))
            #expect(upgrade == .created)
        }
        let id = Captured(0)
        try await harness.test(as: [.admin]) { client in
            let (status, created) = try await call(client, .post, "/api/v1/rollouts", body)
            #expect(status == .created, "\(created)")
            id.value = created["id"] as? Int ?? 0
            #expect(created["what"] as? String == "install")
            let stored = try await harness.server.database.read { db in
                try Row.fetchOne(db, sql: "SELECT what, package_action FROM rollouts WHERE id = ?", arguments: [id.value])
            }
            #expect(stored?["what"] as String? == "packages" && stored?["package_action"] as String? == "install")
            try await client.execute(uri: "/rollouts/new?what=remove&packages=htop&targets=web-1%2C%20web-2", method: .get) { response in
                let page = text(response)
                #expect(
                    page.contains(#"<option value="remove" selected>"#) && page.contains(">htop</textarea>")
                        && page.contains(#"value="web-1, web-2""#))
            }
        }
        try await harness.test(as: [.operator]) { client in
            let (status, _) = try await call(client, .patch, "/api/v1/rollouts/\(id.value)", #"{"what":"packages"}"#)
            #expect(status == .forbidden)
            // A pinned version installs or downgrades: an operator pins only what a rollback puts back.
            let (pinned, problem) = try await call(
                client, .post, "/api/v1/rollouts",
                body.replacingOccurrences(of: "\"install\"", with: "\"packages\"").replacingOccurrences(of: "[\"htop\"]", with: "[\"sudo=1.8.0\"]"))
            #expect(
                pinned == .unprocessableContent && ((problem["errors"] as? [String: String])?["packages"] ?? "").contains("rollback"), "\(problem)")
        }
        try await harness.test(as: [.admin]) { client in
            // Never a removal on the panel host, whose packages Steward itself runs on.
            let (status, problem) = try await call(
                client, .post, "/api/v1/rollouts", body.replacingOccurrences(of: "\"install\"", with: "\"remove\""))
            #expect(
                status == .unprocessableContent && ((problem["errors"] as? [String: String])?["targets"] ?? "").contains("panel host"), "\(problem)")
        }
        #expect(
            try await harness.server.database.read { db in
                try Int.fetchOne(db, sql: "SELECT revision FROM rollouts WHERE id = ?", arguments: [id.value])
            } == 1)
    }
}
