"""The figures of a run turned into the report's table rows: statistics (median and min–max),
formatting, and each row's title, target and verdict (met / not met, computed from the
figures)."""

import statistics

from harness import HUGE_MIB, KIB, MIB, STALL_EVERY


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def col(runs, key="s"):
    return stats([r[key] for r in runs])


def ratios(num, den):
    """Per-run ratios num[i] / den[i] (paired runs)."""
    return stats([a["s"] / b["s"] for a, b in zip(num, den)])


def fs(st, unit="s", scale=1.0, digits=None):
    """median (min–max) with a unit."""
    if st is None:
        return "—"

    def f(v):
        v = v * scale
        d = digits if digits is not None else (3 if abs(v) < 1 else 2 if abs(v) < 10 else 1)
        return f"{v:.{d}f}"

    if st["min"] == st["max"]:
        return f"{f(st['median'])} {unit}".strip()
    return f"{f(st['median'])} {unit} ({f(st['min'])}–{f(st['max'])})"


def fint(st, unit=""):
    if st is None:
        return "—"
    m = st["median"]
    m = int(m) if m == int(m) else m
    if st["min"] == st["max"]:
        return f"{m}{unit}"
    return f"{m}{unit} ({int(st['min'])}–{int(st['max'])})"


def fbytes(st):
    if st is None:
        return "—"
    if st["max"] >= MIB:
        return fs(st, "MiB", 1 / MIB, 1)
    if st["max"] >= KIB:
        return fs(st, "KiB", 1 / KIB, 0)
    return fint(st, " B")


def rq(runs, listings=True):
    """The requests a command made: redirects + blob (+ listings)."""
    t = f"requests: {fint(col(runs, 'redirect'))} redirect + {fint(col(runs, 'blob'))} blob"
    if listings:
        t += f" + {fint(col(runs, 'list'))} listing"
    return t


def mounted(runs):
    """What the mount before the command cost (it lists the repository)."""
    return (f"the mount before it: {fs(col(runs, 'mount_s'))}, "
            f"{fint(col(runs, 'mount_api'))} API requests")


def verdict(ok):
    return "met" if ok else "**not met**"


