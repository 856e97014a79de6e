//! Checks JSON answers and requests against GitHub's OpenAPI description of the endpoints
//! (the subset in `fake-github/github-openapi/actions.json`, GitHub's text unchanged): an answer
//! against its operation's 200 schema (`$ref`, `type`, `nullable`, `required`, `properties`,
//! `items`, `enum`, `oneOf`/`anyOf`/`allOf`, `date-time`), a request's path against the
//! operations' templates and its query against their parameters. For tests, of this crate (the
//! fake answers as GitHub does) and of artifactfs (it asks only what GitHub documents).

use std::path::{Path, PathBuf};

use serde_json::Value;

pub struct OpenApi {
    doc: Value,
}

/// Where the description is: the copy this crate carries (`github-openapi/actions.json`,
/// see its README), so that no test needs a file outside the repository. `_from` is kept for
/// callers that still name where they stand.
pub fn find_description(_from: &Path) -> Option<PathBuf> {
    Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("github-openapi/actions.json"))
        .filter(|p| p.is_file())
}

impl OpenApi {
    /// The description found above `from` (see [`find_description`]); a panic naming what
    /// is missing otherwise (tests that need it never skip).
    pub fn load_above(from: &Path) -> OpenApi {
        let path = find_description(from).unwrap_or_else(|| {
            panic!(
                "GitHub's OpenAPI description (github-openapi/actions.json) is missing from \
                 the fake-github crate (looked from {})",
                from.display()
            )
        });
        let text = std::fs::read_to_string(&path).expect("read the OpenAPI description");
        OpenApi {
            doc: serde_json::from_str(&text).expect("the description is JSON"),
        }
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        let mut v = v;
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut at = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            v = at;
        }
        v
    }

    /// The operation `method path` is (`path` as sent, without the query): its template
    /// and its object.
    pub fn operation(&self, method: &str, path: &str) -> Option<(String, &Value)> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        for (template, ops) in paths {
            let t: Vec<&str> = template.trim_matches('/').split('/').collect();
            let fits = t.len() == segs.len()
                && t.iter().zip(&segs).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                });
            if fits && let Some(op) = ops.get(method.to_ascii_lowercase()) {
                return Some((template.clone(), op));
            }
        }
        None
    }

    /// What is wrong with request `line` (`METHOD /path?query`): an undocumented path or
    /// method, a query parameter the operation does not declare, or a value its schema
    /// refuses. Empty when it is a documented request.
    pub fn check_request(&self, line: &str) -> Vec<String> {
        let (method, target) = line.split_once(' ').unwrap_or(("GET", line));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let Some((template, op)) = self.operation(method, path) else {
            return vec![format!("{line}: no such operation in the description")];
        };
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|a| a.iter().map(|p| self.resolve(p)).collect())
            .unwrap_or_default();
        let mut errs = Vec::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let Some(p) = params.iter().find(|p| p["in"] == "query" && p["name"] == k) else {
                errs.push(format!("{line}: `{k}` is not a parameter of {template}"));
                continue;
            };
            let s = self.resolve(&p["schema"]);
            let ok = match s["type"].as_str() {
                Some("integer") => v.parse::<i64>().is_ok(),
                Some("boolean") => v == "true" || v == "false",
                _ => s["enum"]
                    .as_array()
                    .is_none_or(|e| e.iter().any(|x| x.as_str() == Some(v))),
            };
            if !ok {
                errs.push(format!("{line}: `{k}={v}` does not fit its schema {s}"));
            }
        }
        errs
    }

    /// What is wrong with `body` as the 200 answer of `method path`.
    pub fn check_answer(&self, method: &str, path: &str, body: &Value) -> Vec<String> {
        let Some((template, op)) = self.operation(method, path) else {
            return vec![format!(
                "{method} {path}: no such operation in the description"
            )];
        };
        let schema =
            &self.resolve(&op["responses"]["200"])["content"]["application/json"]["schema"];
        let mut errs = Vec::new();
        self.check(schema, body, &template, &mut errs);
        errs
    }

    /// What is wrong with `v` against `schema` (errors named by `at`, a JSON path).
    pub fn check(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let nullable_ref = schema.get("$ref").is_some() && self.resolve(schema)["nullable"] == true;
        let s = self.resolve(schema);
        if v.is_null() {
            if s["nullable"] != true && !nullable_ref && schema["nullable"] != true {
                errs.push(format!("{at}: null where {} is not nullable", brief(s)));
            }
            return;
        }
        for key in ["allOf"] {
            if let Some(all) = s[key].as_array() {
                for sub in all {
                    self.check(sub, v, at, errs);
                }
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = s[key].as_array() {
                let fits = any.iter().any(|sub| {
                    let mut e = Vec::new();
                    self.check(sub, v, at, &mut e);
                    e.is_empty()
                });
                if !fits {
                    errs.push(format!("{at}: fits none of {key}"));
                }
            }
        }
        let type_ok = match s["type"].as_str() {
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            _ => true,
        };
        if !type_ok {
            errs.push(format!("{at}: {v} is not {}", brief(s)));
            return;
        }
        if let Some(e) = s["enum"].as_array()
            && !e.contains(v)
        {
            errs.push(format!(
                "{at}: {v} is not one of {}",
                Value::Array(e.clone())
            ));
        }
        if s["format"] == "date-time"
            && let Some(t) = v.as_str()
            && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            errs.push(format!("{at}: {t:?} is not a date-time"));
        }
        if let Some(obj) = v.as_object() {
            for r in s["required"].as_array().into_iter().flatten() {
                let name = r.as_str().unwrap_or_default();
                if !obj.contains_key(name) {
                    errs.push(format!("{at}: required `{name}` is missing"));
                }
            }
            if let Some(props) = s["properties"].as_object() {
                for (k, sub) in props {
                    if let Some(x) = obj.get(k) {
                        self.check(sub, x, &format!("{at}.{k}"), errs);
                    }
                }
            }
        }
        if let Some(items) = v.as_array() {
            for (i, x) in items.iter().enumerate() {
                self.check(&s["items"], x, &format!("{at}[{i}]"), errs);
            }
        }
    }
}

fn brief(s: &Value) -> String {
    s.get("title")
        .or_else(|| s.get("type"))
        .map(|t| t.to_string())
        .unwrap_or_else(|| "the schema".into())
}
