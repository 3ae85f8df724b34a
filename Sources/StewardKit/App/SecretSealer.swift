import Crypto
import Foundation

/// Seals stored secrets (channel passwords, repository passwords) with AES-GCM under a key derived from
/// DATA/secret.key for one purpose, so a copy of the database alone yields none of them.
public struct SecretSealer: Sendable {
    let keyBytes: [UInt8]

    public init(masterKey: SymmetricKey, purpose: String) {
        keyBytes = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, info: Data(purpose.utf8), outputByteCount: 32).withUnsafeBytes { Array($0) }
    }

    var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// nil for nil or empty text: nothing to store.
    public func seal(_ text: String?) throws -> Data? {
        guard let text, !text.isEmpty else { return nil }
        return try AES.GCM.seal(Data(text.utf8), using: key).combined
    }

    /// nil when the data is missing or was sealed under another key.
    public func open(_ data: Data?) -> String? {
        guard let data, let box = try? AES.GCM.SealedBox(combined: data), let plain = try? AES.GCM.open(box, using: key) else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }
}
