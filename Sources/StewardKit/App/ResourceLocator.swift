import Foundation

/// Finds the directory that holds `Templates/`, `Public/` and `migrations/`.
///
/// Looked for, in order: the configured directory; beside the executable; `../share/steward` from the executable
/// (an installed layout such as /usr/local/bin + /usr/local/share/steward); and each parent of the executable's
/// directory (a build tree such as .build/release/steward inside the repository).
public enum ResourceLocator {
    public static let requiredEntries = ["Templates", "Public", "migrations"]

    public struct NotFound: Error, CustomStringConvertible {
        public let searched: [String]
        public let configured: String?
        public var description: String {
            if let configured {
                return
                    "resources directory \(configured) must contain Templates/, Public/ and migrations/; set --resources DIR (or STEWARD_RESOURCES) to a directory that does"
            }
            return "could not find Templates/, Public/ and migrations/ (looked in: \(searched.joined(separator: ", "))); pass --resources DIR"
        }
    }

    public static func locate(configured: String?, executablePath: String = CommandLine.arguments[0]) throws(NotFound) -> String {
        if let configured {
            let absolute = absolutePath(configured)
            guard holdsResources(absolute) else { throw NotFound(searched: [absolute], configured: configured) }
            return absolute
        }
        var candidates: [String] = []
        let executable = URL(fileURLWithPath: absolutePath(executablePath)).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        candidates.append(directory.path)
        candidates.append(directory.deletingLastPathComponent().appendingPathComponent("share/steward").path)
        while directory.path != "/" {
            directory = directory.deletingLastPathComponent()
            candidates.append(directory.path)
        }
        for candidate in candidates where holdsResources(candidate) {
            return candidate
        }
        throw NotFound(searched: candidates, configured: nil)
    }

    static func holdsResources(_ directory: String) -> Bool {
        requiredEntries.allSatisfy { entry in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + entry, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    static func absolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
