import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Why a file could not be read or written, in the system's words ("No such file or directory"),
/// not Foundation's generic text: this Foundation reports a missing file as a `CocoaError` code with
/// no underlying POSIX error, and an older one as a POSIX error under `NSUnderlyingErrorKey`.
package enum FileErrorReason {
    package static func describe(_ error: any Error) -> String {
        switch (error as? CocoaError)?.code {
        case .fileReadNoSuchFile?, .fileNoSuchFile?: return "No such file or directory"
        case .fileReadNoPermission?, .fileWriteNoPermission?: return "Permission denied"
        case .fileWriteOutOfSpace?: return "No space left on device"
        default: break
        }
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let code = underlying?.code, underlying?.domain == NSPOSIXErrorDomain, let text = strerror(Int32(code)) {
            return String(cString: text)
        }
        return (error as NSError).localizedDescription
    }
}
