//! Where the token comes from: `GH_TOKEN`, else `GITHUB_TOKEN`, else `gh auth token --hostname
//! HOST` when the GitHub CLI is installed, HOST being the host of `--api-url` (`github.com` for
//! the default), so that a token gh holds for one host is never sent to another. No token is
//! fine for public repositories. The token is never logged; callers only ever see whether
//! there is one.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use url::Url;

/// The host `gh` knows the API at `api_url` by: `github.com` for `https://api.github.com`,
/// `TENANT.ghe.com` for `https://api.TENANT.ghe.com`, the server's host name for GitHub
/// Enterprise Server (`https://HOST/api/v3`).
pub fn gh_host(api_url: &Url) -> Option<String> {
    let host = api_url.host_str()?.to_ascii_lowercase();
    if host == "api.github.com" {
        return Some("github.com".into());
    }
    if let Some(tenant) = host.strip_prefix("api.")
        && tenant.ends_with(".ghe.com")
    {
        return Some(tenant.to_string());
    }
    Some(host)
}

/// The token to use with the API at `api_url`, if any.
pub fn discover_token(api_url: &Url) -> Option<String> {
    for var in ["GH_TOKEN", "GITHUB_TOKEN"] {
        if let Some(t) = std::env::var(var).ok().and_then(non_empty) {
            return Some(t);
        }
    }
    gh_auth_token(OsStr::new("gh"), &gh_host(api_url)?)
}

/// `PROGRAM auth token --hostname HOST`'s answer, if it gives one.
pub fn gh_auth_token(program: &OsStr, host: &str) -> Option<String> {
    let out = Command::new(program)
        .args(["auth", "token", "--hostname", host])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok().and_then(non_empty)
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_rejects_empty() {
        assert_eq!(non_empty("  abc\n".into()).as_deref(), Some("abc"));
        assert_eq!(non_empty(" \n".into()), None);
    }

    #[test]
    fn gh_hosts_follow_the_api_url() {
        let h = |u: &str| gh_host(&Url::parse(u).unwrap());
        assert_eq!(h("https://api.github.com").as_deref(), Some("github.com"));
        assert_eq!(h("https://API.GitHub.com/").as_deref(), Some("github.com"));
        assert_eq!(
            h("https://ghes.example/api/v3").as_deref(),
            Some("ghes.example")
        );
        assert_eq!(
            h("http://127.0.0.1:8080/api/v3").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            h("https://api.octo.ghe.com").as_deref(),
            Some("octo.ghe.com")
        );
    }

    #[test]
    fn asks_gh_for_the_host_given() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let gh = dir.path().join("gh");
        // Answers with the arguments it was given, as a token would be printed.
        std::fs::write(&gh, "#!/bin/sh\necho \"$*\"\n").unwrap();
        std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            gh_auth_token(gh.as_os_str(), "github.com").as_deref(),
            Some("auth token --hostname github.com")
        );
        assert_eq!(gh_auth_token(OsStr::new("/nonexistent/gh"), "x"), None);
    }
}
