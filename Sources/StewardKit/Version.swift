/// The release this build reports through `steward version`, `/healthz` and the UI footer.
public enum StewardVersion {
    public static let current = "0.1.0"
}
