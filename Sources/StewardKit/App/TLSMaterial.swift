import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The server's certificate and key: the operator's pair when configured, else a self-signed pair made on first run.
public struct TLSMaterial: Sendable {
    public let certificatePath: String
    public let keyPath: String
    public let generated: Bool

    public init(certificatePath: String, keyPath: String, generated: Bool) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.generated = generated
    }

    public enum Failure: Error, CustomStringConvertible {
        case unreadable(String, String)
        case generation(String)
        public var description: String {
            switch self {
            case .unreadable(let path, let reason):
                "cannot use TLS file \(path): \(reason); check tls_cert/tls_key, or remove them to use a generated certificate"
            case .generation(let reason): "cannot generate the self-signed TLS certificate: \(reason)"
            }
        }
    }

    /// Use the configured pair, or reuse / create `tls/cert.pem` + `tls/key.pem` in the data directory.
    public static func prepare(configuration: StewardConfiguration, dataDirectory: DataDirectory, now: Date = Date()) throws -> TLSMaterial {
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            return TLSMaterial(certificatePath: cert, keyPath: key, generated: false)
        }
        let certPath = dataDirectory.tlsDirectory + "/cert.pem"
        let keyPath = dataDirectory.tlsDirectory + "/key.pem"
        if FileManager.default.fileExists(atPath: certPath), FileManager.default.fileExists(atPath: keyPath) {
            return TLSMaterial(certificatePath: certPath, keyPath: keyPath, generated: false)
        }
        try FileManager.default.createDirectory(
            atPath: dataDirectory.tlsDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let (certificatePEM, keyPEM) = try makeSelfSigned(hostName: ProcessInfo.processInfo.hostName, now: now)
        try dataDirectory.writePrivateFile(keyPath, Data(keyPEM.utf8))
        try dataDirectory.writePrivateFile(certPath, Data(certificatePEM.utf8))
        return TLSMaterial(certificatePath: certPath, keyPath: keyPath, generated: true)
    }

    /// A P-256 certificate valid for 825 days, the longest lifetime browsers accept, with SAN = host, localhost, 127.0.0.1, ::1.
    public static func makeSelfSigned(hostName: String, now: Date) throws -> (certificate: String, key: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName(hostName)
            OrganizationName("Steward")
        }
        var names: [GeneralName] = [
            .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
        ]
        if hostName != "localhost", !hostName.isEmpty { names.insert(.dnsName(hostName), at: 0) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(825 * 86400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return (try certificate.serializeAsPEM().pemString + "\n", key.pemRepresentation + "\n")
    }

    /// The NIOSSL server configuration for this pair, with clear errors for unreadable or mismatched files.
    static let tls12CipherSuites = "ECDHE+AESGCM:ECDHE+CHACHA20"

    public func serverConfiguration() throws(Failure) -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw .unreadable(certificatePath, "not a readable PEM certificate (\(error))")
        }
        do {
            privateKey = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw .unreadable(keyPath, "not a readable PEM private key (\(error))")
        }
        guard !chain.isEmpty else { throw .unreadable(certificatePath, "holds no certificate") }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        // TLS 1.2: forward-secret AEAD suites only (no CBC, no static RSA key exchange). TLS 1.3 offers only AEAD anyway.
        configuration.cipherSuites = Self.tls12CipherSuites
        return configuration
    }
}

/// Lowercase hex SHA-256, for certificate fingerprints.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    hexString(SHA256.hash(data: bytes))
}

/// Lower-case hex of bytes. Every request with a token or a session hashes it, so this avoids `String(format:)`.
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