def rows_for(model, res, info, runs):
    """Table rows [what, artifactfs, peers, target, verdict] for one model's results."""
    out = []
    link = model == "link"
    failed = {k: v["failed"] for k, v in res.items() if isinstance(v, dict) and "failed" in v}
    res = {k: v for k, v in res.items() if k not in failed}
    log_mib = info["log_size"] / MIB
    comp_mib = info["log_compressed_size"] / MIB

    r = res.get("head")
    if r:
        af = r["af"]
        b, rt, t = col(af, "bytes"), stats([a["redirect"] + a["blob"] for a in af]), col(af)
        ok = b["max"] <= 2 * MIB and rt["max"] <= 4
        out.append([
            f"`head -c 4096` of a {log_mib:.0f} MiB log deflated to {comp_mib:.0f} MiB, cold "
            "(fresh mount)",
            f"{fs(t)}; {fbytes(b)} fetched; {rq(af)}",
            "",
            "≤ 2 MiB fetched, ≤ 4 round trips (redirects + blob requests)",
            f"{verdict(ok)}: at most {b['max'] / MIB:.2f} MiB, {int(rt['max'])} round trips",
        ])
    r = res.get("random")
    if r:
        dd, tl = r["dd"], r["tail"]
        b = stats([a["bytes"] for a in dd + tl])
        tdd, ttl = col(dd), col(tl)
        ok = b["max"] == 0 and tdd["median"] <= 0.150 and ttl["median"] <= 0.150
        out.append([
            "random read after one full read, inflated copy not cached (`--cache-size "
            f"{r['cache_size']}`), page cache dropped",
            f"`dd skip=` 4 KiB near the end: {fs(tdd, 'ms', 1000, 0)}; `tail -c 65536`: "
            f"{fs(ttl, 'ms', 1000, 0)}; {fbytes(b)} fetched",
            f"(the full read before: {r['first_read_s']:.2f} s, "
            f"{r['first_read']['bytes'] / MIB:.1f} MiB fetched; cache "
            f"{r['cache_bytes_after'] / MIB:.0f} MiB after it)",
            "≤ one seek span inflated (not visible from outside: judged by bytes and time), "
            "nothing fetched, ≤ 150 ms",
            f"{verdict(ok)}: {b['max']} B fetched at most; medians {tdd['median'] * 1000:.0f} "
            f"and {ttl['median'] * 1000:.0f} ms",
        ])
    r = res.get("seq")
    if r:
        af, cu = r["af"], r["curl"]
        mib = info["stored_size"] / MIB
        ta, tc, ra = col(af), col(cu), ratios(cu, af)
        ok = ra["median"] >= 3
        out.append([
            f"cold sequential read (`cat`) of a {mib:.0f} MiB stored entry",
            f"{fs(ta)} = {mib / ta['median']:.0f} MiB/s; up to {int(col(af, 'in_flight_max')['max'])}"
            f" blob bodies in flight; peak RSS {col(af, 'peak_rss_kib')['max'] / 1024:.0f} MiB",
            f"curl of the same byte range: {fs(tc)} = {mib / tc['median']:.0f} MiB/s",
            "≥ 3× curl",
            f"{verdict(ok)}: {fs(ra, '×', digits=2)}",
        ])
    r = res.get("grep")
    if r:
        af, cu, gh = r["af"], r["curl"], r["gh"]
        ta, tc, ra = col(af), col(cu), ratios(cu, af)
        peers = f"`curl -L` to a file + `unzip -p` \\| `grep -c`: {fs(tc)}"
        if gh:
            peers += f"; `gh run download` + `grep -c`: {fs(col(gh))}"
        out.append([
            f"`grep -c {info['log_pattern']}` over the {log_mib:.0f} MiB deflated log, cold",
            f"{fs(ta)}; {fbytes(col(af, 'bytes'))} fetched",
            peers,
            "≥ 2× `curl \\| unzip -p \\| grep`",
            f"{verdict(ra['median'] >= 2)}: {fs(ra, '×', digits=2)}",
        ])
    r = res.get("small")
    if r:
        af, cu, gh = r["af"], r["curl"], r["gh"]
        ta = col(af)
        rt = stats([a["redirect"] + a["blob"] for a in af])
        peers = f"`curl -L` + `unzip -p`: {fs(col(cu))}"
        if gh:
            peers += f"; `gh run download`: {fs(col(gh))}"
        per_rt = ""
        if link:
            per_rt = f" ≈ {ta['median'] / 0.030:.1f} × 30 ms"
        out.append([
            f"cold `cat` of a {info['small_size'] / 1000:.0f} KB file in a "
            f"{info['big_size'] / MIB:.0f} MiB archive, fresh mount",
            f"{fs(ta)}{per_rt}; {rq(af)}; {fbytes(col(af, 'bytes'))} fetched; {mounted(af)}",
            peers,
            "≤ 3 round trips (redirects + blob requests)",
            f"{verdict(rt['max'] <= 3)}: {int(rt['max'])} at most",
        ])
    r = res.get("warm")
    if r:
        af, lo = r["af"], r["local"]
        mib = info["stored_size"] / MIB
        ta, tl, ra = col(af), col(lo), ratios(lo, af)
        dropped = r["page_cache_dropped"]
        out.append([
            f"warm re-read of the {mib:.0f} MiB entry (from the disk cache"
            + (", page cache dropped" if dropped else "; page cache NOT dropped: not root") + ")",
            f"{fs(ta)} = {mib / ta['median']:.0f} MiB/s",
            f"local file: {fs(tl)} = {mib / tl['median']:.0f} MiB/s",
            "≥ 0.9× local",
            f"{verdict(dropped and ra['median'] >= 0.9)}: {fs(ra, '×', digits=2)}",
        ])
    r = res.get("webdav")
    if r:
        fu, mib = r["fuse"], info["stored_size"] / MIB
        tf = col(fu)
        # Results from before the davfs2 column have rclone only.
        clients = [(name, r[key]) for name, key in (("davfs2 mount", "davfs2"),
                                                    ("rclone cat", "rclone")) if key in r]
        ra = {name: ratios(fu, runs) for name, runs in clients}
        out.append([
            f"`sha256sum` of the {mib:.0f} MiB stored entry, cold: `serve --webdav` read by "
            + " and by ".join(f"`{n}`" for n, _ in clients)
            + " (fresh serve each) vs the FUSE mount (fresh mount)",
            "; ".join(f"{n}: {fs(col(runs))} = {mib / col(runs)['median']:.0f} MiB/s, "
                      f"{fbytes(col(runs, 'bytes'))} fetched" for n, runs in clients),
            f"FUSE mount: {fs(tf)} = {mib / tf['median']:.0f} MiB/s",
            "within 2× of the FUSE mount",
            f"{verdict(all(x['median'] >= 0.5 for x in ra.values()))}: "
            + "; ".join(f"{n} {fs(x, '×', digits=2)} the mount's speed" for n, x in ra.items()),
        ])
    r = res.get("stall")
    if r:
        what = (f"{info['stall_size'] / MIB:.0f} MiB stored entry read (`cat`, fresh mount) while "
                f"every {STALL_EVERY}th blob body stalls halfway (socket left open), loopback")
        if "not_measured" in r:
            out.append([what, f"not measured: {r['not_measured']}", "", "≤ 15 s",
                        "not measured"])
        else:
            af = r["af"]
            t = col(af)
            out.append([
                what,
                f"{fs(t)}; {fint(col(af, 'stalls'))} bodies stalled, "
                f"{fint(col(af, 'stalls_abandoned'))} given up on by artifactfs; "
                f"{rq(af, False)}; {fbytes(col(af, 'bytes'))} fetched",
                "", "≤ 15 s", f"{verdict(t['median'] <= 15)}: {t['median']:.2f} s",
            ])
    r = res.get("norange")
    if r:
        what = (f"{HUGE_MIB / 1024:.0f} GiB stored entry (`sha256sum`, fresh mount) from a blob "
                "host that ignores Range, loopback")
        if "not_measured" in r:
            out.append([what, f"not measured: {r['not_measured']}", "",
                        "peak RSS ≤ 64 MiB, bytes fetched = size", "not measured"])
        else:
            af = r["af"]
            t, peak = col(af), col(af, "peak_rss_kib")
            idle, b = col(af, "idle_rss_kib"), col(af, "bytes")
            ok = peak["max"] <= 64 * 1024 and b["max"] == b["min"] == r["blob_size"]
            out.append([
                what,
                f"{fs(t)} = {r['entry_size'] / MIB / t['median']:.0f} MiB/s; peak RSS "
                f"{peak['max'] / 1024:.0f} MiB (idle {idle['max'] / 1024:.0f} MiB); "
                f"{fbytes(b)} fetched for a {r['blob_size'] / MIB:.0f} MiB blob; {rq(af, False)}; "
                f"up to {int(col(af, 'in_flight_max')['max'])} bodies in flight",
                "", "peak RSS ≤ 64 MiB, bytes fetched = size",
                f"{verdict(ok)}: {peak['max'] / 1024:.0f} MiB, "
                f"{b['max'] / r['blob_size']:.3f}× the blob",
            ])
    r = res.get("fullcache")
    if r:
        wk, fu = r["working"], r["full"]
        tw, tf, ra = col(wk), col(fu), ratios(fu, wk)
        out.append([
            f"`sha256sum` of the {info['stall_size'] / MIB:.0f} MiB stored entry with the cache "
            "filesystem full (a 6 MiB tmpfs), fresh mount",
            f"{fs(tf)}; {rq(fu, False)}; {fbytes(col(fu, 'bytes'))} fetched; up to "
            f"{int(col(fu, 'in_flight_max')['max'])} bodies in flight",
            f"a working cache: {fs(tw)}; {rq(wk, False)}; up to "
            f"{int(col(wk, 'in_flight_max')['max'])} bodies in flight",
            "≤ 2× a working cache",
            f"{verdict(ra['median'] <= 2)}: {fs(ra, '×', digits=2)}",
        ])
    r = res.get("find")
    if r:
        af = r["af"]
        n = info["find_runs"] * info["find_per_run"]
        t = col(af)
        out.append([
            f"`find runs -name {info['find_file']}` over {n} small artifacts "
            f"({info['find_runs']} runs × {info['find_per_run']}), loopback, fresh mount",
            f"{fs(t)}; {rq(af)}; {mounted(af)}",
            "", "≤ 10 s", f"{verdict(t['median'] <= 10)}: {t['median']:.2f} s",
        ])
    r = res.get("lsr")
    if r:
        af = r["af"]
        n = info["tree_runs"] * info["tree_per_run"]
        t = col(af)
        out.append([
            f"`ls -R runs` of {info['tree_runs']} runs / {n} artifacts, cold (fresh mount)",
            f"{fs(t)}; {rq(af)}; at most {int(col(af, 'in_flight_max')['max'])} blob bodies "
            f"in flight; {mounted(af)}",
            "", "≤ 2 s", f"{verdict(t['median'] <= 2)}: {t['median']:.2f} s",
        ])
    r = res.get("tarls")
    if r:
        c, a = r["cold"], r["remount"]
        tc, ta = col(c), col(a)
        out.append([
            f"`ls -lR FILE.d/` of a {info['tar_members']}-file `.tar.gz` "
            f"({info['tar_gz_size'] / MIB:.0f} MiB, {info['tar_size'] / MIB:.0f} MiB "
            "unpacked) inside an artifact: cold, then after a remount",
            f"cold {fs(tc)}, {fbytes(col(c, 'bytes'))} fetched; after a remount {fs(ta)}, "
            f"{fbytes(col(a, 'bytes'))} fetched",
            "", "after a remount: the kept index, nothing fetched",
            f"{verdict(col(a, 'bytes')['max'] == 0)}: {int(col(a, 'bytes')['max'])} B at most",
        ])
    r = res.get("tarcat")
    if r:
        af, cu = r["af"], r["curl"]
        ta, ra = col(af), ratios(cu, af)
        out.append([
            "`cat` of one file in the `.tar.gz` once indexed (listed once, same mount)",
            f"{fs(ta)}; {fbytes(col(af, 'bytes'))} fetched; {rq(af)}",
            f"`curl -L` + `unzip -p` + `tar -xzO`: {fs(col(cu))}",
            "≥ 5× on the link model",
            f"{verdict(not link or ra['median'] >= 5)}: {fs(ra, '×', digits=2)}",
        ])
    r = res.get("sqlite")
    if r:
        c, a, cu, lo = r["cold"], r["again"], r["curl"], r["local"]
        tc, ta, tcu, tlo = col(c), col(a), col(cu), col(lo)
        ra = ratios(a, lo)
        ok = tc["median"] <= tcu["median"] and ra["median"] <= 3
        out.append([
            f"indexed `sqlite3` query on a {info['sqlite_size'] / MIB:.0f} MiB database "
            f"deflated in an artifact ({info['sqlite_archive_size'] / MIB:.0f} MiB): cold "
            "(fresh mount), then repeated",
            f"cold {fs(tc, 'ms', 1000, 0)}, {fbytes(col(c, 'bytes'))} fetched; repeated "
            f"{fs(ta, 'ms', 1000, 1)}, {fbytes(col(a, 'bytes'))} fetched",
            f"`curl -L` + `unzip` + `sqlite3`: {fs(tcu, 'ms', 1000, 0)}; the local file: "
            f"{fs(tlo, 'ms', 1000, 1)}",
            "cold ≤ curl + unzip + sqlite3; repeated ≤ 3× the local file",
            f"{verdict(ok)}: cold {fs(ratios(c, cu), '×', digits=2)} curl; repeated "
            f"{fs(ra, '×', digits=1)} local",
        ])
    r = res.get("lsruns")
    if r:
        af = r["af"]
        n = info["find_runs"] * info["find_per_run"]
        t = col(af)
        api = col(af, "api")
        lists = col(af, "list")
        others = int(api["max"] - lists["max"])
        # The mount's own listing (the list pages) comes before `ls`, which then has them.
        pages = int(lists["max"] + col(af, "mount_api")["max"])
        out.append([
            f"`ls runs` of {n} artifacts ({info['find_runs']} runs), fresh mount",
            f"{fs(t)}; {rq(af)}; {mounted(af)}",
            "", "list pages + ≤ 256 API requests",
            f"{verdict(others <= 256)}: {pages} pages + {others}",
        ])
    r = res.get("pulls")
    if r:
        af = r["af"]
        t = col(af)
        api = int(col(af, "api")["max"])
        out.append([
            f"`readlink pulls/{info['pull_number']}/{info['pull_artifact']}` (a fork's pull "
            f"request), cold (fresh mount)",
            f"{fs(t)}; {rq(af)}; {mounted(af)}",
            "", "≤ 4 round trips", f"{verdict(api <= 4)}: {api} API requests",
        ])
    for key, what, goal in (("lslr", "`ls -lR` of", 10), ("lsl", "`ls -l` of one folder of", None)):
        r = res.get(key)
        if not r:
            continue
        af, lo = r["af"], r["local"]
        ta, tl, ra = col(af), col(lo), ratios(af, lo)
        n = info["many_dirs"] * info["many_per_dir"] if key == "lslr" else info["many_per_dir"]
        if goal:
            target, ok = f"≤ {goal}× local", ra["median"] <= goal
            judged = f"{fs(ra, '×', digits=1)} local"
        else:
            target, ok = "≤ 30 ms", ta["median"] <= 0.030
            judged = f"{ta['median'] * 1000:.1f} ms"
        out.append([
            f"{what} {n} files in a zip64 archive, warm (index read, kernel caches filled), "
            "loopback",
            f"{fs(ta, 'ms', 1000)}; {fint(col(af, 'api'))} API + {fint(col(af, 'blob'))} blob "
            "requests",
            f"local disk: {fs(tl, 'ms', 1000)}",
            target, f"{verdict(ok)}: {judged}",
        ])
    r = res.get("getfattr")
    if r:
        us = lambda k: fs(col(r[k]), "µs", 1e6, 1)
        calls = col(r["getfattr_calls"])
        out.append([
            "`getfattr -d` of a file in the zip64 archive, warm, loopback",
            f"its calls (listxattr + each `user.` value), in-process: {us('getfattr_calls')}; "
            f"the command: {fs(col(r['cmd']), 'ms', 1000)}. One request: getxattr of a name "
            f"no file has {us('getxattr_absent')}, of a held `user.` name "
            f"{us('getxattr_user')}, listxattr {us('listxattr')}; readlink of `latest/` "
            f"(a task) {us('readlink_task')}",
            f"local file: calls {us('getfattr_calls_local')}; command "
            f"{fs(col(r['cmd_local']), 'ms', 1000)}; getxattr {us('getxattr_absent_local')}; "
            f"readlink {us('readlink_task_local')}",
            "≤ 1 ms", f"{verdict(calls['median'] <= 0.001)}: {calls['median'] * 1e6:.0f} µs",
        ])
    r = res.get("logs")
    if r:
        af, cu, gh = r["af"], r["curl"], r["gh"]
        ta, tc = col(af), col(cu)
        # The faster peer by median; each ratio is paired run by run with artifactfs.
        fast, fast_name = cu, "curl"
        peers = f"`curl -L` + `unzip -p` \\| `grep -c`: {fs(tc)}"
        if gh:
            tg = col(gh)
            peers += (f"; `gh run view --log` \\| `grep -c`: {fs(tg)} "
                      f"({rq(gh, listings=False)}; it counts {gh[0]['count']} lines: "
                      "step files only, prefixed)")
            if tg["median"] < tc["median"]:
                fast, fast_name = gh, "gh"
        else:
            peers += "; `gh run view --log`: not measured (gh is not installed)"
        ra = ratios(fast, af)
        out.append([
            f"`grep -rc ERROR logs/RUN/` over a run's {info['runlog_archive_size'] / MIB:.0f} MiB "
            "log archive, cold (fresh mount)",
            f"{fs(ta)}; {fbytes(col(af, 'bytes'))} fetched; {rq(af)}",
            peers,
            "≥ 2× the faster peer",
            f"{verdict(ra['median'] >= 2)}: {fs(ra, '×', digits=2)} {fast_name}",
        ])
    r = res.get("logtail")
    if r:
        af = r["af"]
        b, t = col(af, "bytes"), col(af)
        comp = info["runlog_job_compressed_size"]
        one_pass = b["max"] <= comp + 8 * MIB
        out.append([
            f"`tail -n 50` of the biggest job log ({info['runlog_job_size'] / MIB:.0f} MiB, "
            f"{comp / MIB:.0f} MiB deflated), cold, no seek points yet",
            f"{fs(t)}; {fbytes(b)} fetched; {rq(af)}",
            "",
            "one pass over the compressed bytes (≤ 4 round trips once seek points exist)",
            f"{verdict(one_pass)}: at most {b['max'] / MIB:.1f} MiB for {comp / MIB:.1f} MiB",
        ])
    for k, why in failed.items():
        out.append([ROW_TITLES[k], f"failed: {why.replace('|', '/')}", "", ROW_TARGETS[k],
                    "**not met** (failed)"])
    return out


