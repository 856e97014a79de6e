//! The `artifactfs` command line: `mount`, `unmount`, `demo`, `serve`, `status`,
//! `prefetch`, `man`, `completions`. The options are declared in [`artifactfs::config`];
//! fstab-style invocations are rewritten by [`artifactfs::fstab`].

mod manual;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "fuse")]
use artifactfs::demo::{self, DemoArgs};
#[cfg(feature = "fuse")]
use artifactfs::fstab::fstab_args;
#[cfg(feature = "fuse")]
use artifactfs::mount::{self, MountArgs};
use artifactfs::prefetch::PrefetchArgs;
use artifactfs::serve::{self, ServeArgs};
use artifactfs::status::command::StatusArgs;

#[derive(Parser, Debug)]
#[command(
    name = "artifactfs",
    version,
    about = "Mount GitHub Actions artifacts: browse with ls, read with cat, delete with rm"
)]
#[cfg_attr(
    not(feature = "fuse"),
    command(after_help = WITHOUT_FUSE)
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// What `--help` says in a build without the `fuse` feature.
#[cfg(not(feature = "fuse"))]
const WITHOUT_FUSE: &str = "This artifactfs was built without FUSE (cargo feature `fuse`): \
    `mount`, `unmount` and `demo` are absent. `artifactfs serve --webdav` serves the same tree \
    as a drive for Finder, Windows Explorer, davfs2 or rclone (docs/serve.md).";

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Mount the artifacts of one or more repositories
    #[cfg(feature = "fuse")]
    Mount(MountArgs),
    /// Unmount a mounted artifactfs
    #[cfg(feature = "fuse")]
    Unmount { mountpoint: PathBuf },
    #[cfg(feature = "fuse")]
    /// Mount a built-in sample repository served by an in-process fake GitHub (no token, no network)
    #[command(mut_arg("cache_dir", |a| a.help(
        "Disk cache directory [default: a new temporary directory, removed when the demo ends]"
    )))]
    Demo(DemoArgs),
    /// Print the manual page (try `artifactfs man | man -l -`), or write every page to a directory
    Man {
        /// Write artifactfs.1 and an artifactfs-SUBCOMMAND.1 per subcommand into DIR instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the completion script for a shell (e.g. `artifactfs completions bash`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Serve the same tree over HTTP for a browser (foreground; Ctrl-C stops)
    Serve(ServeArgs),
    /// What each running mount is doing: repos, cache, hits and misses, bytes fetched,
    /// requests in flight, the GitHub rate limit, the last errors
    Status(StatusArgs),
    /// Fill the cache for offline use: whole artifacts, a run, latest/, a branch or a repo
    Prefetch(PrefetchArgs),
}

/// Logs to stderr; a background mount logs to its capped file in the cache directory. The
/// last warnings and errors are also kept for `artifactfs status`.
fn init_logging(verbose: u8, log: Option<artifactfs::logfile::CappedLog>) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::prelude::*;
    // fuser warns "Unmount failed" when its session ends after the user unmounted (`umount`,
    // `fusermount3 -u`): not an error (fuser's comment says so); a failed unmount of ours is
    // logged by `mount::session::stop`.
    let default = match verbose {
        0 => "warn,fuser::mnt=error",
        1 => "info,artifactfs=info,fuser::mnt=error",
        _ => "debug,hyper=info,reqwest=info,h2=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = match log {
        Some(file) => fmt.with_writer(BoxMakeWriter::new(file)).with_ansi(false),
        None => fmt.with_writer(BoxMakeWriter::new(std::io::stderr)),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(artifactfs::stats::warnings::layer())
        .try_init();
}

