//! `artifactfs demo`: an in-process fake GitHub serving a sample repository, mounted like a
//! real one (or, with `--serve`, served over HTTP like `artifactfs serve`). No token, no
//! network; Ctrl-C unmounts.

use std::path::PathBuf;

use fake_github::{FakeConfig, FakeGitHub};

use crate::config::{CoreArgs, FuseArgs, RemoteArgs};
use crate::github::RepoRef;
use crate::mount;

/// `artifactfs demo`'s arguments: the shared ones, no repository (the demo serves its own).
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where to mount [default: a new directory under /tmp]
    pub mountpoint: Option<PathBuf>,
    /// Run only the demo's fake GitHub, in the foreground, and print its API URL and token
    /// (for `mount`, an fstab line or `serve` to use); Ctrl-C stops it
    #[arg(long, conflicts_with_all = ["mountpoint", "serve"])]
    pub github_only: bool,
    /// Serve the sample repository over HTTP instead of mounting it [default address:
    /// 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub serve: Option<String>,
    #[command(flatten)]
    pub core: CoreArgs,
    #[command(flatten)]
    pub fuse: FuseArgs,
}

/// Runs the demo with `args` (`-o` already folded in: see [`crate::config::apply_o_options`]).
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = FakeConfig::default();
    let token = config.tokens.keys().next().cloned();
    let gh = FakeGitHub::start(config);
    let info = fake_github::demo::populate(&gh);
    let repo = RepoRef::new(info.owner.clone(), info.repo.clone());
    if args.github_only {
        println!("GITHUB_API_URL={}", gh.api_url());
        println!("GH_TOKEN={}", token.as_deref().unwrap_or_default());
        println!("REPO={repo}");
        println!("# the demo's fake GitHub; Ctrl-C stops it");
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::runtime::Runtime::new()?.block_on(crate::startup::stop_requested());
        gh.shutdown();
        return Ok(());
    }

    if let Some(addr) = &args.serve {
        let addr = crate::serve::resolve_addr(addr)?;
        let tmp = tempfile::Builder::new()
            .prefix("artifactfs-demo-")
            .tempdir()?;
        let remote = RemoteArgs {
            repos: vec![repo.clone()],
            api_url: url::Url::parse(&gh.api_url())?,
        };
        let mut core = args
            .core
            .core_config(remote, true, || tmp.path().join("cache"));
        core.token = token;
        let start = crate::serve::paths::url_of(&[repo.owner, repo.name], true);
        let result = crate::serve::run_core(&core, addr, &start, false);
        gh.shutdown();
        return result;
    }
    let tmp = tempfile::Builder::new()
        .prefix("artifactfs-demo-")
        .tempdir()?;
    let mountpoint = match args.mountpoint {
        Some(m) => {
            std::fs::create_dir_all(&m)?;
            m
        }
        None => tmp.path().join("mnt"),
    };
    std::fs::create_dir_all(&mountpoint)?;
    mount::preflight(&mountpoint)?;
    let mountpoint = std::fs::canonicalize(&mountpoint)?;
    let remote = RemoteArgs {
        repos: vec![repo.clone()],
        api_url: url::Url::parse(&gh.api_url())?,
    };
    let mut core = args
        .core
        .core_config(remote, args.fuse.read_only, || tmp.path().join("cache"));
    core.token = token;
    let fuse = args.fuse.fuse_config(mountpoint.clone());
    let m = mountpoint.display().to_string();
    let base = format!("{m}/{}/{}", repo.owner, repo.name);
    let sample = info.interesting_paths.clone();
    let result = mount::run_mount(&core, &fuse, move || {
        println!("artifactfs demo: {repo} (served by a built-in fake GitHub) is mounted at {m}");
        println!();
        println!("Try, in another terminal:");
        println!("  ls {base}/runs/");
        println!("  ls -R {base}/latest/");
        for p in &sample {
            println!("  cat {m}/{p}");
        }
        println!(
            "  {base}/latest/dist/dist.tar.gz.d/dist/bin/hello   # runs from inside a tarball"
        );
        println!("  ls -l {base}/workflows/*/ {base}/pulls/7/ {base}/pulls/8/");
        println!("  ls {base}/logs/ && grep -rc Run {base}/logs/7100000102/   # the runs' logs");
        println!("  getfattr -d {base}/latest/*");
        println!("  getfattr -d {base}/runs/*              # user.run.*: workflow, branch, sha...");
        println!("  rm {base}/runs/RUN_ID/NAME.zip     # deletes that artifact");
        println!("  rmdir {base}/runs/RUN_ID/NAME       # the same, via the directory");
        println!();
        println!("Ctrl-C here unmounts.");
    });
    gh.shutdown();
    result
}
