//! The directory tree a user sees under `runs/RUN_ID/NAME/`, built from central-directory
//! entries, and the name sanitizer that keeps every entry inside that directory.
//!
//! Sanitizing (applied to each entry name, deterministic):
//! - `\` is a separator like `/`; a leading `/` and a leading drive (`C:`) are ignored;
//! - empty, `.` and `..` components are dropped (never resolved), so nothing can climb out;
//! - NUL and other control characters become `_`;
//! - a component longer than 240 bytes is cut (on a character boundary), leaving room
//!   under the 255-byte limit for a ` (N)` suffix;
//! - a file name that sanitizes to nothing (`../..`) becomes `_`.
//!
//! Collisions: directories are synthesized from paths (upload-artifact writes no directory
//! entries). When two entries map to the same path, the first keeps it and later ones get
//! ` (1)`, ` (2)`… appended to the whole name, in central-directory order, skipping names
//! already taken. When a file and a directory want the same path, the directory keeps it and
//! the file is renamed the same way, whichever came first.

use std::collections::HashMap;

use super::central_directory::ZipEntry;

/// Longest component we keep, in bytes (255 minus room for " (NNNNNN)").
pub const MAX_COMPONENT: usize = 240;

#[derive(Clone, Debug)]
pub struct ArchiveTree {
    /// `nodes[0]` is the root directory.
    pub nodes: Vec<TreeNode>,
}

#[derive(Clone, Debug)]
pub struct TreeNode {
    pub name: String,
    pub parent: usize,
    pub kind: NodeKind,
    /// Unix seconds: the entry's time; for a directory the newest below it.
    pub mtime: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Children sorted by name (bytes).
    Dir { children: Vec<usize> },
    /// Index into the central directory's entries.
    File { entry: usize },
}

/// The components an entry name becomes (see the module comment).
pub fn sanitize_components(name: &str) -> Vec<String> {
    let unified = name.replace('\\', "/");
    let mut out = Vec::new();
    for (i, comp) in unified.split('/').enumerate() {
        if comp.is_empty() || comp == "." || comp == ".." {
            continue;
        }
        if i == 0
            && comp.len() == 2
            && comp.as_bytes()[1] == b':'
            && comp.as_bytes()[0].is_ascii_alphabetic()
        {
            continue; // a drive letter
        }
        let mut clean: String = comp
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        if clean.len() > MAX_COMPONENT {
            let mut cut = MAX_COMPONENT;
            while !clean.is_char_boundary(cut) {
                cut -= 1;
            }
            clean.truncate(cut);
        }
        out.push(clean);
    }
    out
}

struct Builder {
    nodes: Vec<TreeNode>,
    /// (parent, name) → node, for every node.
    index: HashMap<(usize, String), usize>,
    /// (parent, name) → the lowest `N` that may still be free for `name (N)`. Suffixed names
    /// are never freed again, so every lower `N` is taken: an archive with one name 65 535
    /// times costs linear time, not a scan from `(1)` per copy.
    next_suffix: HashMap<(usize, String), u64>,
}

impl Builder {
    fn free_name(&mut self, parent: usize, name: &str) -> String {
        let next = self
            .next_suffix
            .entry((parent, name.to_string()))
            .or_insert(1);
        let (n, free) = (*next..)
            .map(|n| (n, format!("{name} ({n})")))
            .find(|(_, c)| !self.index.contains_key(&(parent, c.clone())))
            .expect("an unbounded range finds a free name");
        *next = n + 1;
        free
    }

    fn push(&mut self, parent: usize, name: String, kind: NodeKind, mtime: i64) -> usize {
        let id = self.nodes.len();
        self.nodes.push(TreeNode {
            name: name.clone(),
            parent,
            kind,
            mtime,
        });
        self.index.insert((parent, name), id);
        id
    }

