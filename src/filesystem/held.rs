//! Metadata held with a listing, so that what a listing's readers ask of every file (an
//! artifact's extended attributes, its parsed central directory) is answered from memory:
//! built the first time an artifact is asked about, once per listing snapshot, and dropped
//! with the snapshot when a refresh or a deletion replaces it (a run's artifacts change while
//! the run is in progress; the next snapshot builds them again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::data::ArchiveIndex;
use crate::github::Artifact;

/// Extended attributes: name → value, in a fixed order.
pub type Xattrs = Arc<[(String, String)]>;

/// What is held for one artifact of one listing.
pub struct HeldArtifact {
    /// `user.artifact.*`.
    pub xattrs: Xattrs,
    /// The zip's central directory and tree, once someone has read it.
    pub index: OnceLock<Arc<ArchiveIndex>>,
}

/// Per artifact id, what has been built for this listing; counts what it builds.
#[derive(Default)]
pub struct Held {
    map: Mutex<HashMap<u64, Arc<HeldArtifact>>>,
    builds: AtomicU64,
}

impl Held {
    /// What is held for `a`, built on first use.
    pub fn of(&self, a: &Artifact) -> Arc<HeldArtifact> {
        let mut map = self.map.lock().unwrap();
        map.entry(a.id)
            .or_insert_with(|| {
                self.builds.fetch_add(1, Ordering::Relaxed);
                Arc::new(HeldArtifact {
                    xattrs: artifact_xattrs(a),
                    index: OnceLock::new(),
                })
            })
            .clone()
    }

    /// Holds `a`'s index, just asked of the data layer, for the life of this listing
    /// (counted as a build whether or not another caller's got there first).
    pub fn keep_index(&self, a: &Artifact, index: &Arc<ArchiveIndex>) {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let _ = self.of(a).index.set(index.clone());
    }

    /// How many artifacts' xattrs this listing has built and how many indexes it has asked
    /// the data layer for, so far.
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }
}

/// An artifact's API facts as `user.artifact.*` attributes.
fn artifact_xattrs(a: &Artifact) -> Xattrs {
    let mut out = Vec::with_capacity(8);
    let run = a.workflow_run.as_ref();
    out.push(("user.artifact.id".into(), a.id.to_string()));
    if let Some(d) = &a.digest {
        out.push(("user.artifact.digest".into(), d.clone()));
    }
    out.push(("user.artifact.run_id".into(), a.run_id().to_string()));
    if let Some(b) = run.and_then(|r| r.head_branch.clone()) {
        out.push(("user.artifact.head_branch".into(), b));
    }
    if let Some(s) = run.and_then(|r| r.head_sha.clone()) {
        out.push(("user.artifact.head_sha".into(), s));
    }
    if let Some(t) = &a.created_at {
        out.push(("user.artifact.created_at".into(), t.clone()));
    }
    if let Some(t) = &a.expires_at {
        out.push(("user.artifact.expires_at".into(), t.clone()));
    }
    out.push(("user.artifact.size".into(), a.size_in_bytes.to_string()));
    out.into()
}
