import Foundation
import Testing

@testable import StewardKit

@Suite("pending updates from apt and dnf output")
struct PendingUpdateTests {
    @Test func aptSimulationLinesGiveVersionsOriginsAndSecurity() {
        let security = PendingUpdate.parseApt("Inst libc6 [2.36-9+deb12u4] (2.36-9+deb12u7 Debian-Security:12/stable-security [amd64]) []")
        #expect(
            security
                == PendingUpdate(
                    package: "libc6", current: "2.36-9+deb12u4", candidate: "2.36-9+deb12u7", origin: "Debian-Security:12/stable-security",
                    security: true))
        let ubuntu = PendingUpdate.parseApt("Inst openssl [3.0.2-0ubuntu1.10] (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-security [amd64])")
        #expect(ubuntu?.security == true && ubuntu?.origin == "Ubuntu:22.04/jammy-security")
        let plain = PendingUpdate.parseApt("Inst steward-test-pkg [1.0] (2.0 Steward:stewardtest/stewardtest [all])")
        #expect(plain?.security == false && plain?.current == "1.0" && plain?.candidate == "2.0")
        let fresh = PendingUpdate.parseApt("Inst linux-image-6.1.0-27-amd64 (6.1.115-1 Debian:12.8/stable [amd64])")
        #expect(fresh?.current == "" && fresh?.candidate == "6.1.115-1")
        #expect(PendingUpdate.parseApt("Conf libc6 (2.36-9+deb12u7 Debian-Security:12/stable-security [amd64])") == nil)
        #expect(PendingUpdate.parseApt("Inst broken") == nil)
    }

    @Test func dnfCheckUpdateLinesAndAdvisories() {
        let update = PendingUpdate.parseDnf("openssl-libs.x86_64        1:3.0.7-27.el9        baseos", security: ["openssl-libs"])
        #expect(update == PendingUpdate(package: "openssl-libs", current: "", candidate: "1:3.0.7-27.el9", origin: "baseos", security: true))
        #expect(PendingUpdate.parseDnf("Last metadata expiration check: 0:01:02 ago", security: []) == nil)
        #expect(PendingUpdate.parseDnf("vim-minimal.x86_64 2:8.2.2637-20.el9_1 baseos", security: [])?.security == false)
    }

    @Test func dnfCurrentVersionsComeFromRpm() {
        let updates = PendingUpdate.parse(
            apt: [], dnf: ["", "openssl-libs.x86_64  1:3.0.7-27.el9  baseos", "curl.x86_64  7.76.1-29.el9_4.1  appstream"],
            dnfSecurity: ["RHSA-2024:1 Important/Sec. openssl-libs-1:3.0.7-27.el9.x86_64"],
            dnfInstalled: ["openssl-libs 1:3.0.7-24.el9", "package curl is not installed"])
        #expect(updates.map(\.package) == ["openssl-libs", "curl"])
        #expect(updates[0].current == "1:3.0.7-24.el9" && updates[0].security && updates[1].current == "" && !updates[1].security)
    }

    @Test func dnfPinsNeedAVersionSomeRepositoryOffers() {
        let offered = ["Available Packages", "steward-test-pkg.noarch   1.0-1   stewardtest", "steward-test-pkg.noarch   2.0-1   stewardtest"]
        let (updates, missing) = PendingUpdate.dnfPins(
            ["steward-test-pkg=1.0-1", "other=3.1-2"], offered: offered, installed: ["steward-test-pkg 2.0-1", "other 3.2-1"])
        #expect(updates == [PendingUpdate(package: "steward-test-pkg", current: "2.0-1", candidate: "1.0-1", origin: "stewardtest", security: false)])
        #expect(missing == ["other=3.1-2"])
    }

    @Test func factsCarryTheParsedUpdates() {
        let facts = HostFacts(
            [
                "upgrade_lines": [
                    "Inst libc6 [2.36-9+deb12u4] (2.36-9+deb12u7 Debian-Security:12/stable-security [amd64]) []",
                    "Inst tzdata [2024a-0+deb12u1] (2024b-0+deb12u1 Debian:12.8/stable-updates [all])",
                ],
                "dnf_lines": ["curl.x86_64 7.76.1-29.el9_4.1 appstream"],
                "dnf_security_lines": ["RHSA-2024:1234 Moderate/Sec.  curl-7.76.1-29.el9_4.1.x86_64"],
            ], gatheredAt: Date(), jobID: nil)
        #expect(facts.updates == ["libc6", "tzdata", "curl"])
        #expect(facts.securityUpdates == ["libc6", "curl"])
    }
}
