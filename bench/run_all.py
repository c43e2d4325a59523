"""Run every benchmark in bench/, each printing its figures as ratios against a baseline measured in the same run.

    python bench/run_all.py            # the sizes the issues name (minutes)
    python bench/run_all.py --quick    # small sizes, for CI: proves every bench still runs end to end

A bench that misses its target says so in its own output; this runner reports it and exits non-zero only when a
bench crashes, because timings on a shared 2-core machine are evidence to read, not a gate.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

FULL: dict[str, list[str]] = {
    "postmortem.py": [],
    "plan.py": [],
    "diff.py": [],
    "ack_latency.py": [],
    "replica.py": [],
    "journal.py": [],
}
QUICK: dict[str, list[str]] = {
    "postmortem.py": ["--entries", "10000", "--repeat", "2"],
    "plan.py": ["--rows", "20000"],
    "diff.py": ["--rows", "100000", "--repeats", "1"],
    "ack_latency.py": ["--count", "400", "--rate", "20"],
    "replica.py": ["--quick"],
    "journal.py": ["--quick"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("names", nargs="*", help="only these benches, e.g. diff.py")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.quick:
        print("quick sizes: each bench must run end to end; its targets are defined at the full sizes (make bench)")
    crashed: list[str] = []
    for name, extra in plan.items():
        if args.names and name not in args.names:
            continue
        print(f"\n===== bench/{name} {' '.join(extra)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(BENCH / name), *extra], check=False)
        print(f"===== bench/{name} finished in {time.monotonic() - started:.0f} s (exit {done.returncode})", flush=True)
        # Exit 1 is a missed target (the bench printed why); anything else is a crash.
        if done.returncode not in (0, 1):
            crashed.append(name)
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
