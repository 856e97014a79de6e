//! What the fake's HTTP tests share: an answer read whole (status, headers, body), a GET
//! sent on a runtime of its own, GitHub's OpenAPI description, a fake with artifacts.

#![allow(dead_code)]

use fake_github::openapi::OpenApi;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// Sends `req` with `token` (bearer) and `extra` headers; the answer read whole.
pub async fn send(
    mut req: reqwest::RequestBuilder,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// `GET url` with `token` (bearer) and `extra` headers, redirects not followed, from a
/// plain `#[test]` (a runtime of its own); the answer read whole.
pub fn get(url: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .user_agent("fake-github-tests")
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    rt.block_on(send(http.get(url), token, extra))
}

/// GitHub's OpenAPI description of the endpoints (the copy this crate carries).
pub fn spec() -> OpenApi {
    OpenApi::load_above(env!("CARGO_MANIFEST_DIR").as_ref())
}

/// A fake with `n` small zip artifacts `a0..` in `o/r`, spread over `runs` runs from 10.
pub fn fake_with_artifacts(n: u64, runs: u64) -> FakeGitHub {
    let gh = FakeGitHub::start(FakeConfig::default());
    for i in 0..n {
        let mut z = ZipBuilder::new();
        z.add("f.txt", format!("{i}").as_bytes());
        gh.add_artifact(FakeArtifactSpec::zip(
            "o",
            "r",
            &format!("a{i}"),
            10 + i % runs,
            z.finish(),
        ));
    }
    gh
}
