"""The bench's harness: paths and constants (binaries, models, the rows and where each is
measured), shell helpers, and the processes a row drives: the fake GitHub (`Fake`), a mount
(`Mount`) and `serve` (`Serve`)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
AF = os.path.join(TARGET, "release/artifactfs")
FAKE = os.path.join(TARGET, "release/fake-github")
TOKEN = "test-token"
MOUNT_TOKENS = 100
MIB = 1 << 20
KIB = 1 << 10

MODELS = {
    "link": {"api_delay_ms": 30, "blob_delay_ms": 30, "blob_mibps": 50},
    "loopback": {"api_delay_ms": 0, "blob_delay_ms": 0, "blob_mibps": 0},
    # Loopback with every 10th blob body stalled halfway, the connection left open.
    "stall": {"api_delay_ms": 0, "blob_delay_ms": 0, "blob_mibps": 0, "blob_stall_every": 10},
    # Loopback, a blob host that ignores Range, one artifact of HUGE_MIB (not the data set).
    "norange": {"api_delay_ms": 0, "blob_delay_ms": 0, "blob_mibps": 0, "no_range": True},
}
HUGE_MIB = 1024
STALL_EVERY = MODELS["stall"]["blob_stall_every"]

# The rows, in the order. `models`: where the issue sets the row (the headline table
# shows the loopback figures for the two rows the issue defines on loopback).
ROWS = ["head", "random", "seq", "grep", "small", "warm", "stall", "find", "lsr", "lsruns",
        "pulls", "lslr", "lsl", "getfattr", "logs", "logtail", "webdav", "tarls", "tarcat",
        "sqlite", "norange", "fullcache"]
# The metadata rows are warm (nothing crosses the network): loopback only.
ROW_MODELS = {"stall": ["loopback"], "norange": ["loopback"], "find": ["loopback"], "lslr": ["loopback"],
              "lsl": ["loopback"], "getfattr": ["loopback"], "webdav": ["loopback"]}
LOOPBACK_ROWS = ["stall", "find", "lslr", "lsl", "getfattr", "norange"]


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def sh(cmd, env=None, check=True, **kw):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(cmd, env=e, check=check, **kw)


def bash(script, env=None, check=True):
    """Runs a shell pipeline (pipefail) and returns (seconds, stdout)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    t = time.perf_counter()
    p = subprocess.run(["bash", "-c", "set -o pipefail; " + script], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        err = (p.stderr.strip().splitlines() or [""])
        raise Failed(f"`{script.split()[0]}` exited {p.returncode}: {err[0][:200]}"
                     + (f" (and {len(err) - 1} more lines)" if len(err) > 1 else ""))
    return time.perf_counter() - t, p.stdout


class Failed(Exception):
    """A command of a row failed: the row says so, the other rows go on."""


def drop_caches():
    try:
        sh(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Fake:
    def __init__(self, model):
        m = MODELS[model]
        # GitHub's primary rate limit (5000 requests an hour per token, which the fake
        # enforces) would refuse the second `find` over 3000 artifacts: each mount gets a
        # token of its own, as if each run were a different hour.
        if m.get("no_range"):
            args = [FAKE, "--bench-huge-mib", str(HUGE_MIB), "--no-range", "--token", TOKEN]
        else:
            args = [FAKE, "--bench", "--token", TOKEN]
        for k in range(MOUNT_TOKENS):
            args += ["--token", f"bench-{k}"]
        if m["api_delay_ms"]:
            args += ["--api-delay-ms", str(m["api_delay_ms"])]
        if m["blob_delay_ms"]:
            args += ["--blob-delay-ms", str(m["blob_delay_ms"])]
        if m["blob_mibps"]:
            args += ["--blob-mibps", str(m["blob_mibps"])]
        if m.get("blob_stall_every"):
            args += ["--blob-stall-every", str(m["blob_stall_every"])]
        t = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        d = json.loads(self.proc.stdout.readline())
        self.setup_s = time.perf_counter() - t
        self.api = d["api"]
        self.blob = d["blob"]
        self.info = d.get("bench")
        self.huge = d.get("huge")

    def counters(self):
        with urllib.request.urlopen(self.api + "/_fake/counters") as r:
            return json.load(r)

    def settled_counters(self, quiet=0.3, limit=5.0):
        """The counters once blob bytes stopped moving for `quiet` seconds (background
        readahead after a command exits counts too), at most `limit` seconds."""
        c = self.counters()
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            time.sleep(quiet)
            n = self.counters()
            if n["blob_bytes_total"] == c["blob_bytes_total"] and \
                    n["blob_requests"] == c["blob_requests"]:
                return n
            c = n
        return c

    def reset(self):
        req = urllib.request.Request(self.api + "/_fake/reset", method="POST")
        urllib.request.urlopen(req).read()

    def download_url(self, artifact_id, repo="data"):
        return f"{self.api}/repos/bench/{repo}/actions/artifacts/{artifact_id}/zip"

    def blob_location(self, artifact_id):
        """A fresh signed blob URL (the download redirect's Location)."""
        return sh(["curl", "-s", "-o", "/dev/null", "-w", "%{redirect_url}", "-H",
                   f"Authorization: Bearer {TOKEN}", self.download_url(artifact_id)],
                  capture_output=True, text=True).stdout

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Mount:
    """A fresh mount on a fresh cache directory."""

    count = 0

    def __init__(self, fake, work, cache_size="20G", repo="data", cache=None):
        """`cache`: an existing cache directory to mount on (a remount), kept at close."""
        Mount.count += 1
        self.mp = os.path.join(work, f"mnt{Mount.count}")
        self.keep_cache = cache is not None
        self.cache = cache or os.path.join(work, f"cache{Mount.count}")
        os.makedirs(self.mp)
        fake.reset()
        t = time.perf_counter()
        sh([AF, "mount", self.mp, "--repo", f"bench/{repo}", "--api-url", fake.api, "--cache-dir", self.cache, "--cache-size",
            cache_size], env={"GH_TOKEN": f"bench-{Mount.count % MOUNT_TOKENS}"},
           stderr=subprocess.DEVNULL)
        # What mounting cost (it returns once the filesystem answers).
        self.mount_s = time.perf_counter() - t
        self.mount_reqs = reqs(fake.counters())
        out = subprocess.run(["pgrep", "-f", "artifactfs mount " + self.mp + " "],
                             capture_output=True, text=True).stdout.split()
        self.pid = int(out[0]) if out else None

    def path(self, rel, repo="data"):
        return os.path.join(self.mp, "bench", repo, rel)

    def peak_rss_kib(self, field="VmHWM"):
        """The daemon's peak resident memory (`VmRSS`: now)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except (OSError, TypeError):
            pass
        return None

    def close(self):
        sh([AF, "unmount", self.mp], check=False, stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        for _ in range(50):
            if self.pid is None or not os.path.exists(f"/proc/{self.pid}"):
                break
            time.sleep(0.1)
        if not self.keep_cache:
            shutil.rmtree(self.cache, ignore_errors=True)
        try:
            os.rmdir(self.mp)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reqs(c):
    """The fake's request counts, by kind."""
    e = c["by_endpoint"]
    return {
        "api": c["api_requests"],
        "list": e.get("list_repo", 0) + e.get("list_run", 0),
        "redirect": e.get("download", 0) + e.get("run_logs", 0) + e.get("job_logs", 0),
        "blob": c["blob_requests"],
        "bytes": c["blob_bytes_total"],
        "in_flight_max": c.get("blob_in_flight_max", 0),
    }


def q(s):
    return "'" + s.replace("'", "'\\''") + "'"


class Serve:
    """`artifactfs serve --webdav` on a free loopback port and a fresh cache directory."""

    count = 0

    def __init__(self, fake, work, repo="data"):
        Serve.count += 1
        self.cache = os.path.join(work, f"serve-cache{Serve.count}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        fake.reset()
        self.proc = subprocess.Popen(
            [AF, "serve", "--webdav", "--repo", f"bench/{repo}", "--api-url", fake.api,
             "--cache-dir", self.cache, "--addr", f"127.0.0.1:{self.port}"],
            env={**os.environ, "GH_TOKEN": f"bench-{Serve.count % MOUNT_TOKENS}"},
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            raise Failed(f"serve --webdav did not start: {line!r}")
        self.url = f"http://127.0.0.1:{self.port}/bench/{repo}/"

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.cache, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Davfs:
    """A davfs2 mount (`mount.davfs`, run as root) of a `Serve`'s URL, with a davfs2.conf of
    its own as tests/webdav.rs mounts it: its cache in a temporary directory of its own,
    `buf_size 256` (davfs2 1.6.1's default FUSE buffer is smaller than the readdir requests
    Linux 6.18 sends), and room for the whole file (davfs2 downloads a file whole into its
    cache on open, then serves reads from there). No username or password (two empty answers
    on stdin)."""

    def __init__(self, url):
        if not shutil.which("mount.davfs"):
            raise Failed("davfs2 is not installed (scripts/install-deps.sh installs it)")
        # Outside the bench's work directory (0700): mount.davfs run by root serves as its
        # dav_user (davfs2), so its cache must be reachable and writable for that user.
        self.dir = tempfile.mkdtemp(prefix="artifactfs-bench-davfs-")
        self.mnt, cache = os.path.join(self.dir, "mnt"), os.path.join(self.dir, "cache")
        os.makedirs(self.mnt)
        os.makedirs(cache)
        os.chmod(self.dir, 0o755)
        os.chmod(cache, 0o777)
        conf = os.path.join(self.dir, "davfs2.conf")
        with open(conf, "w") as f:
            f.write(f"buf_size 256\ncache_dir {cache}\ncache_size 1024\nuse_locks 0\n"
                    "read_timeout 300\n")
        r = subprocess.run(f"printf '\\n\\n' | mount.davfs -o conf={q(conf)} {q(url)} "
                           f"{q(self.mnt)}", shell=True, capture_output=True, text=True)
        if r.returncode != 0:
            raise Failed(f"mount.davfs failed (it needs root): {r.stdout}{r.stderr}")

    def path(self, rel):
        return os.path.join(self.mnt, rel)

    def close(self):
        # umount.davfs waits for the daemon to write back and exit.
        subprocess.run(["umount", self.mnt], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
