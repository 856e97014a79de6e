//! `artifactfs man` and `artifactfs completions`: manual pages and shell completions made
//! from the command line's own clap definitions (clap_mangen, clap_complete), so they never
//! drift from `--help`, plus the sections no option list can say: the tree, the errors a
//! reader sees, the environment and the files. Part of the binary (it needs [`crate::Cli`]).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::Cli;

/// The tree under a mountpoint (docs/semantics.md, "The tree"), as the manual shows it.
const TREE: &str = "\
MOUNTPOINT/
  OWNER/                    one directory per owner named with --repo
    REPO/
      runs/
        RUN_ID/             one per workflow run with live artifacts
          NAME/             a zip artifact's entries, as files and directories
          NAME.zip          the same artifact's archive, byte for byte
          NAME              an artifact uploaded unzipped: its single file
      latest/
        NAME -> ../runs/RUN_ID/NAME         newest artifact of each name
      branches/
        BRANCH/             '/' in a branch name written %2F, '%' as %25
          NAME -> ../../runs/RUN_ID/NAME";

/// (errno, when a reader meets it)
const ERRORS: &[(&str, &str)] = &[
    (
        "ENOENT",
        "The artifact, run, repository or owner does not exist, has expired (410), or the \
         token cannot see it.",
    ),
    (
        "EACCES",
        "Bad credentials (401) or forbidden (403); reading an artifact without a token \
         (downloads need one even for public repositories).",
    ),
    (
        "EIO",
        "Rate limited past the wait budget, the network down or the server failing after \
         retries (the log says which); a corrupt archive, or bytes that fail their CRC-32 or \
         the archive's sha256: the read that completes the failed check and every later \
         read of that file, until one refetch verifies.",
    ),
    (
        "EROFS",
        "Any write: create, write, rename, mkdir, chmod; rm of a file inside an artifact; \
         every rm with --read-only. The unit of deletion is the artifact: rm NAME.zip, \
         rm NAME (unzipped) or rmdir NAME.",
    ),
    (
        "ENOTEMPTY",
        "rmdir of a run directory that still has artifacts.",
    ),
];

/// (variable, what it does)
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GH_TOKEN, GITHUB_TOKEN",
        "The token, in that order; without either, `gh auth token --hostname HOST` when gh is \
         installed. Sent only to the API origin, never to the blob host, a log or the cache. \
         None is fine for public repositories' listings.",
    ),
    (
        "GITHUB_API_URL",
        "The API origin (default https://api.github.com; GitHub Enterprise Server: \
         https://HOST/api/v3), as --api-url.",
    ),
    (
        "XDG_CACHE_HOME",
        "The default cache directory is $XDG_CACHE_HOME/artifactfs (~/.cache/artifactfs).",
    ),
    (
        "RUST_LOG",
        "Log filter (tracing's EnvFilter syntax), overriding -v.",
    ),
    (
        "XDG_RUNTIME_DIR",
        "Where a mount's status socket lives ($XDG_RUNTIME_DIR/artifactfs/), else /tmp/artifactfs-UID/.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "~/.cache/artifactfs/",
        "The disk cache (mode 0700): blob blocks, inflated entries, seek points, listings' \
         metadata. Bounded by --cache-size; one process at a time (a second mount or serve \
         needs its own --cache-dir); safe to delete while nothing is mounted.",
    ),
    (
        "~/.cache/artifactfs/artifactfs.log",
        "A background mount's log (capped in size).",
    ),
    (
        "$XDG_RUNTIME_DIR/artifactfs/MOUNTPOINT.sock",
        "A running mount's status socket (0600, in a 0700 directory; MOUNTPOINT escaped as \
         by systemd-escape --path), read by artifactfs status; removed on unmount.",
    ),
    (
        "/etc/fstab",
        "owner/repo /mnt/artifacts fuse.artifactfs ro,noauto,user,cache_size=10G 0 0 \
         mounts with mount(8) through mount.fuse3 or mount.artifactfs.",
    ),
    (
        "/usr/lib/systemd/user/artifactfs@.service",
        "A user unit template: the instance is the escaped mountpoint \
         (systemd-escape --path), its settings in ~/.config/artifactfs/INSTANCE.env.",
    ),
];

const EXAMPLES: &str = "\
artifactfs mount ~/a --repo octo-org/hello
ls ~/a/octo-org/hello/runs/
cat ~/a/octo-org/hello/latest/test-results/summary.txt
grep -r FAILED ~/a/octo-org/hello/runs/123456789/
rm ~/a/octo-org/hello/runs/123456789/logs.zip
artifactfs prefetch ~/a/octo-org/hello/latest/   # for offline use
artifactfs status         # what each mount is doing
artifactfs unmount ~/a
artifactfs demo           # no token, no network";

