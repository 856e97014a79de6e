//! Real mounts under load: one crawling artifact among fast ones, 32 readers with `ls -R`
//! and a deletion in the middle, and a Ctrl-C'd `cat` whose download stops. Each test runs
//! alone (`exclusive()`) and prints a `figures:` line (docs/reliability.md quotes them); time
//! bounds are generous "no hang" bounds, what is asserted is counted (requests, bytes,
//! errnos).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};

const REPO: &str = "octo-org/hello";

#[test]
fn a_throttled_artifact_does_not_stall_the_others() {
    let _alone = exclusive("throttle", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    // Deflated but incompressible, and first: none of it comes with the directory's blocks.
    z.add("slow.txt", &noise(400_000, 8));
    z.add_with("slow.bin", &noise(3 << 20, 9), EntryOptions::stored());
    let slow = add_hello(&gh, "slow", 1, z.finish());
    let n = 6;
    for i in 0..n {
        let mut z = ZipBuilder::new();
        z.add("f.txt", format!("fast {i}\n").as_bytes());
        z.add_with(
            "big.bin",
            &noise(1500 << 10, 100 + i),
            EntryOptions::stored(),
        );
        add_hello(&gh, &format!("fast{i}"), 2, z.finish());
    }
    let m = Daemon::new(&gh, REPO).mount();
    // Its central directory comes at full speed; then its blob crawls at 10 KB/s.
    assert_eq!(count_entries(&m.path("octo-org/hello/runs/1/slow")), 2);
    gh.set_faults(Faults {
        blob_throttle: Some((slow, 10_000)),
        ..Default::default()
    });
    let slow_started = Arc::new(AtomicU64::new(0));
    let slow_result: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    for f in ["slow.bin", "slow.txt"] {
        let (started, result) = (slow_started.clone(), slow_result.clone());
        let p = m.path(&format!("octo-org/hello/runs/1/slow/{f}"));
        // Left running: the unmount at the end ends them. They hold a path, not the
        // mount, so that a failing assertion still unmounts.
        std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let r = fs::read(&p);
            result
                .lock()
                .unwrap()
                .push(format!("{f}: {:?}", r.map(|b| b.len())));
        });
    }
    while slow_started.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The slow reads need 40 s and more: an ls or cat that waited on them would take that
    // long. The bound is generous (a loaded machine, a shell spawned per command).
    let bound = Duration::from_secs(10);
    let mut worst = Duration::ZERO;
    // The slow artifact's run directory lists too (no blob bytes needed for that).
    let t = Instant::now();
    let names = count_entries(&m.path("octo-org/hello/runs/1"));
    assert_eq!(names, 2);
    worst = worst.max(t.elapsed());
    for i in 0..n {
        let t = Instant::now();
        let (ok, out, err) = sh(&format!(
            "ls '{}'",
            m.path(&format!("octo-org/hello/runs/2/fast{i}")).display()
        ));
        assert!(ok, "{err}");
        assert_eq!(out.split_whitespace().count(), 2);
        let ls = t.elapsed();
        let t = Instant::now();
        let (ok, out, err) = sh(&format!(
            "cat '{}'",
            m.path(&format!("octo-org/hello/runs/2/fast{i}/f.txt"))
                .display()
        ));
        assert!(ok, "{err}");
        assert_eq!(out, format!("fast {i}\n"));
        let cat = t.elapsed();
        assert!(
            ls < bound,
            "ls of fast{i} took {ls:?} next to a crawling artifact"
        );
        assert!(
            cat < bound,
            "cat of fast{i} took {cat:?} next to a crawling artifact"
        );
        worst = worst.max(ls).max(cat);
    }
    // A 1.5 MiB stored entry of another artifact also streams at full speed meanwhile.
    let t = Instant::now();
    let got = fs::read(m.path("octo-org/hello/runs/2/fast0/big.bin")).unwrap();
    assert!(got == noise(1500 << 10, 100));
    let big = t.elapsed();
    assert!(big < Duration::from_secs(10), "{big:?}");
    let finished = slow_result.lock().unwrap().clone();
    assert!(
        finished.is_empty(),
        "the slow reads were still in flight the whole time: {finished:?}"
    );
    let served = gh
        .counters()
        .blob_bytes_by_artifact
        .get(&slow)
        .copied()
        .unwrap_or(0);
    eprintln!(
        "figures: one artifact throttled to 10 KB/s ({served} bytes of it served so far); \
         meanwhile ls and cat of {n} other artifacts: slowest {} ms; a 1.5 MiB entry of another: {} ms",
        worst.as_millis(),
        big.as_millis()
    );
}

