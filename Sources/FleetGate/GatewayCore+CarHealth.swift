import FleetScheduler
import Logging

extension GatewayCore {
    /// Logs what a car's outcome changed (``CarHealthNews``): the car by its pseudonym and region, as the
    /// audit line names it (never its vehicle id), and the failed attempt's label.
    func logCarHealth(_ news: CarHealthNews, car: CarDescriptor, failure: String?) {
        var metadata: Logger.Metadata = ["fleet.region": "\(car.region)", "fleet.vehicle": "\(car.pseudonym)"]
        switch news {
        case .failing(let count, let backoff):
            metadata["error.type"] = "\(failure ?? "failed")"
            metadata["fleet.backoff_ms"] = "\(Int(backoff * 1_000))"
            metadata["fleet.failures_in_a_row"] = "\(count)"
            self.logger.warning(
                "Car failing: its attempts failed in a row; backed off, then tried again", metadata: metadata)
        case .recovered(let count):
            metadata["fleet.failures_in_a_row"] = "\(count)"
            self.logger.info("Car serves again after failing", metadata: metadata)
        }
    }
}
