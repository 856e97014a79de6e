"""Each row's measurement (`Bench`, one method per row): artifactfs and its peers timed in the
same run, with the bytes and requests the fake counted. Nothing is asserted here."""

import os
import shutil
import subprocess
import time

from harness import (
    FAKE, Davfs, Failed, Fake, HUGE_MIB, MIB, Mount, Serve, TOKEN, bash, drop_caches, log, q,
    reqs,
    sh,
)


class Bench:
    def __init__(self, fake, work, runs, model):
        self.fake, self.work, self.runs, self.model = fake, work, runs, model
        self.info = fake.info
        self.gh = shutil.which("gh")
        self.ghenv = {
            "HTTP_PROXY": fake.api, "GH_HOST": "github.localhost", "GH_TOKEN": TOKEN,
            "GH_CONFIG_DIR": os.path.join(work, "gh-config"), "GH_PROMPT_DISABLED": "1",
            "NO_COLOR": "1",
        }

    def tmp(self, name):
        p = os.path.join(self.work, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.unlink(p)
        return p

    def curl_zip(self, artifact_id, to, repo="data"):
        return (f"curl -sfL -H 'Authorization: Bearer {TOKEN}' -o {q(to)} "
                f"{q(self.fake.download_url(artifact_id, repo))}")

    def gh_download(self, run, name, to):
        return (f"{q(self.gh)} run download {run} -R bench/data -n {name} -D {q(to)} "
                ">/dev/null")

    # -- rows ---------------------------------------------------------------------------------

    def head(self):
        i = self.info
        rel = f"runs/{i['log_run']}/{i['log_artifact']}/{i['log_entry']}"
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                self.fake.reset()
                t, o = bash(f"head -c 4096 {q(m.path(rel))} | wc -c")
                assert int(o) == 4096, o
                c = reqs(self.fake.settled_counters())
            out.append({"s": t, **c})
        return {"af": out}

    def random(self):
        """A full read first (seek points recorded; with --cache-size below twice the entry
        the inflated copy is not kept), then random reads with the page cache dropped."""
        i = self.info
        rel = f"runs/{i['log_run']}/{i['log_artifact']}/{i['log_entry']}"
        size = i["log_size"]
        cache_size = f"{(2 * size - 32 * MIB) // MIB}M"
        dd, tail = [], []
        with Mount(self.fake, self.work, cache_size) as m:
            p = m.path(rel)
            t_first, _ = bash(f"cat {q(p)} >/dev/null")
            first = reqs(self.fake.settled_counters())
            cache_used = int(bash(f"du -sb {q(m.cache)} | cut -f1")[1])
            for r in range(self.runs):
                # A different 4 KiB near the end each run: 2.5 to 40 MiB before it.
                off = size - (5 + 7 * r) * MIB // 2 - 12345
                drop_caches()
                self.fake.reset()
                t, o = bash(f"dd if={q(p)} of=/dev/stdout bs=4096 count=1 iflag=skip_bytes "
                            f"skip={off} status=none | wc -c")
                assert int(o) == 4096, o
                dd.append({"s": t, "offset": off, **reqs(self.fake.settled_counters())})
                drop_caches()
                self.fake.reset()
                t, o = bash(f"tail -c 65536 {q(p)} | wc -c")
                assert int(o) == 65536, o
                tail.append({"s": t, **reqs(self.fake.settled_counters())})
        return {"dd": dd, "tail": tail, "cache_size": cache_size, "first_read_s": t_first,
                "first_read": first, "cache_bytes_after": cache_used}

    def cold_sha256(self, path):
        """One timed `sha256sum` of `path` on a fresh mount: looked up first (listings and
        central directory are not what this measures), then the page cache dropped and the
        fake's counters reset; the time, the sha256 and what crossed the network."""
        os.stat(path)
        drop_caches()
        self.fake.reset()
        t, o = bash(f"sha256sum < {q(path)}")
        return {"s": t, "sha256": o.split()[0], **reqs(self.fake.settled_counters())}

    def webdav(self):
        """`sha256sum` of the 256 MiB stored entry, cold, through `serve --webdav` read by
        davfs2 (a kernel mount) and by rclone's webdav backend (`rclone cat`), against the
        FUSE mount (each on a fresh cache, the page cache dropped before the read)."""
        i = self.info
        rel = f"runs/{i['big_run']}/{i['big_artifact']}/{i['stored_entry']}"
        rclone = shutil.which("rclone")
        if not rclone:
            raise Failed("rclone is not installed (scripts/install-deps.sh installs it)")
        fuse, davfs, dav = [], [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                fuse.append(self.cold_sha256(m.path(rel)))
            with Serve(self.fake, self.work) as sv, Davfs(sv.url) as d:
                davfs.append(self.cold_sha256(d.path(rel)))
            with Serve(self.fake, self.work) as sv:
                self.fake.reset()
                t, o = bash(f"RCLONE_CONFIG=/dev/null {q(rclone)} --webdav-url {q(sv.url)} "
                            f"cat {q(':webdav:' + rel)} | sha256sum")
                dav.append({"s": t, "sha256": o.split()[0],
                            **reqs(self.fake.settled_counters())})
        sums = {r["sha256"] for r in fuse + davfs + dav}
        assert len(sums) == 1, f"different sha256s: {sums}"
        return {"fuse": fuse, "davfs2": davfs, "rclone": dav}

    def seq(self):
        """Cold sequential read of the stored entry (listing and central directory first:
        this measures streaming) vs curl of the same byte range; then warm re-reads vs a local
        copy of the same bytes, page caches dropped."""
        i = self.info
        rel = f"runs/{i['big_run']}/{i['big_artifact']}/{i['stored_entry']}"
        off, size = i["stored_offset"], i["stored_size"]
        rng = f"{off}-{off + size - 1}"
        af, curl, warm_af, warm_local = [], [], [], []
        local = self.tmp("stored.bin")
        dropped = True
        for r in range(self.runs):
            with Mount(self.fake, self.work) as m:
                p = m.path(rel)
                os.stat(p)
                self.fake.reset()
                t, _ = bash(f"cat {q(p)} >/dev/null")
                c = reqs(self.fake.settled_counters())
                af.append({"s": t, "peak_rss_kib": m.peak_rss_kib(), **c})
                loc = self.fake.blob_location(i["big_id"])
                t, _ = bash(f"curl -sf -r {rng} -o /dev/null {q(loc)}")
                curl.append({"s": t})
                if r == self.runs - 1:
                    loc = self.fake.blob_location(i["big_id"])
                    bash(f"curl -sf -r {rng} -o {q(local)} {q(loc)}")
                    bash(f"cmp {q(local)} {q(p)}")
                    # Cheap and noisy (the VM's disk): three times the runs, the order
                    # alternating so that drift favours neither.
                    for k in range(3 * self.runs):
                        pair = {}
                        for who in (("af", "local") if k % 2 == 0 else ("local", "af")):
                            dropped = drop_caches() and dropped
                            t, _ = bash(f"cat {q(p if who == 'af' else local)} >/dev/null")
                            pair[who] = {"s": t}
                        warm_af.append(pair["af"])
                        warm_local.append(pair["local"])
        os.unlink(local)
        return {"seq": {"af": af, "curl": curl},
                "warm": {"af": warm_af, "local": warm_local, "page_cache_dropped": dropped}}

    def grep(self):
        i = self.info
        rel = f"runs/{i['log_run']}/{i['log_artifact']}/{i['log_entry']}"
        pat, want = i["log_pattern"], i["log_pattern_lines"]
        af, curl, gh = [], [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                self.fake.reset()
                t, o = bash(f"grep -c {pat} {q(m.path(rel))}")
                assert int(o) == want, (o, want)
                c = reqs(self.fake.settled_counters())
                af.append({"s": t, "peak_rss_kib": m.peak_rss_kib(), **c})
            z = self.tmp("logs.zip")
            t, o = bash(f"{self.curl_zip(i['log_id'], z)} && unzip -p {q(z)} {i['log_entry']} "
                        f"| grep -c {pat}")
            assert int(o) == want, (o, want)
            curl.append({"s": t})
            os.unlink(z)
            if self.gh:
                d = self.tmp("gh-logs")
                t, o = bash(f"{self.gh_download(i['log_run'], i['log_artifact'], d)} && "
                            f"grep -c {pat} {q(os.path.join(d, i['log_entry']))}", env=self.ghenv)
                assert int(o) == want, (o, want)
                gh.append({"s": t})
                shutil.rmtree(d)
        return {"af": af, "curl": curl, "gh": gh}

    def small(self):
        i = self.info
        rel = f"runs/{i['big_run']}/{i['big_artifact']}/{i['small_entry']}"
        af, curl, gh = [], [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                self.fake.reset()
                t, o = bash(f"cat {q(m.path(rel))} | wc -c")
                assert int(o) == i["small_size"], o
                af.append({"s": t, **reqs(self.fake.settled_counters()), "mount_s": m.mount_s,
                           "mount_api": m.mount_reqs["api"]})
            z = self.tmp("big.zip")
            t, o = bash(f"{self.curl_zip(i['big_id'], z)} && unzip -p {q(z)} {i['small_entry']} "
                        "| wc -c")
            assert int(o) == i["small_size"], o
            curl.append({"s": t})
            os.unlink(z)
            if self.gh:
                d = self.tmp("gh-big")
                t, o = bash(f"{self.gh_download(i['big_run'], i['big_artifact'], d)} && "
                            f"cat {q(os.path.join(d, i['small_entry']))} | wc -c",
                            env=self.ghenv)
                assert int(o) == i["small_size"], o
                gh.append({"s": t})
                shutil.rmtree(d)
        return {"af": af, "curl": curl, "gh": gh}

    def stall(self):
        """A fake of its own (loopback, every 10th blob body stalled halfway with the socket
        left open), a cold read of the 128 MiB stored entry on a fresh mount per run."""
        helptext = subprocess.run([FAKE, "--help"], capture_output=True, text=True).stdout
        if "--blob-stall-every" not in helptext:
            return {"not_measured": "no stall fault in fake-github yet"}
        log("stall: starting a fake-github that stalls bodies (generating the data)")
        fake = Fake("stall")
        i = fake.info
        rel = f"runs/{i['stall_run']}/{i['stall_artifact']}/{i['stall_entry']}"
        out = []
        try:
            for _ in range(self.runs):
                with Mount(fake, self.work) as m:
                    fake.reset()
                    t, o = bash(f"cat {q(m.path(rel))} | wc -c")
                    assert int(o) == i["stall_size"], o
                    c = fake.settled_counters()
                    out.append({"s": t, **reqs(c), "stalls": c.get("blob_stalls", 0),
                                "stalls_abandoned": c.get("blob_stalls_abandoned", 0)})
        finally:
            fake.stop()
        return {"af": out, "setup_s": fake.setup_s}

    def norange(self):
        """A fake of its own (loopback) whose blob host ignores Range, serving one artifact
        of HUGE_MIB: `sha256sum` of its stored entry on a fresh mount per run, the daemon's
        peak RSS against its idle RSS, and the bytes the blob host sent."""
        helptext = subprocess.run([FAKE, "--help"], capture_output=True, text=True).stdout
        if "--bench-huge-mib" not in helptext:
            return {"not_measured": "no --bench-huge-mib in fake-github yet"}
        log(f"norange: starting a fake-github without Range ({HUGE_MIB} MiB artifact)")
        fake = Fake("norange")
        h = fake.huge
        rel = f"runs/{h['run']}/{h['artifact']}/{h['entry']}"
        out = []
        try:
            for _ in range(self.runs):
                with Mount(fake, self.work) as m:
                    os.listdir(m.path(f"runs/{h['run']}"))
                    idle = m.peak_rss_kib("VmRSS")
                    fake.reset()
                    t, o = bash(f"sha256sum < {q(m.path(rel))}")
                    c = reqs(fake.settled_counters())
                    out.append({"s": t, "sha256": o.split()[0], "idle_rss_kib": idle,
                                "peak_rss_kib": m.peak_rss_kib(), **c})
        finally:
            fake.stop()
        assert len({r["sha256"] for r in out}) == 1, "different sha256s"
        return {"af": out, "blob_size": h["blob_size"], "entry_size": h["entry_size"],
                "setup_s": fake.setup_s}

    def fullcache(self):
        """`sha256sum` of the 128 MiB stored entry, fresh mount: on a working cache, then
        with the cache on a 6 MiB tmpfs (full after the first blocks: every write fails from
        there on, and caching pauses). Needs root (mount -t tmpfs)."""
        if os.geteuid() != 0:
            raise Failed("mounting a tmpfs needs root")
        i = self.info
        rel = f"runs/{i['stall_run']}/{i['stall_artifact']}/{i['stall_entry']}"
        working, full = [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                working.append(self.cold_sha256(m.path(rel)))
            tmpfs = self.tmp("tmpfs")
            os.makedirs(tmpfs)
            sh(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", tmpfs])
            try:
                with Mount(self.fake, self.work, cache_size="1G",
                           cache=os.path.join(tmpfs, "cache")) as m:
                    full.append(self.cold_sha256(m.path(rel)))
            finally:
                sh(["umount", "-l", tmpfs], check=False)
                os.rmdir(tmpfs)
        assert len({r["sha256"] for r in working + full}) == 1, "different sha256s"
        return {"working": working, "full": full}

    def find(self):
        i = self.info
        want = i["find_runs"] * i["find_per_run"]
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work, repo="find") as m:
                self.fake.reset()
                t, o = bash(f"find {q(m.path('runs', 'find'))} -name {i['find_file']} | wc -l")
                assert int(o) == want, (o, want)
                out.append({"s": t, **reqs(self.fake.settled_counters()), "mount_s": m.mount_s,
                            "mount_api": m.mount_reqs["api"]})
        return {"af": out}

    def logs(self):
        """`grep -rc ERROR logs/RUN/` over a run's 80 MiB log archive (every job and step
        file), fresh mount, vs the run's log archive fetched with `curl -L` and `unzip -p`
        into `grep -c`, and `gh run view --log | grep -c` when gh is installed (it asks the
        run, its workflow and its jobs, then downloads the archive and prints each step's
        file with prefixes: its count is its own). gh keeps the archive it downloaded in
        `$TMPDIR/gh-cli-cache/`: each run gets an empty TMPDIR so that it downloads again."""
        i = self.info
        run, want = i["runlog_run"], i["runlog_error_lines"]
        url = f"{self.fake.api}/repos/bench/data/actions/runs/{run}/logs"
        af, curl, gh = [], [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                self.fake.reset()
                t, o = bash(f"grep -rc ERROR {q(m.path(f'logs/{run}'))} "
                            "| awk -F: '{s += $NF} END {print s}'")
                assert int(o) == want, (o, want)
                af.append({"s": t, "peak_rss_kib": m.peak_rss_kib(),
                           **reqs(self.fake.settled_counters())})
            z = self.tmp("runlogs.zip")
            t, o = bash(f"curl -sfL -H 'Authorization: Bearer {TOKEN}' -o {q(z)} {q(url)} && "
                        f"unzip -p {q(z)} | grep -c ERROR")
            assert int(o) == want, (o, want)
            curl.append({"s": t})
            os.unlink(z)
            if self.gh:
                tmp = self.tmp("gh-tmp")
                os.mkdir(tmp)
                self.fake.reset()
                t, o = bash(f"{q(self.gh)} run view {run} -R bench/data --log | grep -c ERROR",
                            env={**self.ghenv, "TMPDIR": tmp})
                gh.append({"s": t, "count": int(o), **reqs(self.fake.settled_counters())})
                shutil.rmtree(tmp)
        return {"af": af, "curl": curl, "gh": gh}

    def logtail(self):
        """`tail -n 50` of the run's biggest job log, cold (fresh mount): no seek points
        yet, so one pass over the entry's compressed bytes."""
        i = self.info
        rel = f"logs/{i['runlog_run']}/{i['runlog_job_entry']}"
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                os.listdir(m.path(f"logs/{i['runlog_run']}"))
                listed = reqs(self.fake.settled_counters())
                self.fake.reset()
                t, o = bash(f"tail -n 50 {q(m.path(rel))} | wc -l")
                assert int(o) == 50, o
                out.append({"s": t, "listed": listed, **reqs(self.fake.settled_counters())})
        return {"af": out}

    def lsruns(self):
        """`ls runs` of the 3000-artifact repository: its list pages and, in the background,
        the read-ahead (at most 256 API requests by the quota budget)."""
        i = self.info
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work, repo="find") as m:
                self.fake.reset()
                t, o = bash(f"ls {q(m.path('runs', 'find'))} | wc -l")
                assert int(o) == i["find_runs"], (o, i["find_runs"])
                out.append({"s": t, **reqs(self.fake.settled_counters(quiet=0.5, limit=20)),
                            "mount_s": m.mount_s, "mount_api": m.mount_reqs["api"]})
        return {"af": out}

    def pulls(self):
        """`readlink pulls/N/NAME` on a fresh mount: the pull request, then its artifact."""
        i = self.info
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work, repo="tree") as m:
                self.fake.reset()
                link = m.path(f"pulls/{i['pull_number']}/{i['pull_artifact']}", "tree")
                t, o = bash(f"readlink {q(link)}")
                assert o.strip().startswith("../../runs/"), o
                out.append({"s": t, **reqs(self.fake.counters()), "mount_s": m.mount_s,
                            "mount_api": m.mount_reqs["api"]})
        return {"af": out}

    def lsr(self):
        out = []
        for _ in range(self.runs):
            with Mount(self.fake, self.work, repo="tree") as m:
                self.fake.reset()
                t, o = bash(f"ls -R {q(m.path('runs', 'tree'))} | wc -l")
                out.append({"s": t, "lines": int(o), **reqs(self.fake.settled_counters()),
                            "mount_s": m.mount_s, "mount_api": m.mount_reqs["api"]})
        return {"af": out}

    def tarls(self):
        """`ls -lR` of a 10 000-file `.tar.gz` inside an artifact: cold (fresh mount: the
        index pass), then after a remount on the same cache (the kept index)."""
        i = self.info
        rel = f"runs/{i['tar_run']}/{i['tar_artifact']}/{i['tar_file']}.d"
        cold, again = [], []
        for r in range(self.runs):
            cache = os.path.join(self.work, f"tarcache{r}")
            shutil.rmtree(cache, ignore_errors=True)
            for out in (cold, again):
                with Mount(self.fake, self.work, cache=cache) as m:
                    os.stat(m.path(f"runs/{i['tar_run']}/{i['tar_artifact']}"))
                    self.fake.reset()
                    t, o = bash(f"ls -lR {q(m.path(rel))} | wc -l")
                    out.append({"s": t, "lines": int(o), **reqs(self.fake.settled_counters())})
            shutil.rmtree(cache, ignore_errors=True)
        return {"cold": cold, "remount": again}

    def tarcat(self):
        """`cat` of one file of the `.tar.gz` once its index exists (listed once on the same
        mount) vs `curl -L` + `unzip -p` + `tar -xzO`."""
        i = self.info
        d = f"runs/{i['tar_run']}/{i['tar_artifact']}/{i['tar_file']}.d"
        af, curl = [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                bash(f"ls {q(m.path(d))} >/dev/null")
                self.fake.settled_counters()
                self.fake.reset()
                t, o = bash(f"cat {q(m.path(d + '/' + i['tar_member']))} | wc -c")
                assert int(o) == i["tar_member_size"], o
                af.append({"s": t, **reqs(self.fake.settled_counters())})
            z = self.tmp("dist.zip")
            t, o = bash(f"{self.curl_zip(i['tar_id'], z)} && unzip -p {q(z)} {i['tar_file']} "
                        f"| tar -xzO {q(i['tar_member'])} | wc -c")
            assert int(o) == i["tar_member_size"], o
            curl.append({"s": t})
            os.unlink(z)
        return {"af": af, "curl": curl}

    def sqlite(self):
        """An indexed `sqlite3` query on the ~33 MiB database deflated in an artifact: cold
        (fresh mount), then the same query again once the mount is quiet (the database
        inflated to its copy in the background), against `curl -L` + `unzip` + `sqlite3` and
        the same query on a local copy (page cache warm)."""
        i = self.info
        if not i.get("sqlite_size"):
            raise Failed("no database: fake-github needs `sqlite3` (scripts/install-deps.sh)")
        if not shutil.which("sqlite3"):
            raise Failed("sqlite3 is not installed (scripts/install-deps.sh installs it)")
        rel = f"runs/{i['sqlite_run']}/{i['sqlite_artifact']}/{i['sqlite_entry']}"
        sql = i["sqlite_query"]
        z, d = self.tmp("db.zip"), self.tmp("db-local")
        bash(f"{self.curl_zip(i['sqlite_id'], z)} && unzip -q {q(z)} -d {q(d)}")
        local = os.path.join(d, i["sqlite_entry"])
        _, want = bash(f"sqlite3 {q(local)} {q(sql)}")
        assert want.startswith("54321|"), want
        cold, again, curl, loc = [], [], [], []
        for _ in range(self.runs):
            with Mount(self.fake, self.work) as m:
                uri = f"file:{m.path(rel)}?immutable=1"
                self.fake.reset()
                t, o = bash(f"sqlite3 {q(uri)} {q(sql)}")
                assert o == want, o
                cold.append({"s": t, "peak_rss_kib": m.peak_rss_kib(),
                             **reqs(self.fake.settled_counters(limit=20))})
                self.fake.reset()
                t, o = bash(f"sqlite3 {q(uri)} {q(sql)}")
                assert o == want, o
                again.append({"s": t, **reqs(self.fake.settled_counters())})
            z2, d2 = self.tmp("db2.zip"), self.tmp("db2")
            t, o = bash(f"{self.curl_zip(i['sqlite_id'], z2)} && unzip -q {q(z2)} -d {q(d2)} && "
                        f"sqlite3 {q(os.path.join(d2, i['sqlite_entry']))} {q(sql)}")
            assert o == want, o
            curl.append({"s": t})
            shutil.rmtree(d2)
            os.unlink(z2)
            t, o = bash(f"sqlite3 {q(local)} {q(sql)}")
            assert o == want, o
            loc.append({"s": t})
        shutil.rmtree(d)
        os.unlink(z)
        return {"cold": cold, "again": again, "curl": curl, "local": loc}

    # -- metadata rows (bench/many: 70 folders × 1000 files), warm, against local disk ------

    def many_local(self):
        """The 70 000-entry archive extracted on local disk (once per model)."""
        i = self.info
        local = os.path.join(self.work, "many-local")
        if not os.path.isdir(local):
            z = self.tmp("many.zip")
            bash(self.curl_zip(i["many_id"], z, i["many_repo"]))
            bash(f"unzip -q {q(z)} -d {q(local)}")
            os.unlink(z)
        return local

    def many_mount(self):
        i = self.info
        m = Mount(self.fake, self.work, repo=i["many_repo"])
        return m, m.path(f"runs/{i['many_run']}/{i['many_artifact']}", i["many_repo"])

    def warm_pairs(self, cmd, rel):
        """`cmd DIR/rel` on the mount and on local disk, each once untimed (the mount reads
        the archive's index, both fill the kernel's caches), then paired timed runs."""
        local = self.many_local()
        m, art = self.many_mount()
        with m:
            for d in (art, local):
                bash(f"{cmd} {q(os.path.join(d, rel))} >/dev/null")
            self.fake.reset()
            af, lo = [], []
            for _ in range(self.runs):
                t, o = bash(f"{cmd} {q(os.path.join(art, rel))} | wc -l")
                af.append({"s": t, "lines": int(o), **reqs(self.fake.counters())})
                t, o = bash(f"{cmd} {q(os.path.join(local, rel))} | wc -l")
                lo.append({"s": t, "lines": int(o)})
        return {"af": af, "local": lo}

    def lslr(self):
        return self.warm_pairs("ls -lR", "")

    def lsl(self):
        return self.warm_pairs("ls -l", "d00")

    def getfattr(self):
        """`getfattr -d` of one file (the command, and the calls it makes timed in-process),
        and the round trip of each kind of request, against a local file."""
        local = self.many_local()
        m, art = self.many_mount()
        n = 2000
        with m:
            f, lf = os.path.join(art, "d00/f0.txt"), os.path.join(local, "d00/f0.txt")
            bash(f"ls -lR {q(art)} >/dev/null")  # warm: index read, every inode seen

            def none(p, name):
                try:
                    os.getxattr(p, name)
                except OSError:
                    pass

            def dump(p):
                # What `getfattr -d` asks: the names, then each `user.` value.
                for name in os.listxattr(p):
                    if name.startswith("user."):
                        os.getxattr(p, name)

            # A symlink's target is not cached by the kernel: each readlink is a request
            # answered by a task (the core resolves `latest/NAME`).
            link = m.path(f"latest/{self.info['many_artifact']}", self.info["many_repo"])
            local_link = os.path.join(self.work, "many-link")
            if not os.path.islink(local_link):
                os.symlink(local, local_link)
            links = {art: link, local: local_link}
            kinds = {
                "getxattr_absent": lambda p, d: none(p, "security.selinux"),
                "getxattr_user": lambda p, d: none(p, "user.zip.crc32"),
                "listxattr": lambda p, d: os.listxattr(p),
                "readlink_task": lambda p, d: os.readlink(links[d]),
                "getfattr_calls": lambda p, d: dump(p),
            }
            out = {"cmd": [], "cmd_local": []}
            for k in kinds:
                out[k], out[k + "_local"] = [], []
            for _ in range(self.runs):
                t, _ = bash(f"getfattr -d {q(f)} >/dev/null")
                out["cmd"].append({"s": t})
                t, _ = bash(f"getfattr -d {q(lf)} >/dev/null")
                out["cmd_local"].append({"s": t})
                for k, call in kinds.items():
                    for p, d, key in ((f, art, k), (lf, local, k + "_local")):
                        t = time.perf_counter()
                        for _ in range(n):
                            call(p, d)
                        out[key].append({"s": (time.perf_counter() - t) / n})
        return out


# -- statistics and verdicts ------------------------------------------------------------------
