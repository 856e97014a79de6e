//! The inode table: every path the kernel has seen gets a stable inode number for the life of
//! the mount. Inodes are keyed by what they are (a run, an artifact's archive, a zip entry...),
//! not by path, so two paths to the same thing (case-insensitive owner/repo) share an inode.
//! Numbers are never reused; `forget` is not tracked (a few dozen bytes per inode seen).

use std::collections::HashMap;
use std::sync::Mutex;

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

/// Index of a repository in the core's repository table.
pub type RepoIdx = usize;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    /// An owner directory (lower-cased login).
    Owner(String),
    Repo(RepoIdx),
    Runs(RepoIdx),
    Latest(RepoIdx),
    Branches(RepoIdx),
    Run(RepoIdx, u64),
    /// A branch directory (its encoded name).
    Branch(RepoIdx, String),
    /// A zip artifact's entries (`runs/RUN/NAME/`).
    ArtifactDir(RepoIdx, u64),
    /// A zip artifact's archive (`runs/RUN/NAME.zip`).
    ArchiveFile(RepoIdx, u64),
    /// An unzipped artifact's one file (`runs/RUN/NAME`).
    RawFile(RepoIdx, u64),
    /// A file or directory inside a zip artifact: (repo, artifact id, tree node index ≥ 1).
    Entry(RepoIdx, u64, usize),
    /// `latest/NAME`.
    LatestLink(RepoIdx, String),
    /// `branches/BRANCH/NAME`.
    BranchLink(RepoIdx, String, String),
    /// `workflows/`.
    Workflows(RepoIdx),
    /// `workflows/W/` (W a workflow's file name, `ci.yml`).
    Workflow(RepoIdx, String),
    /// `workflows/W/branches/`.
    WorkflowBranches(RepoIdx, String),
    /// `workflows/W/branches/BRANCH/` (the branch encoded as under `branches/`).
    WorkflowBranch(RepoIdx, String, String),
    /// `workflows/W/NAME` (branch `None`) or `workflows/W/branches/BRANCH/NAME`.
    WorkflowLink(RepoIdx, String, Option<String>, String),
    /// `commits/`.
    Commits(RepoIdx),
    /// `commits/SHA/` (the full sha, however it was reached).
    Commit(RepoIdx, String),
    /// `commits/SHA/NAME`.
    CommitLink(RepoIdx, String, String),
    /// `pulls/`.
    Pulls(RepoIdx),
    /// `pulls/NUMBER/`.
    Pull(RepoIdx, u64),
    /// `pulls/NUMBER/NAME`.
    PullLink(RepoIdx, u64, String),
}

#[derive(Default)]
struct Table {
    by_node: HashMap<Node, Ino>,
    nodes: Vec<Node>,
}

pub struct InodeTable {
    inner: Mutex<Table>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    pub fn new() -> Self {
        let mut t = Table::default();
        t.nodes.push(Node::Root);
        t.by_node.insert(Node::Root, ROOT_INO);
        InodeTable {
            inner: Mutex::new(t),
        }
    }

    /// The inode for `node`, allocating one the first time.
    pub fn ino(&self, node: Node) -> Ino {
        let mut t = self.inner.lock().unwrap();
        if let Some(&ino) = t.by_node.get(&node) {
            return ino;
        }
        t.nodes.push(node.clone());
        let ino = t.nodes.len() as Ino;
        t.by_node.insert(node, ino);
        ino
    }

    /// The inode for `node` if the kernel has been told about it.
    pub fn existing(&self, node: &Node) -> Option<Ino> {
        self.inner.lock().unwrap().by_node.get(node).copied()
    }

    pub fn node(&self, ino: Ino) -> Option<Node> {
        let t = self.inner.lock().unwrap();
        t.nodes.get((ino as usize).checked_sub(1)?).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_are_stable_and_distinct() {
        let t = InodeTable::new();
        assert_eq!(t.ino(Node::Root), ROOT_INO);
        let a = t.ino(Node::Run(0, 7));
        let b = t.ino(Node::Run(0, 8));
        assert_ne!(a, b);
        assert_eq!(t.ino(Node::Run(0, 7)), a);
        assert_eq!(t.node(b), Some(Node::Run(0, 8)));
        assert_eq!(t.node(0), None);
        assert_eq!(t.node(999), None);
    }
}