/// The main page: clap's sections, then ours.
pub fn main_page(out: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(Cli::command()).date(env!("CARGO_PKG_VERSION"));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    let mut r = Roff::new();
    r.control("SH", ["THE TREE"]);
    r.text([roman(
        "Each repository named with --repo appears as OWNER/REPO. Listings come from the \
         GitHub API and are trusted for --metadata-ttl seconds; only the bytes read cross \
         the network, once, and stay in the disk cache.",
    )]);
    preformatted(&mut r, TREE);
    r.control("SH", ["ERRORS"]);
    described(&mut r, ERRORS);
    r.control("SH", ["ENVIRONMENT"]);
    described(&mut r, ENVIRONMENT);
    r.control("SH", ["FILES"]);
    described(&mut r, FILES);
    r.control("SH", ["EXAMPLES"]);
    preformatted(&mut r, EXAMPLES);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "artifactfs-mount(1), artifactfs-serve(1), artifactfs-status(1), artifactfs-prefetch(1), artifactfs-demo(1), fusermount3(1), mount.fuse3(8), gh(1)",
    )]);
    out.write_all(r.render().as_bytes())?;
    man.render_version_section(out)
}

fn preformatted(r: &mut Roff, text: &str) {
    r.control("sp", [] as [&str; 0]);
    r.control("nf", [] as [&str; 0]);
    r.control("RS", ["4"]);
    for line in text.lines() {
        r.text([roman(line)]);
    }
    r.control("RE", [] as [&str; 0]);
    r.control("fi", [] as [&str; 0]);
}

fn described(r: &mut Roff, items: &[(&str, &str)]) {
    for (name, what) in items {
        r.control("TP", [] as [&str; 0]);
        r.text([bold(*name)]);
        r.text([roman(*what)]);
    }
}

/// Writes `artifactfs.1` and one `artifactfs-SUBCOMMAND.1` per subcommand into `dir`;
/// returns the file names.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = vec!["artifactfs.1".to_string()];
    let mut page = Vec::new();
    main_page(&mut page)?;
    std::fs::write(dir.join("artifactfs.1"), page)?;
    let mut cmd = Cli::command();
    cmd.build();
    // `help` is clap's own: its page would say nothing the others don't.
    let subs = cmd.get_subcommands();
    for sub in subs.filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("artifactfs-{}", sub.get_name());
        let mut page = Vec::new();
        Man::new(
            sub.clone()
                .name(name.clone())
                .bin_name(format!("artifactfs {}", sub.get_name())),
        )
        .date(env!("CARGO_PKG_VERSION"))
        .render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        written.push(format!("{name}.1"));
    }
    Ok(written)
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "artifactfs", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_page_text() -> String {
        let mut v = Vec::new();
        main_page(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn the_main_page_has_the_options_and_the_sections_clap_cannot_say() {
        let page = main_page_text();
        assert!(page.contains("\n.TH artifactfs 1 "), "{page}");
        // clap's sections, then ours, in man-pages(7) order.
        let sections: Vec<&str> = page.lines().filter(|l| l.starts_with(".SH ")).collect();
        assert_eq!(
            sections,
            [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH DESCRIPTION",
                ".SH OPTIONS",
                ".SH SUBCOMMANDS",
                ".SH \"THE TREE\"",
                ".SH ERRORS",
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
                ".SH VERSION",
            ]
        );
        for needle in [
            "ENOENT", "EACCES", "EIO", "EROFS", "GH_TOKEN", "latest/", "NAME.zip",
        ] {
            assert!(page.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn every_subcommand_gets_a_page_with_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pages(dir.path()).unwrap();
        for (page, wanted) in [("mount", true), ("serve", true), ("help", false)] {
            let name = format!("artifactfs-{page}.1");
            assert_eq!(files.contains(&name), wanted, "{name}: {files:?}");
        }
        let mount = std::fs::read_to_string(dir.path().join("artifactfs-mount.1")).unwrap();
        assert!(mount.contains("cache\\-size"), "{mount}");
        assert!(mount.contains("metadata\\-ttl"));
    }

    #[test]
    fn completions_know_the_subcommands_and_options() {
        let mut v = Vec::new();
        completions(clap_complete::Shell::Bash, &mut v);
        let bash = String::from_utf8(v).unwrap();
        for word in ["mount", "unmount", "demo", "--cache-size", "--repo"] {
            assert!(
                bash.contains(word),
                "{word} missing from the bash completion"
            );
        }
    }
}
