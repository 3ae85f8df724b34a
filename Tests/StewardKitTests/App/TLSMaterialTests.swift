import Foundation
import NIOSSL
import SwiftASN1
import Testing
import X509

@testable import StewardKit

@Suite("TLS material")
struct TLSMaterialTests {
    @Test("first run generates a self-signed pair with the host name, localhost and 127.0.0.1; later runs reuse it")
    func generatedAndReused() throws {
        let directory = TemporaryDirectory()
        let data = DataDirectory(path: directory.path)
        try data.prepare()
        let configuration = StewardConfiguration(dataDirectory: directory.path)
        let first = try TLSMaterial.prepare(configuration: configuration, dataDirectory: data)
        #expect(first.generated)
        #expect(try FileManager.default.attributesOfItem(atPath: first.keyPath)[.posixPermissions] as? Int == 0o600)
        let pem = try String(contentsOfFile: first.certificatePath, encoding: .utf8)
        let certificate = try Certificate(pemEncoded: pem)
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        let described = names.map { "\($0)" }.joined(separator: " ")
        #expect(described.contains("localhost"))
        #expect(described.contains(ProcessInfo.processInfo.hostName))
        #expect(names.contains(.ipAddress(.init(contentBytes: [127, 0, 0, 1]))))
        #expect(certificate.notValidAfter > Date().addingTimeInterval(365 * 86400))
        _ = try first.serverConfiguration()
        let second = try TLSMaterial.prepare(configuration: configuration, dataDirectory: data)
        #expect(!second.generated)
        #expect(try String(contentsOfFile: second.certificatePath, encoding: .utf8) == pem)
    }

    @Test("an operator-provided pair is used as configured; an unreadable one is named")
    func operatorProvided() throws {
        let directory = TemporaryDirectory()
        let (cert, key) = try TLSMaterial.makeSelfSigned(hostName: "panel.example.com", now: Date())
        try cert.write(toFile: directory.path + "/own.pem", atomically: true, encoding: .utf8)
        try key.write(toFile: directory.path + "/own.key", atomically: true, encoding: .utf8)
        var configuration = StewardConfiguration(dataDirectory: directory.path)
        configuration.tlsCertificatePath = directory.path + "/own.pem"
        configuration.tlsKeyPath = directory.path + "/own.key"
        let material = try TLSMaterial.prepare(configuration: configuration, dataDirectory: DataDirectory(path: directory.path))
        #expect(material.certificatePath == directory.path + "/own.pem")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/tls/cert.pem"))
        _ = try material.serverConfiguration()
        let broken = TLSMaterial(certificatePath: directory.path + "/own.key", keyPath: directory.path + "/own.key", generated: false)
        #expect {
            try broken.serverConfiguration()
        } throws: { error in
            String(describing: error).contains("own.key") && String(describing: error).contains("not a readable PEM certificate")
        }
    }
}
