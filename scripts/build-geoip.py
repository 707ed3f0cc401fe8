#!/usr/bin/env python3
"""Builds FleetGate's default country database: a MaxMind DB (.mmdb) from Debian's tor-geoipdb.

Data: tor-geoipdb ships current IP-range → country tables (IPFire location database,
CC BY-SA 4.0). We take its files with `apt-get download` + `dpkg-deb -x` (the tor daemon is not
installed) and write a GeoLite2-Country-shaped database with PyPI's mmdb-writer:
`{"country": {"iso_code": CC}}` per network, IPv4 under ::/96 and ::ffff:0:0/96 as MaxMind does.

Pseudo-codes are mapped deliberately: `EU` (ranges registered to the EU as a whole) stays `EU`,
which the region map puts in the `eu` zone; `UK` becomes `GB`; `??` and anything else that is not
two letters is left out, so those addresses follow the map's `unknown` rule.

Usage: build-geoip.py OUT.mmdb   (idempotent: exits at once when OUT is newer than the package)
"""
import glob
import os
import subprocess
import sys
import tempfile

from mmdb_writer import MMDBWriter
from netaddr import IPRange, IPSet


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
            description={"en": f"FleetGate country database from Debian tor-geoipdb {version} (IPFire location data, CC BY-SA 4.0)"},
        )
        for cc, rs in sorted(by_country.items()):
            writer.insert_network(IPSet(rs), {"country": {"iso_code": cc}})
        tmp = out + ".tmp"
        writer.to_db_file(tmp)
        os.replace(tmp, out)
    print(f"built {out} from tor-geoipdb {version}: {len(by_country)} countries")


if __name__ == "__main__":
    main()
