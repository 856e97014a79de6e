//! The house's shape, checked from the sources: the import graph of `src/` (from `crate::…`,
//! `super::…` and child-module paths, comments left out) has no cycle, neither between
//! top-level modules nor between files (a child module using an enclosing module's items aside), and
//! nothing below the front ends imports one of them. Run with
//! `cargo test --test architecture -- --nocapture` to print the module graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The front ends: nothing else may import them.
const FRONT_ENDS: &[&str] = &["fuse", "serve", "status", "mount"];
/// What sits above the front ends and may use them: the binary and the commands that start
/// a front end.
const ABOVE_FRONT_ENDS: &[&str] = &["main", "lib", "demo"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as paths relative to it.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &src(), &mut out);
    out.sort();
    out
}

/// The module path of a file: `data/blob.rs` → [data, blob], `data/mod.rs` → [data].
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return Vec::new();
    }
    parts
}

/// The file that holds module `path`, or its nearest ancestor that exists (an item path
/// like `data::blob::CachedBlob` resolves to `data/blob.rs`).
fn file_of(path: &[String], files: &BTreeSet<PathBuf>) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let stem = path[..n].join("/");
        for cand in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            let p = PathBuf::from(cand);
            if files.contains(&p) {
                return Some(p);
            }
        }
    }
    None
}

/// The modules a file declares (`mod x;`, `pub mod x;`): `x::…` in it names a child.
fn children(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or(t.strip_prefix("pub "))
                .unwrap_or(t);
            let name = t.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// The paths a file names: `crate::a::b`, `super::…` and a child module's `x::…`
/// (resolved to paths from the crate root), code lines only.
fn imports(file: &Path, text: &str) -> Vec<Vec<String>> {
    let here = module_of(file);
    let kids = children(text);
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let bytes = t.as_bytes();
        let mut i = 0;
        while i < t.len() {
            let rest = &t[i..];
            let word_start =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let (base, skip) = if word_start && rest.starts_with("crate::") {
                (Vec::new(), "crate::".len())
            } else if word_start && rest.starts_with("super::") {
                let mut base = here.clone();
                let mut skip = 0;
                while t[i + skip..].starts_with("super::") {
                    base.pop();
                    skip += "super::".len();
                }
                (base, skip)
            } else if let Some(k) = kids
                .iter()
                .find(|k| word_start && rest.starts_with(&format!("{k}::")))
            {
                let mut base = here.clone();
                base.push(k.clone());
                (base, k.len() + 2)
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let tail: String = t[i + skip..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut path = base;
            path.extend(
                tail.split("::")
                    .filter(|s| !s.is_empty() && s.chars().next().unwrap().is_ascii_lowercase())
                    .map(str::to_string),
            );
            out.push(path);
            i += skip + tail.len().max(1);
        }
    }
    out
}

struct Graph {
    /// file → files it imports
    files: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// top-level module → top-level modules it imports
    modules: BTreeMap<String, BTreeSet<String>>,
}

fn top(file: &Path) -> String {
    let m = module_of(file);
    match m.first() {
        Some(t) => t.clone(),
        None => file.to_string_lossy().trim_end_matches(".rs").to_string(),
    }
}

fn graph() -> Graph {
    let list = sources();
    let set: BTreeSet<PathBuf> = list.iter().cloned().collect();
    let mut g = Graph {
        files: BTreeMap::new(),
        modules: BTreeMap::new(),
    };
    for f in &list {
        let text = std::fs::read_to_string(src().join(f)).unwrap();
        let from_top = top(f);
        for path in imports(f, &text) {
            let Some(to) = file_of(&path, &set) else {
                continue;
            };
            if &to == f {
                continue; // a path to one of its own items
            }
            let (from_mod, to_mod) = (module_of(f), module_of(&to));
            let child_to_parent = from_mod.len() > to_mod.len()
                && !to_mod.is_empty()
                && from_mod.starts_with(&to_mod);
            let to_top = top(&to);
            // A child using what an enclosing module declares is how Rust modules are
            // built (the parent owns it): not a loop between files. (The core's views use
            // `ArtifactFs` from `filesystem/mod.rs` this way.)
            if !child_to_parent {
                g.files.entry(f.clone()).or_default().insert(to.clone());
            }
            if to_top != from_top {
                g.modules
                    .entry(from_top.clone())
                    .or_default()
                    .insert(to_top);
            }
        }
    }
    g
}

/// A cycle in `edges`, if there is one (depth-first search).
fn find_cycle<T: Ord + Clone>(edges: &BTreeMap<T, BTreeSet<T>>) -> Option<Vec<T>> {
    fn visit<T: Ord + Clone>(
        n: &T,
        edges: &BTreeMap<T, BTreeSet<T>>,
        state: &mut BTreeMap<T, u8>,
        stack: &mut Vec<T>,
    ) -> Option<Vec<T>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut c = stack[at..].to_vec();
                c.push(n.clone());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    for (m, to) in &g.modules {
        println!(
            "{m} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        g.modules.contains_key("data") && g.modules["data"].contains("cache"),
        "the graph was not read (data imports cache)"
    );
    assert_eq!(
        find_cycle(&g.modules),
        None,
        "a cycle between modules of src/"
    );
}

#[test]
fn the_file_graph_has_no_cycle() {
    let g = graph();
    assert!(g.files.len() > 50, "the file graph was not read");
    assert_eq!(find_cycle(&g.files), None, "a cycle between files of src/");
}

#[test]
fn nothing_below_a_front_end_imports_one() {
    let g = graph();
    let mut wrong = Vec::new();
    for (m, to) in &g.modules {
        if FRONT_ENDS.contains(&m.as_str()) || ABOVE_FRONT_ENDS.contains(&m.as_str()) {
            continue;
        }
        for t in to {
            if FRONT_ENDS.contains(&t.as_str()) {
                wrong.push(format!("{m} -> {t}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports of a front end from below: {wrong:?}"
    );
}

#[test]
fn the_reader_resolves_paths_like_the_compiler() {
    let files: BTreeSet<PathBuf> = [
        "data/mod.rs",
        "data/blob.rs",
        "data/readahead.rs",
        "cache/mod.rs",
        "error.rs",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let text = "mod blob;\nuse super::blob::CachedBlob;\n// crate::nothing\nuse crate::cache::{BlobKey};\nlet e = crate::error::SourceError::NotFound;\nuse blob::X;";
    let got: Vec<Option<PathBuf>> = imports(Path::new("data/readahead.rs"), text)
        .iter()
        .map(|p| file_of(p, &files))
        .collect();
    assert_eq!(
        got,
        vec![
            Some(PathBuf::from("data/blob.rs")),
            Some(PathBuf::from("cache/mod.rs")),
            Some(PathBuf::from("error.rs")),
            // a child `blob` of readahead.rs does not exist: the nearest file is itself
            Some(PathBuf::from("data/readahead.rs")),
        ]
    );
}
