#!/usr/bin/env python3
"""Generate the restartguard Grafana dashboard (grafana/dashboards/restartguard.json).

The dashboard is built with Grafana's own SDK (grafana-foundation-sdk, a development dependency:
``pip install -e '.[test]'``) in the ``dashgen`` package beside this script:

    dashgen/blocks.py      one function per visualization, thresholds, value maps, query targets
    dashgen/overview.py    the status row (the morning checklist)
    dashgen/detail.py      restarts, memory & disk, trading, liveness, availability & error budget
    dashgen/pipeline.py    alerts/fixes/escalations, Discord delivery, exporter & receiver health
    dashgen/dashboard.py   rows in order, variables, annotations, the JSON
    dashgen/text.py        policy numbers as titles and descriptions spell them

Every policy number (memory 80 %, trade success 50 %, 99.9 % availability, 7-day uptime goal,
3 restarts, 5 min stall, 5 % disk) comes from restartguard/policy.py; change it there and
regenerate. The committed JSON is the output of this script; tests fail when they differ.

    python3 grafana/generate_dashboard.py            # rewrite the JSON
    python3 grafana/generate_dashboard.py --check    # exit 1 if the JSON is stale

The dashboard targets Grafana 10.4+ (schemaVersion 39) and is loaded as-is by file provisioning
(grafana/provisioning; no ``__inputs``): the Prometheus data source is chosen with the
``datasource`` variable and the trader unit(s) with the ``service`` variable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):  # dashgen/, and restartguard/ for the policy
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dashgen.dashboard import render  # noqa: E402

DASHBOARD_PATH = HERE / "dashboards" / "restartguard.json"

__all__ = ["DASHBOARD_PATH", "main", "render"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is out of date")
    parser.add_argument("--output", type=Path, default=DASHBOARD_PATH, help="where to write the JSON")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run grafana/generate_dashboard.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
