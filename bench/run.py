#!/usr/bin/env python3
"""Benchmarks artifactfs against its peers on the fake GitHub server (issue 12's table).

Run by scripts/bench.sh (which builds release binaries first). For each network model (the
link model: 30 ms added to every API and blob request and 50 MiB/s per blob connection; then
loopback: nothing added) it starts `fake-github --bench`, measures every row of issue 12's table
BENCH_RUNS times (default 5) with the peers in the same run (`gh run download` when installed,
`curl -L` + `unzip -p`, a local file), and writes docs/benchmarks.md and docs/benchmarks.svg.
Every figure in the document comes from this run; targets are the issue's, and met / not met
is computed from the figures. Nothing here is asserted (tests assert, benchmarks report).

    python3 bench/run.py [--quick] [--runs N] [--out DIR] [--models link,loopback] [--rows a,b]

--quick: 2 runs per row, output in target/bench-quick/ unless --out says otherwise (the
committed docs come from a full run).

This file is the command line; `harness.py` holds the constants and the processes (fake,
mount, serve), `measure.py` one method per row, `rows.py` the figures turned into table rows
with their targets and verdicts, `report.py` the Markdown, SVG and raw JSON.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import AF, Failed, Fake, ROOT, ROWS, ROW_MODELS, TARGET, log, q
from measure import Bench
from report import write_report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 runs per row, output elsewhere")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--models", default="link,loopback")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--render", metavar="JSON",
                    help="only write the report again from a run's raw figures (every run "
                         "leaves them in target/bench-last.json)")
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            d = json.load(f)
        out_dir = a.out or os.path.join(ROOT, "docs")
        write_report(d["results"], d["info"], d["meta"], out_dir)
        log(f"wrote {out_dir}/benchmarks.md and .svg from {a.render}")
        return
    runs = a.runs or int(os.environ.get("BENCH_RUNS", "0")) or (2 if a.quick else 5)
    out_dir = a.out or (os.path.join(TARGET, "bench-quick") if a.quick
                        else os.path.join(ROOT, "docs"))
    rows = [r for r in a.rows.split(",") if r]
    if "warm" in rows and "seq" not in rows:
        rows.append("seq")
    t0 = time.perf_counter()
    # What was measured: the tree scripts/bench.sh just built (read now, not at the end, when
    # edits made while the run went on would be counted in).
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src",
                            "fake-github", "Cargo.lock", "bench"],
                           capture_output=True, text=True).stdout.strip() != ""
    work = tempfile.mkdtemp(prefix="artifactfs-bench-")
    all_res, info, setup = {}, None, []
    try:
        for model in a.models.split(","):
            log(f"{model}: starting fake-github --bench (generating the data)")
            fake = Fake(model)
            setup.append(round(fake.setup_s, 1))
            info = fake.info
            b = Bench(fake, work, runs, model)
            res = {}
            try:
                for row in ROWS:
                    if row not in rows or row == "warm":
                        continue
                    if row in ROW_MODELS and model not in ROW_MODELS[row]:
                        continue
                    log(f"{model}: {row} ({runs} runs)")
                    t = time.perf_counter()
                    try:
                        got = getattr(b, row)()
                    except (Failed, AssertionError) as e:
                        log(f"{model}: {row} FAILED: {e}")
                        got = {"failed": str(e) or "wrong output"}
                        if row == "seq":
                            got = {"seq": got, "warm": got}
                    if row == "seq":
                        res["seq"], res["warm"] = got["seq"], got["warm"]
                    else:
                        res[row] = got
                    log(f"{model}: {row} took {time.perf_counter() - t:.0f} s")
            finally:
                fake.stop()
            all_res[model] = res
    finally:
        subprocess.run(["bash", "-c", f"for m in {q(work)}/mnt*; do "
                        f"mountpoint -q $m && {q(AF)} unmount $m; done"], check=False,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "commit": commit, "dirty": dirty, "runs": runs,
            "total_s": time.perf_counter() - t0, "setup_s": setup,
            "gh": bool(shutil.which("gh"))}
    os.makedirs(TARGET, exist_ok=True)
    with open(os.path.join(TARGET, "bench-last.json"), "w") as f:
        json.dump({"info": info, "meta": meta, "results": all_res}, f)
    lines = write_report(all_res, info, meta, out_dir)
    print("\n".join(lines[: lines.index("Raw figures (JSON, every run):")]))
    log(f"wrote {out_dir}/benchmarks.md and .svg in {meta['total_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
