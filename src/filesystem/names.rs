//! Names the filesystem shows for things GitHub names: artifacts, branches, owners, repos.

use std::collections::HashSet;

/// An artifact name as one safe path component (`/`, NUL and control characters become `_`;
/// `.`, `..` and the empty name become `_`).
pub fn artifact_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        "_".to_string()
    } else {
        s
    }
}

/// Returns `want`, or `want (1)`, `want (2)`, ... — the first not in `taken` — and records it.
pub fn unique_name(want: &str, taken: &mut HashSet<String>) -> String {
    if taken.insert(want.to_string()) {
        return want.to_string();
    }
    (1u64..)
        .map(|n| format!("{want} ({n})"))
        .find(|cand| taken.insert(cand.clone()))
        .expect("an unused suffix exists")
}

/// A branch name as one path component: `%` → `%25`, `/` → `%2F` (reversible).
pub fn encode_branch(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    for c in branch.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

/// Whether `s` can be a GitHub owner (user or organization) name.
pub fn valid_owner(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `s` can be a GitHub repository name.
pub fn valid_repo(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_are_single_components() {
        assert_eq!(artifact_component("logs"), "logs");
        assert_eq!(artifact_component("a/b"), "a_b");
        assert_eq!(artifact_component(".."), "_");
        assert_eq!(artifact_component("x\0y"), "x_y");
    }

    #[test]
    fn unique_names_are_numbered() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name("a", &mut taken), "a");
        assert_eq!(unique_name("a", &mut taken), "a (1)");
        assert_eq!(unique_name("a", &mut taken), "a (2)");
    }

    #[test]
    fn branches_encode_reversibly() {
        assert_eq!(encode_branch("feature/login"), "feature%2Flogin");
        assert_eq!(encode_branch("100%/x"), "100%25%2Fx");
        assert_eq!(encode_branch("main"), "main");
    }

    #[test]
    fn owner_and_repo_validation() {
        assert!(valid_owner("octo-org"));
        assert!(!valid_owner(".git"));
        assert!(!valid_owner("-x"));
        assert!(valid_repo("hello.world"));
        assert!(!valid_repo(".."));
        assert!(!valid_repo("a b"));
    }
}