    /// The directory `name` under `parent`, created if needed; a file in the way is renamed.
    fn dir(&mut self, parent: usize, name: &str) -> usize {
        if let Some(&id) = self.index.get(&(parent, name.to_string())) {
            if matches!(self.nodes[id].kind, NodeKind::Dir { .. }) {
                return id;
            }
            let renamed = self.free_name(parent, name);
            self.index.remove(&(parent, name.to_string()));
            self.nodes[id].name = renamed.clone();
            self.index.insert((parent, renamed), id);
        }
        self.push(
            parent,
            name.to_string(),
            NodeKind::Dir {
                children: Vec::new(),
            },
            i64::MIN,
        )
    }

    fn file(&mut self, parent: usize, name: &str, entry: usize, mtime: i64) {
        let name = if self.index.contains_key(&(parent, name.to_string())) {
            self.free_name(parent, name)
        } else {
            name.to_string()
        };
        self.push(parent, name, NodeKind::File { entry }, mtime);
    }
}

impl ArchiveTree {
    pub fn build(entries: &[ZipEntry]) -> ArchiveTree {
        let mut b = Builder {
            nodes: vec![TreeNode {
                name: String::new(),
                parent: 0,
                kind: NodeKind::Dir {
                    children: Vec::new(),
                },
                mtime: i64::MIN,
            }],
            index: HashMap::with_capacity(entries.len() * 2),
            next_suffix: HashMap::new(),
        };
        for (i, e) in entries.iter().enumerate() {
            let mut comps = sanitize_components(&e.name);
            let mtime = e.mtime_unix();
            if e.is_dir {
                let mut at = 0;
                for c in &comps {
                    at = b.dir(at, c);
                }
                if at != 0 {
                    b.nodes[at].mtime = b.nodes[at].mtime.max(mtime);
                }
                continue;
            }
            if comps.is_empty() {
                comps.push("_".to_string());
            }
            let last = comps.pop().expect("not empty");
            let mut at = 0;
            for c in &comps {
                at = b.dir(at, c);
            }
            b.file(at, &last, i, mtime);
        }
        // Children lists, sorted; directory times from what is below them.
        let mut nodes = b.nodes;
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for id in 1..nodes.len() {
            children[nodes[id].parent].push(id);
        }
        for id in (1..nodes.len()).rev() {
            // Children always come after their parent, so a reverse pass sees each
            // directory's final time before its parent does.
            let (p, t) = (nodes[id].parent, nodes[id].mtime);
            if t > nodes[p].mtime {
                nodes[p].mtime = t;
            }
        }
        for (id, c) in children.into_iter().enumerate() {
            if let NodeKind::Dir { children } = &mut nodes[id].kind {
                *children = c;
            }
        }
        let mut tree = ArchiveTree { nodes };
        tree.sort_children();
        for n in &mut tree.nodes {
            if n.mtime == i64::MIN {
                n.mtime = 0;
            }
        }
        tree
    }

    fn sort_children(&mut self) {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for n in &mut self.nodes {
            if let NodeKind::Dir { children } = &mut n.kind {
                children.sort_by(|a, b| names[*a].as_bytes().cmp(names[*b].as_bytes()));
            }
        }
    }

    pub fn children(&self, dir: usize) -> &[usize] {
        match self.nodes.get(dir).map(|n| &n.kind) {
            Some(NodeKind::Dir { children }) => children,
            _ => &[],
        }
    }

    pub fn lookup(&self, dir: usize, name: &str) -> Option<usize> {
        let c = self.children(dir);
        c.binary_search_by(|&id| self.nodes[id].name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| c[i])
    }

