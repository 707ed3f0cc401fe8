#!/usr/bin/env python3
"""Builds FleetGate's default country database: a MaxMind DB (.mmdb) from Debian's tor-geoipdb.

Data: tor-geoipdb ships current IP-range → country tables (IPFire location database,
CC BY-SA 4.0). We take its files with `apt-get download` + `dpkg-deb -x` (the tor daemon is not
installed) and write a GeoLite2-Country-shaped database with PyPI's mmdb-writer:
`{"country": {"iso_code": CC}}` per network, IPv4 under ::/96 and ::ffff:0:0/96 as MaxMind does.

Pseudo-codes are mapped deliberately: `EU` (ranges registered to the EU as a whole) stays `EU`,
which the region map puts in the `eu` zone; `UK` becomes `GB`; `??` and anything else that is not
two letters is left out, so those addresses follow the map's `unknown` rule.

IPv6 transition ranges are left out of the IPv6 table even when the source data lists them:
6to4 (2002::/16), Teredo (2001::/32) and the NAT64 prefixes (64:ff9b::/96, 64:ff9b:1::/48) say
nothing about where a client is — the gateway unwraps the IPv4 address they embed, or resolves
them as `unknown` (docs/regions.md). tor-geoipdb lists 2002::/16 as JP, so without this rule a
6to4 address wrapping a Swedish client would be served in Japan.

The build is versioned: BUILD_VERSION is written into the database description and into
`OUT.version`, and `scripts/setup.sh` rebuilds a cached database whose stamp is older.

Usage: build-geoip.py OUT.mmdb
"""
import glob
import os
import subprocess
import sys
import tempfile

from mmdb_writer import MMDBWriter
from netaddr import IPNetwork, IPRange, IPSet

# Bump when the output changes meaning; setup.sh compares it with OUT.version.
BUILD_VERSION = 2

# IPv6 ranges that embed an IPv4 address or belong to no country.
TRANSITION_RANGES = ["2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48"]


def extract(workdir):
    subprocess.run(["apt-get", "download", "tor-geoipdb"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    deb = glob.glob(os.path.join(workdir, "tor-geoipdb_*.deb"))[0]
    subprocess.run(["dpkg-deb", "-x", deb, os.path.join(workdir, "x")], check=True)
    version = os.path.basename(deb).split("_")[1]
    return os.path.join(workdir, "x/usr/share/tor"), version


def country(code):
    code = code.strip().upper()
    if code == "UK":
        return "GB"
    if len(code) != 2 or not code.isalpha() or code == "??":
        return None
    return code


def ranges(path, ipv4):
    for line in open(path):
        if not line.strip() or line.startswith("#"):
            continue
        start, end, cc = line.strip().split(",")
        cc = country(cc)
        if cc is None:
            continue
        if ipv4:
            start, end = int(start), int(end)
        yield start, end, cc


def main():
    out = sys.argv[1]
    with tempfile.TemporaryDirectory() as workdir:
        root, version = extract(workdir)
        by_country = {}
        for path, ipv4 in ((os.path.join(root, "geoip"), True), (os.path.join(root, "geoip6"), False)):
            for start, end, cc in ranges(path, ipv4):
                if ipv4:
                    from netaddr import IPAddress
                    start, end = str(IPAddress(start)), str(IPAddress(end))
                by_country.setdefault(cc, []).append(IPRange(start, end))
        writer = MMDBWriter(
            ip_version=6, ipv4_compatible=True, database_type="FleetGate-Country",
            languages=["en"],
            description={"en": f"FleetGate country database build {BUILD_VERSION} from Debian tor-geoipdb {version} (IPFire location data, CC BY-SA 4.0)"},
        )
        excluded = IPSet(IPNetwork(n) for n in TRANSITION_RANGES)
        for cc, rs in sorted(by_country.items()):
            writer.insert_network(IPSet(rs) - excluded, {"country": {"iso_code": cc}})
        tmp = out + ".tmp"
        writer.to_db_file(tmp)
        os.replace(tmp, out)
        with open(out + ".version", "w") as stamp:
            stamp.write(f"{BUILD_VERSION}\n")
    print(f"built {out} from tor-geoipdb {version}: {len(by_country)} countries")


if __name__ == "__main__":
    main()
