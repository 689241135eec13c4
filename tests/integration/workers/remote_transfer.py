"""Upload and download one big artifact through a keel server, in a fresh process, and report peak RSS.

Usage: remote_transfer.py FOLDER SIZE_MIB. The server (a thread) and the client share this process, so the
peak resident set covers both ends. The baseline is the peak after everything is imported and a small
artifact went both ways (so the code paths are warm); the test compares the growth to the file's size.
Prints one JSON line: baseline_kib, peak_kib, size, sha256 of the file sent and of the file received.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remote_server import start_team

from keel.models.package import file_sha256


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main(folder: str, size_mib: int) -> None:
    root = Path(folder)
    big, small = root / "big.bin", root / "small.bin"
    with open(big, "wb") as out:  # sparse: costs no disk until read, and no memory to create
        out.truncate(size_mib * 1024 * 1024)
    small.write_bytes(b"warm-up" * 1000)
    with start_team(root / "server") as team, team.remote() as ws:
        with ws.runs.start("transfer") as run:
            run.log_artifact(small)
            ws.runs.download_artifact(run.id, "small.bin", root / "small.out")
            baseline = peak_kib()
            run.log_artifact(big)
        received = ws.runs.download_artifact(run.id, "big.bin", root / "big.out")
        peak = peak_kib()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "size": big.stat().st_size,
                      "received_size": received.stat().st_size, "sent_sha256": file_sha256(big),
                      "received_sha256": file_sha256(received)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
