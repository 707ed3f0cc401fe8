/// The `# HELP` line of every metric family the gateway exports.
///
/// swift-metrics has no help text and swift-prometheus writes `# HELP` only for metrics made through
/// its own registry API with one, so `/metrics` had none and `promtool check metrics` failed on every
/// family. The texts are added to the scrape here, before each family's `# TYPE` line; docs/operations.md
/// (and docs/security.md for the trust metrics) says more. `MetricHelpTests` checks every family of a
/// live scrape has one and is documented.
enum MetricHelp {
    /// One line per family, plain text (no backslash, no line break).
    static let texts: [String: String] = [
        "http_server_requests_total": "Finished client requests by API route and status (499: the client went away).",
        "fleet_time_to_first_token_seconds": "Client-observed time to first token of streamed answers.",
        "fleet_inter_token_seconds": "Time between relayed events.",
        "fleet_routed_total": "Served requests by route (car, central, replica).",
        "fleet_upstream_retries_total":
            "Attempts started again on another upstream after one failed before the first token.",
        "fleet_attempt_failures_total": "Failed upstream attempts by how they failed.",
        "fleet_capacity_waits_total":
            "Lost (or departing) streams that waited for a slot in their busy zone, by how the wait ended.",
        "fleet_migrations_total": "Streams continued on another upstream mid-answer, and stream:false restarts.",
        "fleet_hedges_total": "Hedged first tokens: started and won.",
        "fleet_held_answers_lost_total":
            "Requests ended whole whose client left while the gateway still held part of the answer for it (a slow reader).",
        "fleet_cars_connected":
            "Verified car tunnels connected, by region (a car with tunnels to two replicas is counted by each).",
        "fleet_cars": "Connected cars whose primary tunnel is here, by region, zone, state and plug, at the scrape.",
        "fleet_decisions_total": "Scheduling decisions by policy and the route ranked first.",
        "fleet_decision_seconds": "Time to decide a route, registry lock included.",
        "fleet_predicted_ttft_seconds": "The scheduler's predicted time to first token of each car job.",
        "fleet_car_ttft_seconds": "Observed time to first token of each car job.",
        "fleet_ttft_predicted_over_observed": "Predicted over observed time to first token per car job (1 is exact).",
        "fleet_central_endpoint_state": "1 for each central endpoint's state (up, busy, out), 0 for the others.",
        "fleet_central_in_flight": "Streams in flight on each central endpoint.",
        "fleet_active_streams": "Completion requests in flight.",
        "fleet_zone_refusals_total": "Requests refused for their zone's capacity.",
        "fleet_zone_spills_total":
            "Requests of a preferred zone without capacity for their model, served in another zone.",
        "fleet_requests_shed_total": "Requests refused 503 server_overloaded, by reason.",
        "fleet_car_location_mismatch_total": "Cars whose tunnel address geolocates outside their credential's zone.",
        "fleet_cars_dead_total": "Cars whose tunnel was closed after two unanswered PINGs.",
        "fleet_car_takeovers_total":
            "Cars registered while their vehicle id's earlier tunnel was still up (then closed).",
        "fleet_geoip_database_build_timestamp_seconds": "Build time of the GeoIP database in use (0: none).",
        "fleet_tls_certificate_expiry_timestamp_seconds": "The leaf certificate's notAfter per listener (0: no TLS).",
        "fleet_regions_reloads_total": "Configuration and region map reloads by result.",
        "fleet_config_last_reload_successful":
            "1 when the last reload (or the start) succeeded, 0 after a refused one.",
        "fleet_usage_clamped_total":
            "Answers whose upstream-reported usage passed the request's bounds and was clamped, by route.",
        "fleet_config_restart_pending":
            "Changed keys that keep their running value until a restart (since the last full reload).",
        "fleet_build_info": "The running version, as the version label of a constant 1.",
        "fleet_regions_info": "The region map in use, as the version label of a constant 1.",
        "fleet_config_last_reload_success_timestamp_seconds":
            "When the running configuration was loaded (Unix seconds).",
        "fleet_key_requests_total": "Requests per application key by result.",
        "fleet_key_tokens_total": "Prompt and completion tokens per application key.",
        "fleet_car_refused_total": "Car tunnels refused, by reason.",
        "fleet_buffered_bytes":
            "Request bodies and answers held for slow clients at once, bytes (limits.maxBufferedBodyBytes, limits.maxBufferedAnswerBytes).",
        "fleet_car_credentials_expiring":
            "Connected cars whose credential expires within 48 h (their renewal is not happening).",
        "fleet_car_revoked_live_total": "Connected cars dropped because their certificate was revoked.",
        "fleet_revocation_reloads_total": "Revocation list reloads by result.",
        "fleet_cars_quarantined_total": "Cars quarantined after failed audits.",
        "fleet_audits_total": "Audits of car results by verdict.",
        "fleet_audits_queued_total": "Car results queued for an audit on central capacity.",
        "fleet_audits_dropped_total": "Audits dropped because the audit queue was full.",
        "fleet_audit_duration_seconds": "Time to audit one car result.",
        "fleet_audit_negative_mean_logprob": "Negative mean log-probability of audited car results.",
        "fleet_cluster_replicas": "Gateway replicas seen in the cluster.",
        "fleet_cluster_degraded":
            "1 while the cluster store cannot be written or watched, or another replica has this one's id.",
        "fleet_cluster_digest_bytes": "Size of this replica's published fleet digest.",
        "fleet_cluster_digests_published_total": "Fleet digests this replica published.",
        "fleet_cluster_tunnels_moved_total":
            "Car tunnels this replica asked to move to replicas holding fewer of their region's.",
        "fleet_cluster_etcd_writes_total": "Writes to etcd.",
        "fleet_cluster_etcd_write_bytes_total": "Bytes written to etcd.",
        "fleet_cluster_forwarded_total": "Requests this replica forwarded to another replica.",
        "fleet_cluster_forwarded_in_total": "Requests another replica forwarded here, with a valid signed origin.",
        "fleet_cluster_forwarded_origin_refused_total":
            "Requests on the internal listener refused 403 for an invalid forwarded origin.",
        "gen_ai_server_time_to_first_token_seconds": "OpenTelemetry GenAI: request arrival to first token.",
        "gen_ai_server_time_per_output_token_seconds": "OpenTelemetry GenAI: time per output token after the first.",
        "gen_ai_server_request_duration_seconds": "OpenTelemetry GenAI: request arrival to the end of the answer.",
        "gen_ai_client_token_usage": "OpenTelemetry GenAI: input and output tokens per request.",
    ]

    /// `body` with a `# HELP` line before each `# TYPE` line of a family that has a text.
    static func annotate(_ body: [UInt8]) -> [UInt8] {
        let type = Array("# TYPE ".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 80 * Self.texts.count)
        var lineStart = 0
        while lineStart < body.count {
            let lineEnd = body[lineStart...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? body.count
            let line = body[lineStart..<lineEnd]
            if line.starts(with: type) {
                let name = line.dropFirst(type.count).prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") }
                if let text = Self.texts[String(decoding: name, as: UTF8.self)] {
                    out.append(contentsOf: "# HELP ".utf8)
                    out.append(contentsOf: name)
                    out.append(UInt8(ascii: " "))
                    out.append(contentsOf: text.utf8)
                    out.append(UInt8(ascii: "\n"))
                }
            }
            out.append(contentsOf: line)
            lineStart = lineEnd
        }
        return out
    }
}
