//! The views against the fake GitHub, through `artifactfs serve` (the same core as a mount,
//! no FUSE needed): forks never reach `latest/` or `branches/`, a re-run's newest attempt
//! takes the plain name.

mod common;

use common::serve::{ServeBuilder, Server};
use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeArtifactSpec, FakeGitHub, FakeRunSpec};

const REPO: &str = "/octo-org/hello";

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add(name, data);
    z.finish()
}

fn build(run: u64, text: &str) -> FakeArtifactSpec {
    FakeArtifactSpec::zip(
        "octo-org",
        "hello",
        "build",
        run,
        zip_of("tool.sh", text.as_bytes()),
    )
}

fn serve(gh: &FakeGitHub) -> Server {
    ServeBuilder::new(gh, "octo-org/hello").start()
}

/// Where `path` (a view's link) redirects to.
fn target(s: &Server, path: &str) -> (u16, String) {
    let r = s.get(path);
    (
        r.status,
        r.header("location").unwrap_or_default().to_string(),
    )
}

#[test]
fn a_forks_pull_request_from_its_main_never_becomes_branches_main() {
    let gh = start_fake();
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 100));
    gh.add_artifact(build(100, "echo ours\n"));
    // Newer: a pull request from a fork whose branch is called main.
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 200).from_fork("stranger/hello"));
    gh.add_artifact(build(200, "echo theirs\n"));
    let s = serve(&gh);
    for view in ["branches/main/build", "latest/build"] {
        assert_eq!(
            target(&s, &format!("{REPO}/{view}")),
            (302, format!("{REPO}/runs/100/build")),
            "{view}"
        );
    }
    let ours = s.get(&format!("{REPO}/branches/main/build/tool.sh"));
    assert_eq!(ours.status, 302);
    assert_eq!(
        s.get(&format!("{REPO}/runs/100/build/tool.sh")).body,
        b"echo ours\n"
    );
    // The fork's build is under runs/, by its run id.
    assert_eq!(
        s.get(&format!("{REPO}/runs/200/build/tool.sh")).body,
        b"echo theirs\n"
    );
}

#[test]
fn a_re_runs_newest_attempt_takes_the_plain_name_and_latest() {
    let gh = start_fake();
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 300));
    gh.add_artifact(build(300, "attempt 1\n"));
    gh.rerun(300);
    gh.add_artifact(build(300, "attempt 2\n"));
    let s = serve(&gh);
    assert_eq!(
        s.get(&format!("{REPO}/runs/300/build/tool.sh")).body,
        b"attempt 2\n"
    );
    assert_eq!(
        s.get(&format!("{REPO}/runs/300/build%20(1)/tool.sh")).body,
        b"attempt 1\n"
    );
    assert_eq!(
        target(&s, &format!("{REPO}/latest/build")),
        (302, format!("{REPO}/runs/300/build"))
    );
}
