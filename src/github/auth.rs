//! Where the token comes from: `GH_TOKEN`, else `GITHUB_TOKEN`, else `gh auth token` when the
//! GitHub CLI is installed. No token is fine for public repositories. The token is never
//! logged; callers only ever see whether there is one.

use std::process::{Command, Stdio};

/// The token to use, if any (`gh_host`: the host for `gh auth token --hostname`, when not
/// github.com).
pub fn discover_token_for(gh_host: Option<&str>) -> Option<String> {
    for var in ["GH_TOKEN", "GITHUB_TOKEN"] {
        if let Some(t) = std::env::var(var).ok().and_then(non_empty) {
            return Some(t);
        }
    }
    let mut cmd = Command::new("gh");
    cmd.args(["auth", "token"]);
    if let Some(h) = gh_host {
        cmd.args(["--hostname", h]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok().and_then(non_empty)
}

/// The token for github.com.
pub fn discover_token() -> Option<String> {
    discover_token_for(None)
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
}
