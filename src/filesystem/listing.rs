//! A repository's artifact listing and the views derived from it: runs, `latest/`,
//! `branches/`. A listing is an immutable snapshot (but for what it holds, see [`super::held`]);
//! a refresh or a deletion replaces it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Instant, SystemTime};

use crate::github::{Artifact, ArtifactKind};

use super::held::{Held, HeldArtifact};
use super::names::{artifact_component, encode_branch, unique_name};

/// Parses GitHub's RFC 3339 timestamps (`2020-01-10T14:59:22Z`).
pub fn parse_time(s: Option<&str>) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s?, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = t.unix_timestamp();
    if secs >= 0 {
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
    } else {
        None
    }
}

/// Where an artifact shows up inside its run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunChild {
    ArtifactDir(u64),
    ArchiveFile(u64),
    RawFile(u64),
}

pub struct Listing {
    pub fetched_at: Instant,
    /// Live (not expired) artifacts, as the server listed them.
    pub artifacts: Vec<Artifact>,
    by_id: HashMap<u64, usize>,
    /// run id → (artifact component name, artifact id), names unique within the run: the
    /// newest artifact of a name (a re-run's last attempt) has the plain name, older ones
    /// `NAME (1)`, `NAME (2)`... counting back from the newest.
    pub runs: BTreeMap<u64, Vec<(String, u64)>>,
    /// name → newest artifact id with that name, among runs of the repository itself.
    pub latest: BTreeMap<String, u64>,
    /// encoded branch → name → newest artifact id on that branch, among runs of the
    /// repository itself.
    pub branches: BTreeMap<String, BTreeMap<String, u64>>,
    /// What has been built from this snapshot for answering from memory.
    pub held: Held,
}

/// What "newest" compares: `created_at`, then the higher run id, then the higher artifact id.
pub fn newness(a: &Artifact) -> (Option<SystemTime>, u64, u64) {
    (parse_time(a.created_at.as_deref()), a.run_id(), a.id)
}

/// Whether the artifact's run is of the repository itself: its head repository is the
/// repository (`head_repository_id == repository_id`), not a fork whose pull request ran CI
/// here. Only such runs reach the shared views (`latest/`, `branches/`, `workflows/`): a fork
/// can name its branch `main`. An artifact that does not say is not counted.
pub fn own_run(a: &Artifact) -> bool {
    a.workflow_run
        .as_ref()
        .is_some_and(|r| r.repository_id.is_some() && r.head_repository_id == r.repository_id)
}

/// The newest of `artifacts` of each name (the artifact's name as a path component) → its id.
pub fn newest_by_name<'a>(
    artifacts: impl IntoIterator<Item = &'a Artifact>,
) -> BTreeMap<String, u64> {
    let mut best: BTreeMap<String, &Artifact> = BTreeMap::new();
    for a in artifacts {
        let slot = best.entry(artifact_component(&a.name)).or_insert(a);
        if newness(a) > newness(slot) {
            *slot = a;
        }
    }
    best.into_iter().map(|(n, a)| (n, a.id)).collect()
}

impl Listing {
    pub fn build(all: Vec<Artifact>, fetched_at: Instant) -> Listing {
        let mut artifacts: Vec<Artifact> = all.into_iter().filter(|a| !a.expired).collect();
        artifacts.sort_by_key(|a| a.id);
        artifacts.dedup_by_key(|a| a.id);
        let by_id = artifacts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect();

        // Newest first, so that the newest artifact of a name (a re-run's last attempt)
        // takes the plain name.
        let mut newest_first: Vec<&Artifact> = artifacts.iter().collect();
        newest_first.sort_by_key(|a| std::cmp::Reverse(newness(a)));
        let mut runs: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
        let mut taken: HashMap<u64, HashSet<String>> = HashMap::new();
        for a in &newest_first {
            let names = taken.entry(a.run_id()).or_default();
            let name = unique_name(&artifact_component(&a.name), names);
            runs.entry(a.run_id()).or_default().push((name, a.id));
        }

        let own: Vec<&Artifact> = artifacts.iter().filter(|a| own_run(a)).collect();
        let latest = newest_by_name(own.iter().copied());
        let mut on_branch: BTreeMap<String, Vec<&Artifact>> = BTreeMap::new();
        for a in &own {
            if let Some(branch) = a.head_branch().filter(|b| !b.is_empty()) {
                on_branch.entry(encode_branch(branch)).or_default().push(a);
            }
        }
        let branches = on_branch
            .into_iter()
            .map(|(b, arts)| (b, newest_by_name(arts)))
            .collect();
        Listing {
            fetched_at,
            artifacts,
            by_id,
            runs,
            latest,
            branches,
            held: Held::default(),
        }
    }

