/// What each watched file looked like at the last poll, by the kind of reload it belongs to: which
/// kinds changed since. Pure — the caller reads the files' stamps (``CredentialFilesWatcher/stamp(_:)``)
/// and passes them in, so it is tested without a file system.
struct FileStamps<Kind: Hashable> {
    private var stamps: [String: String]

    /// Starts from the files as they are now: nothing has changed yet.
    init(_ files: [Kind: [String]], stamp: (String) -> String) {
        self.stamps = [:]
        for path in files.values.joined() { self.stamps[path] = stamp(path) }
    }

    /// The kinds with a file whose stamp differs from the last poll's (a path not seen before
    /// counts: the configuration now names another file), in the order `kinds` lists them; every
    /// stamp is then remembered, so a file that does not load is tried again when it next changes,
    /// not at every poll.
    mutating func changed(_ files: [Kind: [String]], in kinds: [Kind], stamp: (String) -> String) -> [Kind] {
        var changed: [Kind] = []
        var next: [String: String] = [:]
        for kind in kinds {
            for path in files[kind] ?? [] {
                let now = next[path] ?? stamp(path)
                next[path] = now
                if self.stamps[path] != now, changed.last != kind { changed.append(kind) }
            }
        }
        self.stamps = next
        return changed
    }
}