ROW_TITLES = {
    "head": "`head -c 4096` of the deflated log, cold",
    "random": "random read of the deflated log, inflated copy not cached",
    "seq": "cold sequential read of the stored entry",
    "grep": "`grep -c` over the deflated log, cold",
    "small": "cold `cat` of a 1 KB file in the 257 MiB archive, fresh mount",
    "warm": "warm re-read of the stored entry",
    "stall": "128 MiB stored entry read while bodies stall, loopback",
    "find": "`find runs -name result.txt` over 3000 small artifacts, loopback",
    "lsr": "`ls -R runs` of 125 runs / 250 artifacts, cold",
    "tarls": "`ls -lR FILE.d/` of a 10 000-file `.tar.gz`, cold and after a remount",
    "tarcat": "`cat` of one file in the `.tar.gz` once indexed",
    "sqlite": "indexed `sqlite3` query on a deflated database, cold and repeated",
    "lsruns": "`ls runs` of 3000 artifacts, fresh mount",
    "pulls": "`readlink pulls/N/NAME`, cold",
    "lslr": "`ls -lR` of the 70 000-entry zip64 archive, warm",
    "lsl": "`ls -l` of a folder of 1000 files, warm",
    "getfattr": "`getfattr -d` of a file, warm",
    "logs": "`grep -rc ERROR logs/RUN/` over an 80 MiB log archive, cold",
    "logtail": "`tail -n 50` of the biggest job log, cold",
    "webdav": "`sha256sum` of the 256 MiB entry through `serve --webdav` (davfs2, rclone), cold",
    "norange": "no-Range 1 GiB read, loopback",
    "fullcache": "128 MiB read with the cache filesystem full",
}
ROW_TARGETS = {
    "head": "≤ 2 MiB fetched, ≤ 4 round trips", "random": "nothing fetched, ≤ 150 ms",
    "seq": "≥ 3× curl", "grep": "≥ 2× `curl \\| unzip -p \\| grep`",
    "small": "≤ 3 round trips", "warm": "≥ 0.9× local", "stall": "≤ 15 s", "find": "≤ 10 s",
    "lsr": "≤ 2 s", "lsruns": "list pages + ≤ 256 API requests", "pulls": "≤ 4 round trips",
    "lslr": "≤ 10× local", "lsl": "≤ 30 ms", "getfattr": "≤ 1 ms",
    "logs": "≥ 2× the faster peer", "logtail": "one pass",
    "tarls": "after a remount: nothing fetched", "tarcat": "≥ 5× on the link model",
    "webdav": "within 2× of the FUSE mount",
    "sqlite": "cold ≤ curl + unzip + sqlite3; repeated ≤ 3× the local file",
    "norange": "peak RSS ≤ 64 MiB, bytes fetched = size",
    "fullcache": "≤ 2× a working cache",
}


# -- report -----------------------------------------------------------------------------------
