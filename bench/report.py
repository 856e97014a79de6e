"""docs/benchmarks.md and docs/benchmarks.svg written from a run's figures (the machine, the
tables per model, the chart, and the raw figures as JSON)."""

import json
import os
import platform

from harness import LOOPBACK_ROWS, MIB, MODELS
from rows import col, rows_for


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def table(rows):
    lines = ["| what | artifactfs: median (min–max) | peers, same run | target (issue 12) | |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("\n", " ") for c in r) + " |")
    return lines


def svg(all_res, info):
    """Bars with min–max whiskers: artifactfs and its peers per row, both models."""
    panels = []
    for model in ("link", "loopback"):
        res = all_res.get(model)
        if not res:
            continue
        res = {k: v for k, v in res.items() if "failed" not in v}
        label = "link model" if model == "link" else "loopback"
        def against_peers(r, curl, gh):
            bars = [("artifactfs", col(r["af"])), (curl, col(r["curl"]))]
            return bars + ([(gh, col(r["gh"]))] if r["gh"] else [])
        if "small" in res:
            panels.append((f"Cold cat of a 1 KB file in a {info['big_size'] / MIB:.0f} MiB "
                           f"archive, {label} (s, lower is better)",
                           against_peers(res["small"], "curl -L + unzip -p", "gh run download")))
        if "grep" in res:
            panels.append((f"grep -c over the {info['log_size'] / MIB:.0f} MiB deflated log, "
                           f"{label} (s, lower is better)",
                           against_peers(res["grep"], "curl + unzip -p | grep",
                                         "gh run download + grep")))
        if "seq" in res:
            r = res["seq"]
            bars = [("artifactfs cold", col(r["af"])), ("curl", col(r["curl"]))]
            if "warm" in res:
                bars += [("artifactfs warm", col(res["warm"]["af"])),
                         ("local file", col(res["warm"]["local"]))]
            panels.append((f"Reading the {info['stored_size'] / MIB:.0f} MiB stored entry, "
                           f"{label} (s, lower is better)", bars))
        cold = []
        if "head" in res:
            cold.append(("artifactfs head -c 4096", col(res["head"]["af"])))
        if "random" in res:
            cold += [("artifactfs dd skip= (random)", col(res["random"]["dd"])),
                     ("artifactfs tail -c (random)", col(res["random"]["tail"]))]
        if cold:
            panels.append((f"Head and random reads of the deflated log, {label} "
                           "(s, lower is better)", cold))
        meta = []
        if "stall" in res and "af" in res["stall"]:
            meta.append(("cat 128 MiB, stalls", col(res["stall"]["af"])))
        if "lsr" in res:
            meta.append(("ls -R, 250 artifacts", col(res["lsr"]["af"])))
        if "find" in res:
            meta.append(("find, 3000 artifacts", col(res["find"]["af"])))
        if meta:
            panels.append((f"Stalled bodies and many artifacts, {label} (s, lower is better)",
                           meta))
    w, bar, gap, x0 = 760, 18, 6, 200
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{{H}}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{{H}}" fill="white"/>']
    y = 20
    for title, bars in panels:
        out.append(f'<text x="10" y="{y}" font-weight="bold">{title}</text>')
        y += 10
        top = max(s["max"] for _, s in bars if s) or 1
        scale = (w - x0 - 120) / top
        for label, s in bars:
            if not s:
                continue
            bw = max(2, int(s["median"] * scale))
            out.append(f'<text x="10" y="{y + 13}">{label}</text>')
            fill = "#4c78a8" if label.startswith("artifactfs") else "#bab0ac"
            out.append(f'<rect x="{x0}" y="{y}" width="{bw}" height="{bar}" fill="{fill}"/>')
            lo, hi = x0 + s["min"] * scale, x0 + s["max"] * scale
            out.append(f'<line x1="{lo:.1f}" y1="{y + bar / 2}" x2="{hi:.1f}" y2="{y + bar / 2}" '
                       'stroke="black"/>')
            for xx in (lo, hi):
                out.append(f'<line x1="{xx:.1f}" y1="{y + 4}" x2="{xx:.1f}" y2="{y + bar - 4}" '
                           'stroke="black"/>')
            out.append(f'<text x="{max(x0 + bw, hi) + 6:.0f}" y="{y + 13}">'
                       f'{s["median"]:.3g} s</text>')
            y += bar + gap
        y += 18
    out.append("</svg>")
    return "\n".join(out).replace("{H}", str(y))


def write_report(all_res, info, meta, out_dir):
    link_res, loop_res = all_res.get("link", {}), all_res.get("loopback", {})
    # Headline: the link model, with the two loopback rows taken from loopback.
    headline = {k: v for k, v in link_res.items()}
    for k in LOOPBACK_ROWS:
        if k in loop_res and link_res:
            headline[k] = loop_res[k]
    link = MODELS["link"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `scripts/bench.sh` on {meta['date']} at commit `{meta['commit']}`"
        f"{' (with uncommitted changes)' if meta['dirty'] else ''}; machine: {machine()} "
        f"(shared with other work while it ran). The whole run took {meta['total_s'] / 60:.1f}"
        f" minutes, {meta['runs']} runs per row.",
        "",
        "Everything runs locally against `fake-github --bench` (API and blob host on 127.0.0.1),",
        "one fake per network model, each with its own fresh data:",
        "",
        f"- **link model** (headline): {link['api_delay_ms']} ms added to every API request and "
        f"{link['blob_delay_ms']} ms to every blob request, at most {link['blob_mibps']} MiB/s "
        "per blob connection (`--api-delay-ms`, `--blob-delay-ms`, `--blob-mibps`);",
        "- **loopback**: nothing added.",
        "",
        f"Data (fake-github/src/bench.rs): a {info['log_size'] / MIB:.0f} MiB CI log deflated to "
        f"{info['log_compressed_size'] / MIB:.1f} MiB ({info['log_size'] / info['log_compressed_size']:.2f}×)"
        f" in a {info['log_archive_size'] / MIB:.1f} MiB archive; a {info['big_size'] / MIB:.1f} MiB "
        f"archive holding a {info['small_size']}-byte file (its first entry), a "
        f"{info['stored_size'] / MIB:.0f} MiB stored entry and 200 small files; a repository of "
        f"{info['find_runs']} runs × {info['find_per_run']} small zip artifacts; one of "
        f"{info['tree_runs']} runs × {info['tree_per_run']} small zip artifacts "
        f"({info['tree_entries_per_artifact']} files each).",
        "",
        "How each row is measured: every artifactfs run is a fresh mount on an empty cache "
        "(except the random and warm reads, which need what the first read left in the cache);",
        "times are wall time of the command as a shell pipeline; bytes and requests are the "
        "fake's counters for that command, read once blob traffic has stopped (background "
        "readahead counts). \"Round trips\" counts download redirects plus blob requests "
        "(listings shown separately). Each mount uses a token of its own (the fake enforces "
        "GitHub's 5000 requests an hour per token). Times are judged on the median, ratios on the median of "
        "per-run ratios (peer time / artifactfs time, runs paired), counts on the worst run.",
        "",
        "![benchmarks](benchmarks.svg)",
        "",
        "## Link model (headline)",
        "",
    ]
    if link_res:
        lines += [
            "The issue sets the stall and `find` rows on loopback: their figures here are the "
            "loopback ones.",
            "",
        ]
        lines += table(rows_for("link", headline, info, meta["runs"]))
    else:
        lines.append("Not run.")
    lines += ["", "## Loopback", ""]
    if loop_res:
        lines += [
            "Same rows with nothing added to the link. The issue's targets are set on the link "
            "model (except stall and `find`); here they are for reference.",
            "",
        ]
        lines += table(rows_for("loopback", loop_res, info, meta["runs"]))
    else:
        lines.append("Not run.")
    lines += [
        "",
        "## Summary",
        "",
    ]
    for model, res in (("link model", headline), ("loopback", loop_res)):
        if not res:
            continue
        rs = rows_for("link" if model == "link model" else "loopback", res, info, meta["runs"])
        met = sum(1 for r in rs if r[4].startswith("met"))
        nm = sum(1 for r in rs if r[4].startswith("**not met"))
        un = len(rs) - met - nm
        lines.append(f"- {model}: {met} of {len(rs)} targets met, {nm} not met, {un} not "
                     "measured.")
    lines += [
        "- Fake data set generated in "
        + " and ".join(f"{x:.0f}" for x in meta["setup_s"]) + " s (link model, loopback).",
        "",
        "Raw figures (JSON, every run):",
        "",
        "```json",
        json.dumps({"info": info, "meta": meta, "results": all_res}, indent=1, sort_keys=True),
        "```",
        "",
    ]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "benchmarks.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(out_dir, "benchmarks.svg"), "w") as f:
        f.write(svg(all_res, info))
    return lines