    pub fn artifact(&self, id: u64) -> Option<&Artifact> {
        self.by_id.get(&id).map(|&i| &self.artifacts[i])
    }

    /// What this snapshot holds for artifact `id` (built on first use).
    pub fn held(&self, id: u64) -> Option<std::sync::Arc<HeldArtifact>> {
        Some(self.held.of(self.artifact(id)?))
    }

    /// The same listing without artifact `id` (after a successful delete).
    pub fn without(&self, id: u64) -> Listing {
        let rest = self
            .artifacts
            .iter()
            .filter(|a| a.id != id)
            .cloned()
            .collect();
        Listing::build(rest, self.fetched_at)
    }

    /// The name artifact `id` has inside its run directory.
    pub fn run_name(&self, id: u64) -> Option<(u64, &str)> {
        let a = self.artifact(id)?;
        let run = a.run_id();
        self.runs
            .get(&run)?
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(n, _)| (run, n.as_str()))
    }

    /// Newest `created_at` of the run's artifacts.
    pub fn run_mtime(&self, run: u64) -> Option<SystemTime> {
        self.runs
            .get(&run)?
            .iter()
            .filter_map(|(_, id)| parse_time(self.artifact(*id)?.created_at.as_deref()))
            .max()
    }

    /// Newest `created_at` of all artifacts.
    pub fn newest(&self) -> Option<SystemTime> {
        self.artifacts
            .iter()
            .filter_map(|a| parse_time(a.created_at.as_deref()))
            .max()
    }

    /// The children of a run directory, given each artifact's kind (artifacts whose kind is
    /// unknown are left out). Zip: `NAME/` and `NAME.zip`; raw: `NAME`.
    pub fn run_children(
        &self,
        run: u64,
        kind_of: impl Fn(u64) -> Option<ArtifactKind>,
    ) -> Vec<(String, RunChild)> {
        let Some(entries) = self.runs.get(&run) else {
            return Vec::new();
        };
        let mut taken: HashSet<String> = entries.iter().map(|(n, _)| n.clone()).collect();
        let mut out = Vec::new();
        let mut zips = Vec::new();
        for (name, id) in entries {
            match kind_of(*id) {
                Some(ArtifactKind::Zip) => {
                    out.push((name.clone(), RunChild::ArtifactDir(*id)));
                    zips.push((name, *id));
                }
                Some(ArtifactKind::Raw { .. }) => out.push((name.clone(), RunChild::RawFile(*id))),
                None => {}
            }
        }
        for (name, id) in zips {
            let zip_name = unique_name(&format!("{name}.zip"), &mut taken);
            out.push((zip_name, RunChild::ArchiveFile(id)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::WorkflowRun;

    pub fn art(id: u64, name: &str, run: u64, branch: &str, created: &str) -> Artifact {
        Artifact {
            id,
            node_id: None,
            name: name.into(),
            size_in_bytes: 10,
            url: None,
            archive_download_url: None,
            expired: false,
            created_at: Some(created.into()),
            expires_at: None,
            updated_at: None,
            digest: None,
            workflow_run: Some(WorkflowRun {
                id: Some(run),
                repository_id: Some(1),
                head_repository_id: Some(1),
                head_branch: Some(branch.into()),
                ..Default::default()
            }),
        }
    }

    fn fork(mut a: Artifact) -> Artifact {
        a.workflow_run.as_mut().unwrap().head_repository_id = Some(2);
        a
    }

    #[test]
    fn a_fork_never_reaches_latest_or_branches() {
        let l = Listing::build(
            vec![
                art(1, "build", 1, "main", "2024-01-01T00:00:00Z"),
                // A fork's pull request whose branch is called main, newer.
                fork(art(2, "build", 2, "main", "2024-01-02T00:00:00Z")),
                fork(art(3, "only-fork", 2, "main", "2024-01-02T00:00:00Z")),
            ],
            Instant::now(),
        );
        assert_eq!(l.latest.get("build"), Some(&1));
        assert_eq!(l.branches["main"].get("build"), Some(&1));
        assert_eq!(l.latest.get("only-fork"), None);
        assert_eq!(l.branches["main"].get("only-fork"), None);
        // The fork's run is still listed under runs/.
        assert_eq!(l.runs[&2].len(), 2);
        // An artifact that does not say whose run it is does not count either.
        let mut unknown = art(4, "x", 3, "main", "2024-01-03T00:00:00Z");
        unknown.workflow_run.as_mut().unwrap().repository_id = None;
        unknown.workflow_run.as_mut().unwrap().head_repository_id = None;
        let l = Listing::build(vec![unknown], Instant::now());
        assert!(l.latest.is_empty() && l.branches.is_empty());
    }

    #[test]
    fn a_re_runs_newest_attempt_takes_the_plain_name_and_latest() {
        let l = Listing::build(
            vec![
                // Attempt 1 and 2 of run 5 (the higher id is the newer attempt here, but
                // created_at decides).
                art(10, "build", 5, "main", "2024-01-02T00:00:00Z"),
                art(9, "build", 5, "main", "2024-01-03T00:00:00Z"),
                art(11, "build", 5, "main", "2024-01-01T00:00:00Z"),
            ],
            Instant::now(),
        );
        assert_eq!(l.run_name(9), Some((5, "build")));
        assert_eq!(l.run_name(10), Some((5, "build (1)")));
        assert_eq!(l.run_name(11), Some((5, "build (2)")));
        assert_eq!(l.latest.get("build"), Some(&9));
        assert_eq!(
            l.latest.len(),
            1,
            "latest/ is by artifact name: {:?}",
            l.latest
        );
        // Ties on created_at: the higher run id, then the higher artifact id.
        let t = "2024-01-01T00:00:00Z";
        let l = Listing::build(
            vec![art(20, "a", 7, "main", t), art(21, "a", 6, "main", t)],
            Instant::now(),
        );
        assert_eq!(l.latest.get("a"), Some(&20));
        let l = Listing::build(
            vec![art(20, "a", 7, "main", t), art(21, "a", 7, "main", t)],
            Instant::now(),
        );
        assert_eq!(l.latest.get("a"), Some(&21));
        assert_eq!(l.run_name(21), Some((7, "a")));
        assert_eq!(l.run_name(20), Some((7, "a (1)")));
    }

    #[test]
    fn views_pick_the_newest() {
        let mut expired = art(4, "logs", 3, "main", "2024-01-04T00:00:00Z");
        expired.expired = true;
        let l = Listing::build(
            vec![
                art(1, "logs", 1, "main", "2024-01-01T00:00:00Z"),
                art(2, "logs", 2, "feature/x", "2024-01-02T00:00:00Z"),
                art(3, "bin", 2, "feature/x", "2024-01-03T00:00:00Z"),
                expired,
            ],
            Instant::now(),
        );
        assert_eq!(l.latest.get("logs"), Some(&2));
        assert_eq!(l.branches["main"]["logs"], 1);
        assert_eq!(l.branches["feature%2Fx"]["logs"], 2);
        assert!(l.artifact(4).is_none(), "expired artifacts are hidden");
        assert_eq!(l.runs.len(), 2);
        assert_eq!(l.run_mtime(2), parse_time(Some("2024-01-03T00:00:00Z")));
        let l2 = l.without(2);
        assert_eq!(l2.latest.get("logs"), Some(&1));
    }

    #[test]
    fn run_children_by_kind() {
        let l = Listing::build(
            vec![
                art(1, "logs", 1, "main", "2024-01-01T00:00:00Z"),
                art(2, "notes", 1, "main", "2024-01-01T00:00:00Z"),
                art(3, "logs", 1, "main", "2024-01-01T00:00:00Z"),
            ],
            Instant::now(),
        );
        let kids = l.run_children(1, |id| {
            Some(if id == 2 {
                ArtifactKind::Raw { file_name: None }
            } else {
                ArtifactKind::Zip
            })
        });
        let names: Vec<&str> = kids.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["logs", "logs (1)", "logs (1).zip", "logs.zip", "notes"]
        );
        // Same created_at: the higher artifact id is the newer one and has the plain name.
        assert_eq!(kids[0].1, RunChild::ArtifactDir(3));
        assert_eq!(kids[4].1, RunChild::RawFile(2));
    }
}
