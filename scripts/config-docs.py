#!/usr/bin/env python3
"""Regenerates the key tables of docs/configuration.md from the code (`fleetgate config keys`,
`fleet-agent config keys`). Run after adding a key; ConfigKeysTests fails until the docs match."""
import os
import subprocess
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(root)
subprocess.run(["swift", "build", "--product", "fleetgate"], check=True)
subprocess.run(["swift", "build", "--product", "fleet-agent"], check=True)
bin_dir = subprocess.run(["swift", "build", "--show-bin-path"], capture_output=True, text=True, check=True).stdout.strip()
path = "docs/configuration.md"
text = open(path).read()
for program in ("fleetgate", "fleet-agent"):
    table = subprocess.run([os.path.join(bin_dir, program), "config", "keys"], capture_output=True, text=True,
                           check=True).stdout.rstrip("\n")
    start = text.index("\n", text.index(f"<!-- {program} keys")) + 1
    end = text.index(f"<!-- end {program} keys -->")
    text = text[:start] + table + "\n" + text[end:]
open(path, "w").write(text)
print(f"{path}: tables regenerated", file=sys.stderr)
