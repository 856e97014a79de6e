//! The JSON shapes of the runs, jobs, workflows and pulls endpoints that GitHub's OpenAPI
//! description requires (`fake-github/github-openapi/actions.json`): a repository, a user, a
//! workflow run, a job, a workflow, a pull request. Every field the description marks
//! required is there, with a plausible value; the tests check them against the description.

use serde_json::{Value, json};

/// A user or organisation (`simple-user`).
pub(crate) fn user(base: &str, login: &str, id: u64) -> Value {
    let u = format!("{base}/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.example/u/{id}"), "gravatar_id": "",
        "url": u, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": "User", "site_admin": false,
    })
}

/// A repository (`repository`, a superset of `minimal-repository`).
pub(crate) fn repository(base: &str, owner: &str, name: &str, id: u64, fork: bool) -> Value {
    let r = format!("{base}/repos/{owner}/{name}");
    let mut v = json!({
        "id": id, "node_id": format!("MDEwOlJlcG9zaXRvcnk{id}"), "name": name,
        "full_name": format!("{owner}/{name}"), "owner": user(base, owner, 9000 + id % 1000),
        "private": false, "html_url": format!("https://github.com/{owner}/{name}"),
        "description": null, "fork": fork, "url": r,
        "clone_url": format!("https://github.com/{owner}/{name}.git"),
        "git_url": format!("git://github.com/{owner}/{name}.git"),
        "ssh_url": format!("git@github.com:{owner}/{name}.git"),
        "svn_url": format!("https://github.com/{owner}/{name}"), "mirror_url": null,
        "homepage": null, "language": "Rust", "default_branch": "main",
        "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0,
        "open_issues": 0, "open_issues_count": 0, "size": 100,
        "has_downloads": true, "has_issues": true, "has_projects": false, "has_wiki": false,
        "has_pages": false, "archived": false, "disabled": false, "license": null,
        "pushed_at": "2024-01-01T00:00:00Z", "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    });
    let urls = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ];
    let m = v.as_object_mut().expect("an object");
    for (k, tail) in urls {
        m.insert(k.into(), Value::String(format!("{r}{tail}")));
    }
    v
}

/// A link object (`{"href": ...}`).
fn link(href: String) -> Value {
    json!({ "href": href })
}

/// The commit a run is at (`nullable-simple-commit`).
pub(crate) fn head_commit(sha: &str, timestamp: &str) -> Value {
    json!({
        "id": sha, "tree_id": sha, "message": "a commit", "timestamp": timestamp,
        "author": { "name": "Octo Cat", "email": "octocat@example.com" },
        "committer": { "name": "Octo Cat", "email": "octocat@example.com" },
    })
}

/// A pull request as a run lists it (`pull-request-minimal`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pull_minimal(
    base: &str,
    repo: (&str, &str, u64),
    number: u64,
    head: (&str, &str, u64, &str),
    base_ref: &str,
    base_sha: &str,
) -> Value {
    let (owner, name, repo_id) = repo;
    let (head_ref, head_sha, head_repo_id, head_repo_name) = head;
    json!({
        "id": 7_000_000 + number, "number": number,
        "url": format!("{base}/repos/{owner}/{name}/pulls/{number}"),
        "head": { "ref": head_ref, "sha": head_sha,
                  "repo": { "id": head_repo_id, "url": format!("{base}/repositories/{head_repo_id}"), "name": head_repo_name } },
        "base": { "ref": base_ref, "sha": base_sha,
                  "repo": { "id": repo_id, "url": format!("{base}/repos/{owner}/{name}"), "name": name } },
    })
}

/// A pull request (`pull-request`): `head` and `base` with their repositories.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pull(
    base: &str,
    repo: Value,
    number: u64,
    state: &str,
    head_ref: &str,
    head_sha: &str,
    head_repo: Value,
    base_sha: &str,
    at: &str,
) -> Value {
    let full = repo["full_name"].as_str().unwrap_or_default().to_string();
    let p = format!("{base}/repos/{full}/pulls/{number}");
    let html = format!("https://github.com/{full}/pull/{number}");
    let i = format!("{base}/repos/{full}/issues/{number}");
    let head_owner = head_repo["owner"].clone();
    let head_login = head_owner["login"].as_str().unwrap_or_default().to_string();
    let base_login = repo["owner"]["login"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    json!({
        "url": p, "id": 8_000_000 + number, "node_id": format!("PR_kw{number}"),
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": i, "commits_url": format!("{p}/commits"),
        "review_comments_url": format!("{p}/comments"),
        "review_comment_url": format!("{base}/repos/{full}/pulls/comments{{/number}}"),
        "comments_url": format!("{i}/comments"),
        "statuses_url": format!("{base}/repos/{full}/statuses/{head_sha}"),
        "number": number, "state": state, "locked": false, "title": format!("Pull request {number}"),
        "user": head_owner.clone(), "body": null, "labels": [], "milestone": null,
        "created_at": at, "updated_at": at, "closed_at": null, "merged_at": null,
        "merge_commit_sha": null, "assignee": null,
        "head": { "label": format!("{head_login}:{head_ref}"), "ref": head_ref, "sha": head_sha,
                  "user": head_owner, "repo": head_repo },
        "base": { "label": format!("{base_login}:main"), "ref": "main", "sha": base_sha,
                  "user": repo["owner"].clone(), "repo": repo },
        "_links": {
            "self": link(p.clone()), "html": link(html), "issue": link(i.clone()),
            "comments": link(format!("{i}/comments")),
            "review_comments": link(format!("{p}/comments")),
            "review_comment": link(format!("{base}/repos/{full}/pulls/comments{{/number}}")),
            "commits": link(format!("{p}/commits")),
            "statuses": link(format!("{base}/repos/{full}/statuses/{head_sha}")),
        },
        "author_association": "CONTRIBUTOR", "auto_merge": null, "draft": false,
        "merged": false, "mergeable": true, "mergeable_state": "clean", "merged_by": null,
        "comments": 0, "review_comments": 0, "maintainer_can_modify": false,
        "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1,
    })
}
