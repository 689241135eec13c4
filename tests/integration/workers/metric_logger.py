"""Log N metric points to a new run, then end it (or, with 'hang', wait to be killed).

usage: metric_logger.py WORKSPACE WORKER POINTS MODE   (MODE: end | hang)
Prints ``RUN <id>`` first and ``FLUSHED <n>`` each time ws.runs.flush() returned (acknowledged).
"""

from __future__ import annotations

import sys
import time

import keel


def main(workspace: str, worker: str, points: str, mode: str) -> None:
    ws = keel.open(workspace)
    run = ws.runs.start("load", name=f"worker-{worker}")
    print(f"RUN {run.id}", flush=True)
    for i in range(int(points)):
        run.log_metric("m", float(i), step=i)
        if mode == "hang" and i % 1000 == 999:
            ws.runs.flush()
            print(f"FLUSHED {i + 1}", flush=True)
    if mode == "hang":
        time.sleep(60)  # killed before this ends
    run.end()
    ws.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
