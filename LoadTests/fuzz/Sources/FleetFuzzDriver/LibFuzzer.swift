#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer's entry for programs that have their own `main` (LLVM 11+, `FuzzerInterface.h`).
/// SwiftPM links every executable with `main` aliased to the module's entry point, so libFuzzer's
/// own `main` is never used: each target's `@main` calls this instead.
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Runs libFuzzer with the process's arguments, calling `testOneInput` for every input, and exits
/// with its status.
public func libFuzzerMain(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv, testOneInput))
}
