import FleetProtocol
import HTTPTypes

/// The fleet's header names (``FleetHeader``) as `HTTPField.Name`s, made once.
extension HTTPField.Name {
    static let fleetResidency = Self(FleetHeader.residency)!
    static let fleetSLOTTFT = Self(FleetHeader.sloTTFT)!
    static let fleetRequestID = Self(FleetHeader.requestID)!
    static let fleetRoute = Self(FleetHeader.route)!
    static let fleetRegion = Self(FleetHeader.region)!
    static let fleetOriginRegion = Self(FleetHeader.originRegion)!
    static let fleetZone = Self(FleetHeader.zone)!
    static let fleetVehicle = Self(FleetHeader.vehicle)!
    static let fleetAttempts = Self(FleetHeader.attempts)!
    static let fleetPredictedTTFT = Self(FleetHeader.predictedTTFT)!
    static let fleetSeed = Self(FleetHeader.seed)!
    static let fleetResumeFrom = Self(FleetHeader.resumeFrom)!
    static let fleetContinuation = Self(FleetHeader.continuation)!
    static let fleetStreamMode = Self(FleetHeader.streamMode)!
    static let fleetMigrations = Self(FleetHeader.migrations)!
    static let fleetForwardedOrigin = Self(FleetHeader.forwardedOrigin)!
    static let fleetHop = Self(FleetHeader.hop)!
    static let xForwardedFor = Self("x-forwarded-for")!
    /// W3C Trace Context.
    static let traceparent = Self(TraceParent.header)!
    static let tracestate = Self(TraceParent.stateHeader)!
    /// Read by the OpenAI SDKs: `false` stops their automatic retries.
    static let xShouldRetry = Self("x-should-retry")!
}