    /// `a/b/c` (for tests and logs).
    pub fn path(&self, node: usize) -> String {
        let mut parts = Vec::new();
        let mut at = node;
        while at != 0 && at < self.nodes.len() {
            parts.push(self.nodes[at].name.as_str());
            at = self.nodes[at].parent;
        }
        parts.reverse();
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> ZipEntry {
        ZipEntry {
            method: 8,
            unix_mtime: Some(name.len() as i64),
            ..ZipEntry::named(name)
        }
    }

    fn paths(names: &[&str]) -> Vec<(String, bool)> {
        let entries: Vec<_> = names.iter().map(|n| entry(n)).collect();
        let t = ArchiveTree::build(&entries);
        let mut out: Vec<_> = (1..t.nodes.len())
            .map(|i| (t.path(i), matches!(t.nodes[i].kind, NodeKind::Dir { .. })))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn sanitizes_hostile_names() {
        assert_eq!(sanitize_components("/etc/passwd"), ["etc", "passwd"]);
        assert_eq!(sanitize_components("../../x"), ["x"]);
        assert_eq!(sanitize_components("a\\b\\c"), ["a", "b", "c"]);
        assert_eq!(sanitize_components("a\0b\x1b"), ["a_b_"]);
        assert_eq!(sanitize_components("C:\\x"), ["x"]);
        assert_eq!(sanitize_components("a/./b//c/.."), ["a", "b", "c"]);
        assert!(sanitize_components("../..").is_empty());
        let long = "é".repeat(200);
        let c = sanitize_components(&long);
        assert!(c[0].len() <= MAX_COMPONENT && c[0].len() >= MAX_COMPONENT - 1);
    }

    #[test]
    fn synthesizes_directories_and_keeps_duplicates() {
        let p = paths(&["logs/a.txt", "logs/a.txt", "./logs/a.txt", "b"]);
        assert_eq!(
            p,
            vec![
                ("b".into(), false),
                ("logs".into(), true),
                ("logs/a.txt".into(), false),
                ("logs/a.txt (1)".into(), false),
                ("logs/a.txt (2)".into(), false),
            ]
        );
    }

    #[test]
    fn many_copies_of_one_name_get_the_lowest_free_suffixes_in_linear_time() {
        // Literal names in the way are skipped; the answer is what a scan from `(1)` gives.
        let mut names = vec!["x", "x (2)", "x", "x", "x", "x (1) (1)", "x (1)"];
        names.extend(std::iter::repeat_n("x", 30_000));
        let entries: Vec<_> = names.iter().map(|n| entry(n)).collect();
        let t = std::time::Instant::now();
        let tree = ArchiveTree::build(&entries);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
        let got: Vec<&str> = (1..8).map(|i| tree.nodes[i].name.as_str()).collect();
        assert_eq!(
            got,
            [
                "x",
                "x (2)",
                "x (1)",
                "x (3)",
                "x (4)",
                "x (1) (1)",
                "x (1) (2)"
            ]
        );
        let all: std::collections::HashSet<&str> =
            tree.nodes[1..].iter().map(|n| n.name.as_str()).collect();
        assert_eq!(all.len(), names.len(), "every name unique");
        assert!(all.contains("x (30004)"));
    }

    #[test]
    fn a_directory_wins_over_a_file_in_either_order() {
        for names in [["x", "x/y"], ["x/y", "x"]] {
            let p = paths(&names);
            assert_eq!(
                p,
                vec![
                    ("x".into(), true),
                    ("x (1)".into(), false),
                    ("x/y".into(), false)
                ],
                "{names:?}"
            );
        }
    }

    #[test]
    fn lookup_children_and_times() {
        let entries: Vec<_> = ["b/z", "b/a", "a", "../..", "d/"]
            .iter()
            .map(|n| entry(n))
            .collect();
        let t = ArchiveTree::build(&entries);
        let b = t.lookup(0, "b").unwrap();
        let names: Vec<_> = t
            .children(b)
            .iter()
            .map(|&c| t.nodes[c].name.clone())
            .collect();
        assert_eq!(names, ["a", "z"]);
        assert!(
            t.lookup(0, "_").is_some(),
            "a name that sanitizes to nothing"
        );
        assert!(t.lookup(0, "nope").is_none());
        assert_eq!(t.nodes[b].mtime, 3, "newest below");
        assert_eq!(t.nodes[0].mtime, 5);
        assert!(matches!(
            t.nodes[t.lookup(0, "d").unwrap()].kind,
            NodeKind::Dir { .. }
        ));
    }
}
