//! An out-of-order reader's file checked by a pass in the background, not inside a read
//! (see `reader.rs`), with the data layer's in-memory remote of `tests.rs`.

use std::sync::atomic::Ordering;

use super::tests::{Setup, setup, sized_archive};
use super::*;

/// The verdict on entry `n` of the setup's blob.
fn entry_verdict(s: &Setup, n: usize) -> Option<verify::Verdict> {
    let entries = s.data.entries.lock().unwrap();
    entries.get(&(s.blob.key.clone(), n)).map(|i| i.verdict())
}

#[tokio::test]
async fn a_reader_out_of_order_has_its_file_checked_in_the_background_not_in_a_read() {
    let (zip, _, big, _) = sized_archive(1 << 20, 24 << 20);
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    let (len, chunk) = (big.len() as u64, 1u64 << 20);
    // The second half, in order: out of the order the running hash can follow, past what
    // its stash keeps.
    for off in (len / 2..len).step_by(chunk as usize) {
        let got = r.read(off, chunk as u32).await.unwrap();
        assert!(got[..] == big[off as usize..][..got.len()]);
    }
    // Half was served: the pass over the whole file runs in the background and verifies it
    // before the reader reads anything more (no read call runs it).
    for _ in 0..1000 {
        if entry_verdict(&s, 1) == Some(verify::Verdict::Good) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(entry_verdict(&s, 1), Some(verify::Verdict::Good));
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    // The first half: from the cache (the pass fetched it), and the read that completes
    // the file has nothing left to check.
    for off in (0..len / 2).step_by(chunk as usize) {
        let got = r.read(off, chunk as u32).await.unwrap();
        assert!(got[..] == big[off as usize..][..got.len()]);
    }
    assert_eq!(s.remote.bytes.load(Ordering::SeqCst), fetched);
    assert!(fetched <= zip.len() as u64, "no byte fetched twice");
}

#[tokio::test]
async fn a_mismatch_found_by_the_background_pass_fails_the_out_of_order_reader() {
    let (zip, _, big, big_at) = sized_archive(1 << 20, 24 << 20);
    // A byte of the first half changed in flight, once.
    let s = setup(&zip, 1 << 30, big_at + 1000, 1);
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    let (len, chunk) = (big.len() as u64, 1u64 << 20);
    for off in (len / 2..len).step_by(chunk as usize) {
        r.read(off, chunk as u32).await.unwrap();
    }
    for _ in 0..1000 {
        if matches!(entry_verdict(&s, 1), Some(verify::Verdict::Failed { .. })) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(matches!(
        entry_verdict(&s, 1),
        Some(verify::Verdict::Failed { .. })
    ));
    // From the moment the mismatch is known, the reader gets EIO.
    assert!(r.read(0, chunk as u32).await.is_err());
}
