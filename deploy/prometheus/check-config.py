#!/usr/bin/env python3
"""`promtool check config prometheus.yml`, and what promtool cannot see (deploy/check.sh).

Debian's promtool (prometheus 2.42.0+ds, what scripts/setup.sh installs) is built without Kubernetes
service discovery and refuses `kubernetes_sd_configs` as an unknown field. Then the file is checked with
each such block replaced by a static target (every other key, relabelling included, is still checked by
promtool) and the Kubernetes blocks are checked here for their keys and role. Either way, the Kubernetes
job must label its series `namespace` and `pod`: prometheus-adapter's rule (adapter-rules.yaml) selects
on them, and without them the HPA's metric does not exist.

    deploy/prometheus/check-config.py [PROMTOOL]
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
CONFIG = HERE / "prometheus.yml"
ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
KEYS = {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata",
        "basic_auth", "authorization", "oauth2", "proxy_url", "no_proxy", "proxy_from_environment",
        "proxy_connect_header", "follow_redirects", "enable_http2", "tls_config"}
UNSUPPORTED = "field kubernetes_sd_configs not found"


def promtool(tool, path):
    run = subprocess.run([tool, "check", "config", str(path)], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def kubernetes_jobs(config):
    return [j for j in config.get("scrape_configs") or [] if "kubernetes_sd_configs" in j]


def check_kubernetes_blocks(jobs):
    errors = []
    for job in jobs:
        for sd in job["kubernetes_sd_configs"]:
            if sd.get("role") not in ROLES:
                errors.append(f"{job['job_name']}: kubernetes_sd_configs role {sd.get('role')!r} is not one of {sorted(ROLES)}")
            for key in set(sd) - KEYS:
                errors.append(f"{job['job_name']}: kubernetes_sd_configs has an unknown key {key!r}")
            names = (sd.get("namespaces") or {}).get("names", [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                errors.append(f"{job['job_name']}: kubernetes_sd_configs namespaces.names must be a list of names")
    return errors


def check_adapter_labels(jobs):
    errors = []
    for job in jobs:
        targets = {r.get("target_label") for r in job.get("relabel_configs") or []
                   if r.get("action", "replace") == "replace"}
        for label in ("namespace", "pod"):
            if label not in targets:
                errors.append(f"{job['job_name']}: no relabel_configs entry sets `{label}` "
                              f"(adapter-rules.yaml's seriesQuery needs it)")
    return errors


def main():
    tool = sys.argv[1] if len(sys.argv) > 1 else "promtool"
    config = yaml.safe_load(CONFIG.read_text())
    jobs = kubernetes_jobs(config)
    errors = check_adapter_labels(jobs)
    if not jobs:
        errors.append("no scrape job with kubernetes_sd_configs (the Kubernetes gateways' job)")
    rc, out = promtool(tool, CONFIG)
    if rc != 0 and UNSUPPORTED in out:
        print(f"{tool} has no Kubernetes discovery: checking with static stand-ins")
        errors += check_kubernetes_blocks(jobs)
        for job in jobs:
            job.pop("kubernetes_sd_configs")
            job.setdefault("static_configs", []).append({"targets": ["stand-in.invalid:9091"]})
        with tempfile.TemporaryDirectory() as tmp:
            for rule_file in config.get("rule_files") or []:
                shutil.copy(HERE / rule_file, pathlib.Path(tmp) / rule_file)
            path = pathlib.Path(tmp) / CONFIG.name
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            rc, out = promtool(tool, path)
    print(out, end="")
    for error in errors:
        print(f"{CONFIG.name}: {error}")
    return 1 if rc != 0 or errors else 0


if __name__ == "__main__":
    sys.exit(main())
