#if canImport(Glibc)
    import CMalloc
    import Glibc
#endif

/// glibc's heap, asked how much freed memory it holds and told to give it back (`mallinfo2`,
/// `malloc_trim`): the one place the gateway calls into the allocator.
///
/// glibc returns memory to the kernel on `free` only from the top of a heap. What a flood of refused
/// requests allocated and freed in the middle of an event-loop thread's arena stays resident: helper-114
/// measured 65–70 MB of RSS after floods of 400,000 refusals, of which malloc held 46 MB and used 1.2 MB,
/// until the process exited (`MALLOC_ARENA_MAX` and `MALLOC_TRIM_THRESHOLD_` changed nothing, being about
/// the number of arenas and the top of a heap). `malloc_trim(0)` releases free pages anywhere in every
/// arena. Elsewhere than glibc both are no-ops.
package enum HeapTrim {
    /// Bytes malloc holds free in its arenas (`mallinfo2().fordblks`); 0 where it cannot say. Walks
    /// every arena's free lists under its lock: for a timer, not for a request.
    package static func freeBytes() -> Int {
        #if canImport(Glibc)
            Int(mallinfo2().fordblks)
        #else
            0
        #endif
    }

    /// Gives the arenas' free pages back to the kernel; whether any were (`malloc_trim`'s answer).
    /// Holds each arena's lock while it does: a few milliseconds after a flood.
    @discardableResult
    package static func trim() -> Bool {
        #if canImport(Glibc)
            malloc_trim(0) == 1
        #else
            false
        #endif
    }

    /// This process's resident memory in bytes (`/proc/self/statm`'s second field); nil where there is none.
    package static func residentBytes() -> Int? {
        #if canImport(Glibc)
            let fd = open("/proc/self/statm", O_RDONLY)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: 128)
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            let fields = bytes[..<count].split(separator: UInt8(ascii: " "))
            guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
            return pages * sysconf(Int32(_SC_PAGESIZE))
        #else
            nil
        #endif
    }
}
