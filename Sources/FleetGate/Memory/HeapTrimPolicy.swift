/// When to give the heap's freed memory back to the kernel (``HeapTrimService``): a pure value that takes
/// what malloc holds free and the process's resident bytes, and says whether a trim is worth it.
///
/// A trim is worth it when malloc holds ``threshold`` free and, since the last trim, the process grew by
/// half of it or the free memory by all of it. Pages a trim gave back stay counted free, so without the
/// second rule it would trim, and say so, at every look; free memory that grew since covers a trim taken
/// during a flood, whose memory was freed only after (helper-117).
struct HeapTrimPolicy: Equatable {
    /// Free bytes held by malloc worth a trim.
    var threshold: Int
    /// What the last trim saw: malloc's free bytes before it, and the resident bytes it left (nil
    /// before the first trim, or where the process's size cannot be read).
    private(set) var lastFree: Int?
    private(set) var lastResident: Int?

    init(threshold: Int = 16 << 20) {
        self.threshold = threshold
    }

    /// Whether a trim may be worth it at all with `free` bytes held by malloc: the cheap first question,
    /// before the process's size is read.
    func mayTrim(free: Int) -> Bool { free >= self.threshold }

    /// Whether to trim, with `free` bytes held by malloc and `resident` bytes in the process now.
    func shouldTrim(free: Int, resident: Int?) -> Bool {
        guard self.mayTrim(free: free) else { return false }
        guard let lastFree = self.lastFree else { return true }
        if free - lastFree >= self.threshold { return true }
        if let resident, let lastResident = self.lastResident { return resident - lastResident >= self.threshold / 2 }
        return false
    }

    /// A trim was taken with `free` bytes held by malloc before it; it left `resident` bytes.
    mutating func trimmed(free: Int, resident: Int?) {
        self.lastFree = free
        self.lastResident = resident
    }
}
