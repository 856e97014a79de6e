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
    /// run id → (artifact component name, artifact id), names unique within the run.
    pub runs: BTreeMap<u64, Vec<(String, u64)>>,
    /// name → newest artifact id with that name.
    pub latest: BTreeMap<String, u64>,
    /// encoded branch → name → newest artifact id on that branch.
    pub branches: BTreeMap<String, BTreeMap<String, u64>>,
    /// What has been built from this snapshot for answering from memory.
    pub held: Held,
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

        // Oldest first, so that the older artifact keeps the plain name.
        let mut runs: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
        let mut taken: HashMap<u64, HashSet<String>> = HashMap::new();
        for a in &artifacts {
            let names = taken.entry(a.run_id()).or_default();
            let name = unique_name(&artifact_component(&a.name), names);
            runs.entry(a.run_id()).or_default().push((name, a.id));
        }

        let newer = |a: &Artifact, b: &Artifact| {
            (parse_time(a.created_at.as_deref()), a.id)
                > (parse_time(b.created_at.as_deref()), b.id)
        };
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        let mut branches: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let get =
            |id: u64, arts: &Vec<Artifact>, by_id: &HashMap<u64, usize>| arts[by_id[&id]].clone();
        for (_, entries) in runs.iter() {
            for (name, id) in entries {
                let a = get(*id, &artifacts, &by_id);
                let slot = latest.entry(name.clone()).or_insert(*id);
                if newer(&a, &get(*slot, &artifacts, &by_id)) {
                    *slot = *id;
                }
                if let Some(branch) = a.head_branch().filter(|b| !b.is_empty()) {
                    let m = branches.entry(encode_branch(branch)).or_default();
                    let slot = m.entry(name.clone()).or_insert(*id);
                    if newer(&a, &get(*slot, &artifacts, &by_id)) {
                        *slot = *id;
                    }
                }
            }
        }
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
                head_branch: Some(branch.into()),
                ..Default::default()
            }),
        }
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
        assert_eq!(kids[0].1, RunChild::ArtifactDir(1));
        assert_eq!(kids[4].1, RunChild::RawFile(2));
    }
}
