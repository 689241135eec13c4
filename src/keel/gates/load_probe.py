"""Run as ``python -m keel.gates.load_probe FOLDER TRUSTED``: load a model package, print the peak memory it took.

The baseline is this process after importing keel; what loading adds on top (the model's library, imported
on first use, and the model itself) is the larger of the growth of the peak resident size (Linux: ru_maxrss,
KiB) and of the resident size itself.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _rss_kib() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() // 1024


def main() -> None:
    from keel.models.flavors import flavor_named
    from keel.models.package import MANIFEST, read_manifest

    folder, trusted = Path(sys.argv[1]), sys.argv[2] == "1"
    manifest = read_manifest((folder / MANIFEST).read_bytes(), None)
    flavor = flavor_named(manifest.flavor)
    data = (folder / manifest.model_file).read_bytes()
    rss_before, peak_before = _rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = flavor.load(data, manifest.metadata, trusted=trusted)
    grown = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before, _rss_kib() - rss_before, 0)
    print(json.dumps({"peak_mb": grown / 1024, "loaded": type(model).__name__}))


if __name__ == "__main__":
    main()