fn main() -> ExitCode {
    #[cfg(feature = "fuse")]
    let cli = Cli::parse_from(fstab_args(std::env::args_os().collect()));
    #[cfg(not(feature = "fuse"))]
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artifactfs: {e:#}");
            #[cfg(feature = "fuse")]
            if mount::is_daemon_child() {
                // The waiting parent prints our last stdout line (with its own prefix).
                println!("{e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        #[cfg(feature = "fuse")]
        Cmd::Mount(args) => {
            let mut cfg = args.into_config()?;
            let log = mount::background_log(&mut cfg.core);
            init_logging(cfg.verbose, log);
            mount::mount(cfg)
        }
        #[cfg(feature = "fuse")]
        Cmd::Unmount { mountpoint } => mount::unmount(&mountpoint),
        #[cfg(feature = "fuse")]
        Cmd::Demo(mut args) => {
            artifactfs::config::apply_o_options(&mut args.core, &mut args.fuse)
                .map_err(anyhow::Error::msg)?;
            init_logging(args.core.verbose, None);
            demo::run(args)
        }
        Cmd::Man { dir: None } => Ok(manual::main_page(&mut std::io::stdout().lock())?),
        Cmd::Man { dir: Some(dir) } => {
            for page in manual::write_pages(&dir)? {
                println!("{}", dir.join(page).display());
            }
            Ok(())
        }
        Cmd::Completions { shell } => {
            manual::completions(shell, &mut std::io::stdout().lock());
            Ok(())
        }
        Cmd::Serve(args) => {
            init_logging(args.core.verbose, None);
            serve::run(args)
        }
        Cmd::Status(args) => artifactfs::status::command::run(args),
        Cmd::Prefetch(args) => artifactfs::prefetch::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "fuse")]
    use artifactfs::config::apply_o_options;
    #[cfg(feature = "fuse")]
    use artifactfs::github::RepoRef;

    #[cfg(feature = "fuse")]
    fn args(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(|s| (*s).into()).collect()
    }

    #[cfg(feature = "fuse")]
    #[test]
    fn o_options_map_to_flags() {
        let cli = Cli::parse_from(fstab_args(args(&[
            "artifactfs",
            "o/r",
            "/mnt/a",
            "-o",
            "rw,noauto,ro,allow_other,uid=1000,gid=100,cache_size=1G,dir_cache_time=5,nosuid,default_permissions,repo=o/s,foreground,x-systemd.automount",
        ])));
        let Cmd::Mount(mut m) = cli.command else {
            panic!("not a mount");
        };
        assert_eq!(m.remote.repos, vec![RepoRef::new("o", "r")]);
        let unparsed = m.clone();
        let o = apply_o_options(&mut m.core, &mut m.fuse).unwrap();
        assert!(m.fuse.read_only && m.fuse.allow_other);
        assert_eq!((m.fuse.uid, m.fuse.gid), (Some(1000), Some(100)));
        assert_eq!(m.core.cache_size, 1 << 30);
        assert_eq!(m.core.metadata_ttl, 5);
        assert_eq!(m.fuse.options, vec!["nosuid", "default_permissions"]);
        assert_eq!(o.repos, vec![RepoRef::new("o", "s")]);
        assert!(o.foreground);
        // The same, resolved.
        let cfg = unparsed.into_config().unwrap();
        assert_eq!(
            cfg.core.repos,
            vec![RepoRef::new("o", "r"), RepoRef::new("o", "s")]
        );
        assert!(cfg.foreground && cfg.core.read_only && cfg.fuse.allow_other);
        assert_eq!((cfg.fuse.owner.uid, cfg.fuse.owner.gid), (1000, 100));
        assert_eq!(cfg.core.cache_limits.size, 1 << 30);
        assert_eq!(cfg.core.metadata_ttl, std::time::Duration::from_secs(5));
        assert_eq!(cfg.fuse.options, vec!["nosuid", "default_permissions"]);
        let mut bad = m.clone();
        bad.fuse.options = vec!["uid=x".into()];
        assert!(apply_o_options(&mut bad.core, &mut bad.fuse).is_err());
    }

    #[cfg(feature = "fuse")]
    #[test]
    fn demo_help_shows_the_cache_default_demo_uses() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let demo = cmd.find_subcommand_mut("demo").unwrap();
        let help = demo.render_help().to_string();
        assert!(help.contains("temporary directory"), "{help}");
        assert!(!help.contains("XDG_CACHE_HOME"), "{help}");
        let mut cmd = Cli::command();
        let mount = cmd.find_subcommand_mut("mount").unwrap();
        assert!(mount.render_help().to_string().contains("XDG_CACHE_HOME"));
    }

    #[cfg(feature = "fuse")]
    #[test]
    fn the_user_unit_runs_a_foreground_mount_caching_under_xdg_per_instance_and_unmounts_on_stop() {
        use clap::CommandFactory;
        let unit = include_str!("../packaging/artifactfs@.service");
        let line = |key: &str| {
            let l = unit.lines().find_map(|l| l.strip_prefix(key));
            l.unwrap_or_else(|| panic!("no {key}")).to_string()
        };
        // What systemd runs for artifactfs@home-u-a.service (%f: /home/u/a; %C: the user's
        // XDG_CACHE_HOME; $ARTIFACTFS_OPTIONS from the instance's environment file).
        let start = line("ExecStart=")
            .replace("%f", "/home/u/a")
            .replace("%i", "home-u-a")
            .replace("%C", "/home/u/.cache")
            .replace("$ARTIFACTFS_OPTIONS", "--cache-size 2G");
        let argv: Vec<&str> = start.split_whitespace().collect();
        assert_eq!(argv[0], "/usr/bin/artifactfs");
        let cli = Cli::try_parse_from(argv.iter().chain(&["--repo", "o/r"])).unwrap();
        let Cmd::Mount(m) = cli.command else {
            panic!("not a mount: {start}");
        };
        assert_eq!(m.mountpoint, PathBuf::from("/home/u/a"));
        assert!(m.foreground, "systemd supervises the process: {start}");
        assert_eq!(
            m.core.cache_dir,
            Some(PathBuf::from("/home/u/.cache/artifactfs@home-u-a")),
            "one cache directory per instance (one process per directory)"
        );
        assert_eq!(m.core.cache_size, 2 << 30);
        assert_eq!(line("ExecStop="), "/usr/bin/artifactfs unmount %f");
        assert_eq!(line("EnvironmentFile="), "%E/artifactfs/%i.env");
        // The repositories come from that file.
        let cmd = Cli::command();
        let mount = cmd.find_subcommand("mount").unwrap();
        let repo = mount
            .get_arguments()
            .find(|a| a.get_id() == "repos")
            .unwrap();
        assert_eq!(
            repo.get_env(),
            Some(std::ffi::OsStr::new("ARTIFACTFS_REPO"))
        );
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Without FUSE there is no `mount` to call, and `--help` says why.
    #[cfg(not(feature = "fuse"))]
    #[test]
    fn a_build_without_fuse_says_what_it_lacks() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        for absent in ["mount", "unmount", "demo"] {
            assert!(cmd.find_subcommand(absent).is_none(), "{absent}");
        }
        for present in ["serve", "status", "prefetch"] {
            assert!(cmd.find_subcommand(present).is_some(), "{present}");
        }
        let help = cmd.render_help().to_string();
        assert!(help.contains("built without FUSE"), "{help}");
        let err = Cli::try_parse_from(["artifactfs", "mount", "/mnt/a"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidSubcommand);
    }
}