#[test]
fn thirty_two_readers_ls_r_and_a_deletion_at_once() {
    let _alone = exclusive("load", 120);
    // The ordinary failures stay on throughout: retries and URL refreshes under load.
    let gh = start_fake_with(Faults {
        api_fail_every: 5,
        blob_truncate_every: 7,
        blob_force_403_every: 11,
        ..Default::default()
    });
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut zips = Vec::new();
    let mut doomed = 0;
    let arts = 5u64;
    for a in 0..arts {
        let mut z = ZipBuilder::new();
        for f in 0..24u64 {
            let name = format!("d{}/f{f:02}.txt", f % 4);
            let (data, opts) = match f % 6 {
                0 => (noise(250_000, a * 100 + f), EntryOptions::stored()),
                3 => (noise(120_000, a * 100 + f), EntryOptions::default()),
                _ => (
                    log_text(5_000 + f as usize * 1_500, a * 100 + f),
                    EntryOptions::default(),
                ),
            };
            z.add_with(&name, &data, opts);
            want.insert(format!("art{a}/{name}"), data);
        }
        let zip = z.finish();
        let id = add_hello(&gh, &format!("art{a}"), 9, zip.clone());
        if a == arts - 1 {
            doomed = id;
        }
        zips.push(zip);
    }
    let doomed_prefix = format!("art{}/", arts - 1);
    let m = Daemon::new(&gh, REPO).mount();
    // Threads hold the path, not the mount, so that a failure still unmounts.
    let run = m.path("octo-org/hello/runs/9");
    let want = Arc::new(want);
    let stop = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let enoents = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..32usize {
        let (run, want, stop, reads, enoents, doomed_prefix) = (
            run.clone(),
            want.clone(),
            stop.clone(),
            reads.clone(),
            enoents.clone(),
            doomed_prefix.clone(),
        );
        let zip0 = zips[0].clone();
        threads.push(std::thread::spawn(move || {
            let keys: Vec<&String> = want.keys().collect();
            let mut i = t * 13;
            while !stop.load(Ordering::SeqCst) {
                // A third of the threads share a few hot files (one per artifact), the rest
                // spread over everything; thread 31 also reads an archive whole.
                let k: &String = if t % 3 == 0 {
                    keys[(i % arts as usize) * 24]
                } else {
                    keys[(i * 7 + t) % keys.len()]
                };
                let path = if t == 31 && i % 5 == 0 {
                    "art0.zip".to_string()
                } else {
                    k.clone()
                };
                match fs::read(run.join(&path)) {
                    Ok(got) => {
                        let expect: &[u8] = if path == "art0.zip" { &zip0 } else { &want[k] };
                        assert!(got == expect, "{path}: wrong bytes");
                    }
                    Err(e) => {
                        assert!(
                            path.starts_with(&doomed_prefix)
                                && e.raw_os_error() == Some(libc::ENOENT),
                            "{path}: {e}"
                        );
                        enoents.fetch_add(1, Ordering::SeqCst);
                    }
                }
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let lister = {
        let (repo, stop, deleted) = (m.path("octo-org/hello"), stop.clone(), deleted.clone());
        std::thread::spawn(move || {
            // Listings completed before and after the deletion.
            let mut runs = [0u32; 2];
            while !stop.load(Ordering::SeqCst) {
                let was_deleted = deleted.load(Ordering::SeqCst);
                let (ok, out, err) = sh(&format!("ls -R '{}'", repo.display()));
                // A directory can vanish between its parent's listing and its own: only
                // the deleted artifact may do that.
                if !ok {
                    for l in err.lines() {
                        assert!(
                            l.contains("No such file") && l.contains("art4"),
                            "ls -R: {err}"
                        );
                    }
                }
                if was_deleted {
                    assert!(!out.contains("art4"), "deleted artifact listed: {out}");
                }
                // A whole listing: every artifact there (art4 until it is deleted).
                for a in 0..arts - 1 {
                    assert!(
                        out.contains(&format!("art{a}.zip")),
                        "ls -R lacks art{a}: {out}"
                    );
                }
                runs[usize::from(was_deleted)] += 1;
            }
            runs
        })
    };
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    fs::remove_file(m.path("octo-org/hello/runs/9/art4.zip")).unwrap();
    deleted.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for t in threads {
        if t.join().is_err() {
            failed += 1;
        }
    }
    let listings = lister.join().expect("ls -R saw an error it should not");
    assert_eq!(failed, 0, "{failed} reader threads failed");
    assert!(
        listings[0] >= 1 && listings[1] >= 1,
        "ls -R completed while the readers ran, before and after the deletion: {listings:?}"
    );
    let c = gh.counters();
    eprintln!(
        "figures: 32 readers + ls -R loop for {:.1} s with 1 in 5 API requests 502, 1 in 7 blob \
         bodies cut, 1 in 11 blob requests 403, artifact {doomed} deleted after 2 s: \
         {} reads verified, {} ENOENT (all on the deleted artifact), {listings:?} ls -R runs \
         (before, after the delete), {} blob requests, {} DELETE; injected: {:?}",
        t0.elapsed().as_secs_f64(),
        reads.load(Ordering::SeqCst),
        enoents.load(Ordering::SeqCst),
        c.blob_requests,
        c.delete_requests,
        c.injected,
    );
    assert_eq!(c.deleted_ids, vec![doomed]);
    assert!(reads.load(Ordering::SeqCst) > 100);
    assert!(!m.path("octo-org/hello/runs/9/art4").exists());
    assert!(!m.path("octo-org/hello/runs/9/art4.zip").exists());
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/9/art0/d1/f01.txt")).unwrap(),
        want["art0/d1/f01.txt"]
    );
}

#[test]
fn ctrl_c_on_cat_stops_its_download() {
    let _alone = exclusive("ctrl_c_on_cat_stops_its_download", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &noise(4 << 20, 2), EntryOptions::stored());
    let id = add_hello(&gh, "big", 1, z.finish());
    let m = Daemon::new(&gh, REPO).mount();
    let file = m.path("octo-org/hello/runs/1/big/big.bin");
    assert!(file.exists());
    gh.set_faults(Faults {
        blob_throttle: Some((id, 50_000)),
        ..Default::default()
    });
    let served = || {
        gh.counters()
            .blob_bytes_by_artifact
            .get(&id)
            .copied()
            .unwrap_or(0)
    };
    let before = served();
    let mut cat = std::process::Command::new("cat")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let while_reading = served() - before;
    assert!(while_reading > 0, "the read was under way");
    unsafe {
        libc::kill(cat.id() as i32, libc::SIGINT);
    }
    cat.wait().unwrap();
    // The mount notices the reader is gone within a moment (it watches /proc): wait until the
    // transfer stops (no bytes over half a second), however long that takes here, then check
    // that it stays stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped_after = loop {
        let s1 = served();
        std::thread::sleep(Duration::from_millis(500));
        if served() == s1 {
            break s1 - before - while_reading;
        }
        assert!(
            Instant::now() < deadline,
            "the download went on for 30 s after Ctrl-C"
        );
    };
    let at_stop = served();
    std::thread::sleep(Duration::from_secs(2));
    let after = served() - at_stop;
    eprintln!(
        "figures: {while_reading} bytes in 1.5 s of reading; {stopped_after} more until it \
         stopped; {after} bytes in the 2 s after that"
    );
    assert!(
        after < 20_000,
        "{after} bytes still downloaded after the reader left"
    );
}
