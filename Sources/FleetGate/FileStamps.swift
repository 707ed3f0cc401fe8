/// What each watched file looked like, by the kind of reload it belongs to: which kinds changed and
/// have settled. Pure — the caller reads the files' stamps (``FileStamp/of(_:)``) and
/// passes them in, so it is tested without a file system.
///
/// A kind is reported once its files differ from what was last applied and have looked the same on
/// two polls in a row: a file caught in the middle of a write that is not atomic (`cp`, a shell `>`:
/// truncated, then written) is not applied half-written (helper-82: an API key file read while empty
/// refused every client until its next change). A reload that fails is tried again at every poll
/// while ``failed(_:)`` says so (helper-82: an API key file held back by a `fleetgate.yaml` that did
/// not load stayed stale after the YAML was mended), and ``applied(_:)`` ends that.
struct FileStamps<Kind: Hashable> {
    /// The stamps the last applied (or start's) reload of each file read.
    private var applied: [String: String]
    /// The stamps the last poll saw.
    private var seen: [String: String]
    /// Kinds whose last reload failed: tried again at each poll.
    private var retrying: Set<Kind> = []

    /// Starts from the files as they are now: nothing has changed yet.
    init(_ files: [Kind: [String]], stamp: (String) -> String) {
        var stamps: [String: String] = [:]
        for path in files.values.joined() { stamps[path] = stamp(path) }
        self.applied = stamps
        self.seen = stamps
    }

    /// The kinds to reload now, in the order `kinds` lists them: those with a file whose stamp differs
    /// from the applied one (a path not seen before counts: the configuration now names another file),
    /// and those whose last reload failed — either only once their files are the same as at the last
    /// poll (helper-83: a retry read a file half-written). Their stamps count as
    /// applied from here; a reload that fails says so with ``failed(_:)``.
    mutating func due(_ files: [Kind: [String]], in kinds: [Kind], stamp: (String) -> String) -> [Kind] {
        var due: [Kind] = []
        var seen: [String: String] = [:]
        for kind in kinds {
            let paths = files[kind] ?? []
            for path in paths where seen[path] == nil { seen[path] = stamp(path) }
            let changed = paths.contains { seen[$0] != self.applied[$0] }
            let settled = paths.allSatisfy { seen[$0] == self.seen[$0] }
            guard (changed || self.retrying.contains(kind)) && settled else { continue }
            due.append(kind)
            for path in paths { self.applied[path] = seen[path] }
        }
        self.seen = seen
        return due
    }

    /// `kind`'s reload failed: it is tried again at each poll until one succeeds.
    mutating func failed(_ kind: Kind) { self.retrying.insert(kind) }

    /// `kind`'s reload succeeded.
    mutating func applied(_ kind: Kind) { self.retrying.remove(kind) }

    /// Whether `kind`'s last reload failed.
    func isRetrying(_ kind: Kind) -> Bool { self.retrying.contains(kind) }
}
