"""Markdown rows from `time_to_result.py` records: wall and CPU seconds, min ESS and its rates, load.

    .venv/bin/python benchmarks/ttr_table.py results/nuts_chees_german/ttr.json [more ttr.json ...]

One row per process: wall seconds, CPU seconds (user + sys of the child: what the process itself
used, less sensitive than wall time to other jobs on shared cores), min bulk ESS, min ESS per wall
second, per CPU second and per sampling gradient evaluation (all chains), and the 1-minute load
average when the process started.
"""
from __future__ import annotations

import json
import sys


def main():
    print("| process | repeat | wall (s) | CPU (s) | min ESS | ESS / wall s | ESS / CPU s | ESS / gradient | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in sys.argv[1:]:
        record = json.loads(open(path).read())
        for r in record["runs"]:
            cpu = r["user_s"] + r["sys_s"]
            per_grad = r.get("ess_per_gradient")
            print(f"| {r['system']} | {r['repeat']} | {r['wall_s']:.1f} | {cpu:.1f} | {r['min_ess_bulk']:,.0f} | "
                  f"{r['ess_per_wall_s']:,.0f} | {r['min_ess_bulk'] / cpu:,.0f} | "
                  f"{'-' if per_grad is None else f'{per_grad:.3f}'} | {r['load_before']:.1f} |")


if __name__ == "__main__":
    main()
