//! `artifactfs demo`: an in-process fake GitHub serving a sample repository, mounted like a
//! real one. No token, no network; Ctrl-C unmounts.

use std::path::PathBuf;
use std::time::Duration;

use fake_github::{FakeConfig, FakeGitHub};

use crate::fuse::Owner;
use crate::github::RepoRef;
use crate::mount::{self, MountOptions};

pub struct DemoArgs {
    pub mountpoint: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub cache_size: u64,
    pub cache_min_free: u64,
    pub metadata_ttl: Duration,
    pub read_only: bool,
    pub allow_other: bool,
    pub owner: Owner,
    pub fuse_options: Vec<String>,
    pub request_timeout: Option<Duration>,
    pub max_rate_limit_wait: Duration,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = FakeConfig::default();
    let token = config.tokens.keys().next().cloned();
    let gh = FakeGitHub::start(config);
    let info = fake_github::demo::populate(&gh);
    let repo = RepoRef::new(info.owner.clone(), info.repo.clone());

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
    let cache_dir = args.cache_dir.unwrap_or_else(|| tmp.path().join("cache"));

    let opts = MountOptions {
        mountpoint: mountpoint.clone(),
        repos: vec![repo.clone()],
        api_url: url::Url::parse(&gh.api_url())?,
        token,
        cache_dir,
        cache_size: args.cache_size,
        cache_min_free: args.cache_min_free,
        log_budget: 0,
        metadata_ttl: args.metadata_ttl,
        read_only: args.read_only,
        allow_other: args.allow_other,
        foreground: true,
        owner: args.owner,
        fuse_options: args.fuse_options,
        request_timeout: args.request_timeout,
        max_rate_limit_wait: args.max_rate_limit_wait,
    };
    let m = mountpoint.display().to_string();
    let base = format!("{m}/{}/{}", repo.owner, repo.name);
    let sample = info.interesting_paths.clone();
    let result = mount::run_mount(opts, move || {
        println!("artifactfs demo: {repo} (served by a built-in fake GitHub) is mounted at {m}");
        println!();
        println!("Try, in another terminal:");
        println!("  ls {base}/runs/");
        println!("  ls -R {base}/latest/");
        for p in &sample {
            println!("  cat {m}/{p}");
        }
        println!("  getfattr -d {base}/latest/*");
        println!("  rm {base}/runs/RUN_ID/NAME.zip     # deletes that artifact");
        println!("  rmdir {base}/runs/RUN_ID/NAME       # the same, via the directory");
        println!();
        println!("Ctrl-C here unmounts.");
    });
    gh.shutdown();
    result
}
