#!/usr/bin/env python3
"""Checks what `kubectl kustomize` rendered for each overlay (deploy/check.sh), where schemas cannot:

- the gateway's NetworkPolicy admits a Prometheus pod of the `monitoring` namespace to the probes port.
  kustomize's `labels` with includeSelectors (base and every overlay) writes its pairs into every
  podSelector's matchLabels, a namespaced peer's too, which made that peer "a fleetgate pod in
  monitoring": no Prometheus matched and nothing was scraped.

    deploy/kubernetes/check-rendered.py RENDERED.yaml...
"""
import sys

import yaml

PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}
MONITORING_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}


def matches(selector, labels):
    """A Kubernetes LabelSelector against a label set (an empty selector matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def admits_prometheus(policy):
    for rule in policy["spec"].get("ingress") or []:
        if not any(p.get("port") in ("probes", 9091) for p in rule.get("ports") or []):
            continue
        for peer in rule.get("from") or []:
            ns = peer.get("namespaceSelector")
            if ns is None or not matches(ns, MONITORING_NAMESPACE):
                continue
            if matches(peer.get("podSelector") or {}, PROMETHEUS_POD):
                return True
    return False


def main(paths):
    failed = False
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        policies = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "fleetgate"]
        if len(policies) != 1:
            print(f"{path}: expected one NetworkPolicy fleetgate, found {len(policies)}")
            failed = True
        elif not admits_prometheus(policies[0]):
            print(f"{path}: NetworkPolicy fleetgate does not admit a pod labelled {PROMETHEUS_POD} of the "
                  f"monitoring namespace to the probes port (kustomize labels in its podSelector?)")
            failed = True
        else:
            print(f"{path}: Prometheus admitted to probes")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
