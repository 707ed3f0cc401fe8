/// The version both programs report (`--version`, the start-up line, `fleet_build_info`).
///
/// One place for it: a release bumps this string (semantic versioning; `-dev` between releases).
package enum FleetVersion {
    /// `MAJOR.MINOR.PATCH[-dev]`.
    package static let current = "0.29.0-dev"
}
