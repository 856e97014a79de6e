//! `fake-github`: the fake GitHub API + blob host as a standalone server, for demos,
//! benchmarks and poking at with curl or `gh`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_github::{FakeConfig, FakeGitHub, Faults, TokenAccess};

#[derive(Parser, Debug)]
#[command(version, about = "A fake GitHub Actions artifacts API and blob host")]
struct Args {
    /// Address of the API listener.
    #[arg(long, default_value = "127.0.0.1:0")]
    api_addr: SocketAddr,
    /// Address of the blob host the downloads redirect to.
    #[arg(long, default_value = "127.0.0.1:0")]
    blob_addr: SocketAddr,
    /// Serve the built-in demo repository octo-demo/hello-artifacts.
    #[arg(long)]
    demo: bool,
    /// Serve the benchmark data set (owner `bench`, repos `data`, `find` and `tree`; see
    /// src/bench.rs); prints its description as JSON on the first line of stdout.
    #[arg(long)]
    bench: bool,
    /// Serve only one big artifact for the benchmarks (`bench/data`, run 906, `huge`: a zip
    /// whose one stored entry is this many MiB; see src/bench.rs); prints its description
    /// as JSON on the first line of stdout.
    #[arg(long, value_name = "MIB")]
    bench_huge_mib: Option<u64>,
    /// Accepted read-write tokens (default: test-token).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Accepted read-only tokens.
    #[arg(long = "read-only-token")]
    read_only_tokens: Vec<String>,
    /// Serve the API under this path prefix (GHES: /api/v3).
    #[arg(long)]
    prefix: Option<String>,
    /// Lifetime of signed blob URLs, in seconds.
    #[arg(long, default_value_t = 60)]
    url_ttl: u64,
    /// Every Nth API request fails with 502 (0: never).
    #[arg(long, default_value_t = 0)]
    api_fail_every: u64,
    /// Every Nth API request answers 429 with Retry-After (0: never).
    #[arg(long, default_value_t = 0)]
    api_429_every: u64,
    /// Every Nth blob body is cut off halfway (0: never).
    #[arg(long, default_value_t = 0)]
    blob_truncate_every: u64,
    /// Every Nth blob body stalls halfway with the connection left open
    #[arg(long, default_value_t = 0)]
    blob_stall_every: u64,
    /// Added latency on every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    api_delay_ms: u64,
    /// Added latency on every blob request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    blob_delay_ms: u64,
    /// Limit every blob body to this many MiB/s (per connection), like a real network link.
    #[arg(long)]
    blob_mibps: Option<u64>,
    /// The blob host ignores Range headers.
    #[arg(long)]
    no_range: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = FakeConfig {
        url_ttl: Duration::from_secs(args.url_ttl),
        path_prefix: args.prefix,
        faults: Faults {
            api_fail_every: args.api_fail_every,
            api_429_every: args.api_429_every,
            blob_truncate_every: args.blob_truncate_every,
            blob_stall_every: args.blob_stall_every,
            api_delay: (args.api_delay_ms > 0).then(|| Duration::from_millis(args.api_delay_ms)),
            blob_delay: (args.blob_delay_ms > 0).then(|| Duration::from_millis(args.blob_delay_ms)),
            no_range: args.no_range,
            blob_bandwidth: args.blob_mibps.map(|m| m << 20),
            ..Default::default()
        },
        ..Default::default()
    };
    if !args.tokens.is_empty() {
        config.tokens.clear();
    }
    for t in args.tokens {
        config.tokens.insert(t, TokenAccess::ReadWrite);
    }
    for t in args.read_only_tokens {
        config.tokens.insert(t, TokenAccess::ReadOnly);
    }
    let gh = FakeGitHub::start_on(args.api_addr, args.blob_addr, config)?;
    if args.demo {
        let info = fake_github::demo::populate(&gh);
        eprintln!(
            "serving {}/{} ({} artifacts)",
            info.owner,
            info.repo,
            info.artifact_ids.len()
        );
    }
    if let Some(mib) = args.bench_huge_mib {
        let huge = fake_github::bench::populate_huge(&gh, mib);
        println!(
            "{}",
            serde_json::json!({"api": gh.api_url(), "blob": gh.blob_origin(), "huge": huge})
        );
    } else if args.bench {
        let info = fake_github::bench::populate(&gh);
        println!(
            "{}",
            serde_json::json!({"api": gh.api_url(), "blob": gh.blob_origin(), "bench": info})
        );
    }
    println!("api: {}", gh.api_url());
    println!("blob: {}", gh.blob_origin());
    eprintln!("Ctrl-C stops.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    gh.shutdown();
    Ok(())
}
