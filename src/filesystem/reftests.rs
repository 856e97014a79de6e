//! A reference model of the tree's views (after mountpoint-s3's reftests): random sets of
//! artifacts (names, runs, branches, times, zip or raw) and random deletions, and after each
//! step `runs/`, every run directory, `latest/` and `branches/` (names and link targets) must
//! be what a few lines computing them from the artifact list say.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::names::encode_branch;
use super::tests::{core_for, names, resolve, sample_zip};
use super::*;
use crate::github::ArtifactKind;
use crate::github::memory_remote::MemoryRemote;

#[derive(Clone, Debug)]
struct Spec {
    name: &'static str,
    run: u64,
    branch: &'static str,
    zip: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec!["build", "logs", "test-results", "coverage"]),
        1u64..6,
        prop::sample::select(vec!["main", "feature/x", "fix%1", ""]),
        any::<bool>(),
    )
        .prop_map(|(name, run, branch, zip)| Spec {
            name,
            run,
            branch,
            zip,
        })
}

/// What the views must show for the live artifacts `arts` (id → spec; ids grow with time).
struct Model {
    runs: BTreeMap<u64, BTreeSet<String>>,
    latest: BTreeMap<String, String>,
    branches: BTreeMap<String, BTreeMap<String, String>>,
}

fn model(arts: &BTreeMap<u64, Spec>) -> Model {
    let mut runs: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut latest = BTreeMap::new();
    let mut branches: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    // Ids in creation order: a later one is newer.
    for s in arts.values() {
        let names = runs.entry(s.run).or_default();
        names.insert(s.name.to_string());
        if s.zip {
            names.insert(format!("{}.zip", s.name));
        }
        latest.insert(s.name.to_string(), format!("../runs/{}/{}", s.run, s.name));
        if !s.branch.is_empty() {
            branches.entry(encode_branch(s.branch)).or_default().insert(
                s.name.to_string(),
                format!("../../runs/{}/{}", s.run, s.name),
            );
        }
    }
    Model {
        runs,
        latest,
        branches,
    }
}

async fn links(fs: &ArtifactFs, dir: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in names(fs, dir).await {
        let a = resolve(fs, &format!("{dir}/{n}")).await.unwrap();
        out.insert(n, fs.readlink(a.ino).await.unwrap());
    }
    out
}

async fn check(fs: &ArtifactFs, arts: &BTreeMap<u64, Spec>) -> Result<(), TestCaseError> {
    let m = model(arts);
    let runs: Vec<String> = m.runs.keys().map(u64::to_string).collect();
    prop_assert_eq!(names(fs, "octo/hello/runs").await, runs);
    for (run, want) in &m.runs {
        let got: BTreeSet<String> = names(fs, &format!("octo/hello/runs/{run}"))
            .await
            .into_iter()
            .collect();
        prop_assert_eq!(&got, want, "run {}", run);
    }
    prop_assert_eq!(links(fs, "octo/hello/latest").await, m.latest);
    let branches: Vec<String> = m.branches.keys().cloned().collect();
    prop_assert_eq!(names(fs, "octo/hello/branches").await, branches);
    for (b, want) in &m.branches {
        prop_assert_eq!(&links(fs, &format!("octo/hello/branches/{b}")).await, want);
    }
    Ok(())
}

async fn run_case(
    specs: Vec<Spec>,
    deletes: Vec<prop::sample::Index>,
) -> Result<(), TestCaseError> {
    let remote = Arc::new(MemoryRemote::default());
    let mut arts = BTreeMap::new();
    // One artifact of a name per run, as GitHub allows.
    let mut seen = BTreeSet::new();
    for s in specs {
        if !seen.insert((s.run, s.name)) {
            continue;
        }
        let id = 100 + arts.len() as u64;
        let (body, kind) = if s.zip {
            (sample_zip(), ArtifactKind::Zip)
        } else {
            (b"raw\n".to_vec(), ArtifactKind::Raw { file_name: None })
        };
        let day = 1 + arts.len() as u32;
        remote.add(id, s.name, s.run, s.branch, day, body, kind);
        arts.insert(id, s);
    }
    let (fs, _dir) = core_for(remote, Duration::from_secs(3600), false);
    check(&fs, &arts).await?;
    for d in deletes {
        if arts.is_empty() {
            break;
        }
        let id = *arts.keys().nth(d.index(arts.len())).unwrap();
        let s = arts.remove(&id).unwrap();
        let run = resolve(&fs, &format!("octo/hello/runs/{}", s.run))
            .await
            .unwrap();
        if s.zip {
            fs.unlink(run.ino, &format!("{}.zip", s.name))
                .await
                .unwrap();
        } else {
            fs.unlink(run.ino, s.name).await.unwrap();
        }
        check(&fs, &arts).await?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_views_match_a_reference_model_through_deletions(
        specs in prop::collection::vec(spec(), 1..14),
        deletes in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(specs, deletes))?;
    }
}
