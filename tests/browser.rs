//! A real browser on `artifactfs serve`: headless Chromium opens an HTML report artifact
//! whose script `fetch()`es the JSON next to it and writes the results into the page (what
//! Chromium refuses on `file://`); the DOM read after the script ran holds them. Chromium
//! missing is a failure, never a skip (`scripts/install-deps.sh` installs it).

mod common;

use common::serve::dump_dom;
use common::*;
use fake_github::FakeArtifactSpec;
use fake_github::demo::html_report;

#[test]
fn a_report_that_fetches_its_data_renders_in_chromium() {
    common::serve::chromium();
    let gh = start_fake();
    gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "html-report", 7, html_report(7, 3))
            .branch("main"),
    );
    let s = Daemon::new(&gh, "octo-org/hello").arg("-v").serve();
    // The page itself holds no results: only its script, from the JSON, can put them there.
    let index = s.get("/octo-org/hello/runs/7/html-report/");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("Loading results"));
    assert!(!index.text().contains("5 passed"));

    let profile = tempfile::tempdir().unwrap();
    // Through latest/ (302) and the folder (index.html), as a person would open it.
    let dom = dump_dom(
        &s.url("/octo-org/hello/latest/html-report/"),
        profile.path(),
    );
    assert!(
        dom.contains("<p id=\"summary\">5 passed, 3 failed (run 7)</p>"),
        "the script's summary is not in the DOM:\n{dom}"
    );
    assert!(
        dom.contains("<td class=\"name\">login works</td><td class=\"failed\">failed</td>"),
        "{dom}"
    );
    assert!(
        dom.contains(
            "<td class=\"name\">uploads resume after a reset</td><td class=\"passed\">passed</td>"
        ),
        "{dom}"
    );
    // The stylesheet and the script were loaded from the artifact too (the script only runs
    // if served as JavaScript: the server sends nosniff).
    let log = s.log_text();
    for file in ["assets/report.css", "assets/report.js", "data/results.json"] {
        let line = format!("GET /octo-org/hello/runs/7/html-report/{file}: 200");
        assert!(log.contains(&line), "{line} not in the log:\n{log}");
    }

    // A listing renders as a table of the artifact's files.
    let dom = dump_dom(
        &s.url("/octo-org/hello/runs/7/html-report/?list"),
        profile.path(),
    );
    for name in ["index.html", "assets/", "data/"] {
        assert!(dom.contains(&format!(">{name}</a>")), "{name}:\n{dom}");
    }
}
