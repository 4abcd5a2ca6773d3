//! Route matching (spec §4.3, SEN-R25): the route table compiled from the config in match
//! order, and the lookup of the first route a request satisfies.
//!
//! What it is for: turning `route { matches { … } }` blocks into a table that answers
//! "which route?" without allocating per request. What it is not for: the reserved paths
//! `/health` and `/ready` (answered before routing) or request validation (done before).
//!
//! Conditions of one kind are ORed, kinds are ANDed; {path, path-prefix} is one kind. The
//! order is fixed at build time: priority, then path score, host score, header and method
//! presence, then declaration order, and the first match wins.

use std::cmp::Reverse;

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{Priority, Route};

/// One route, ready for matching.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// Route name.
    pub name: String,
    /// Index of the route in the config's `routes` (declaration order).
    pub index: usize,
    /// Priority.
    pub priority: Priority,
    paths: Vec<String>,
    prefixes: Vec<String>,
    hosts: Vec<HostPattern>,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

#[derive(Debug, Clone)]
enum HostPattern {
    /// Equal, case-insensitively.
    Exact(String),
    /// `*.suffix`: ends in `.suffix` with at least one more label; holds the suffix with
    /// its leading dot.
    Wildcard(String),
}

/// A route that can never be reached because an earlier route matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    /// The unreachable route.
    pub route: String,
    /// The catch-all route ahead of it.
    pub by: String,
}

/// The request facts routing looks at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The host as received (absolute-form authority, else `:authority`, else `Host`); the
    /// port and a trailing dot are ignored, case does not matter.
    pub host: Option<&'a str>,
    /// The path without the query, not percent-decoded.
    pub path: &'a str,
    /// The method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// All routes in match order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

impl RouteTable {
    /// Compiles `routes` (validated config) into match order, and lists the routes that
    /// come after a condition-free or `path-prefix "/"`-only route (WARN `route shadowed`).
    pub fn build(routes: &[Route]) -> (RouteTable, Vec<Shadowed>) {
        let mut compiled: Vec<CompiledRoute> = routes
            .iter()
            .enumerate()
            .map(|(index, r)| compile(index, r))
            .collect();
        compiled.sort_by_key(|r| {
            (
                Reverse(r.priority),
                Reverse(r.path_score()),
                Reverse(r.host_score()),
                Reverse(!r.headers.is_empty()),
                Reverse(!r.methods.is_empty()),
                r.index,
            )
        });
        let mut shadowed = Vec::new();
        let mut catch_all: Option<&str> = None;
        for r in &compiled {
            if let Some(by) = catch_all {
                shadowed.push(Shadowed {
                    route: r.name.clone(),
                    by: by.to_owned(),
                });
            } else if r.matches_everything() {
                catch_all = Some(&r.name);
            }
        }
        (RouteTable { routes: compiled }, shadowed)
    }

    /// The first route `req` satisfies.
    pub fn find(&self, req: &RequestFacts<'_>) -> Option<&CompiledRoute> {
        let host = req.host.map(bare_host);
        self.routes.iter().find(|r| r.matches(req, host))
    }

    /// Routes in match order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }
}

fn compile(index: usize, r: &Route) -> CompiledRoute {
    let m = &r.matches;
    CompiledRoute {
        name: r.name.clone(),
        index,
        priority: r.priority,
        paths: m.path.clone(),
        prefixes: m.path_prefix.clone(),
        hosts: m
            .host
            .iter()
            .map(|h| match h.strip_prefix('*') {
                Some(suffix) => HostPattern::Wildcard(suffix.to_ascii_lowercase()),
                None => HostPattern::Exact(h.to_ascii_lowercase()),
            })
            .collect(),
        // Validation guarantees uppercase tokens and header names; anything that still
        // fails to convert could never match, so it is dropped.
        methods: m
            .method
            .iter()
            .filter_map(|s| Method::from_bytes(s.as_bytes()).ok())
            .collect(),
        headers: m
            .header
            .iter()
            .filter_map(|(n, v)| {
                let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
                let value = match v {
                    Some(v) => Some(HeaderValue::from_str(v).ok()?),
                    None => None,
                };
                Some((name, value))
            })
            .collect(),
    }
}

impl CompiledRoute {
    /// P = min over path conditions of (65536 + len) for exact paths and len for prefixes;
    /// 0 without path conditions.
    fn path_score(&self) -> usize {
        self.paths
            .iter()
            .map(|p| 65_536 + p.len())
            .chain(self.prefixes.iter().map(String::len))
            .min()
            .unwrap_or(0)
    }

    /// 2 = exact hosts only, 1 = any wildcard, 0 = no host condition.
    fn host_score(&self) -> u8 {
        if self.hosts.is_empty() {
            0
        } else if self
            .hosts
            .iter()
            .any(|h| matches!(h, HostPattern::Wildcard(_)))
        {
            1
        } else {
            2
        }
    }

    fn matches_everything(&self) -> bool {
        let only_root_prefix = self.paths.is_empty()
            && !self.prefixes.is_empty()
            && self.prefixes.iter().all(|p| p == "/");
        let no_paths = self.paths.is_empty() && self.prefixes.is_empty();
        (no_paths || only_root_prefix)
            && self.hosts.is_empty()
            && self.methods.is_empty()
            && self.headers.is_empty()
    }

    fn matches(&self, req: &RequestFacts<'_>, host: Option<&str>) -> bool {
        let path_ok = (self.paths.is_empty() && self.prefixes.is_empty())
            || self.paths.iter().any(|p| p == req.path)
            || self.prefixes.iter().any(|p| prefix_matches(p, req.path));
        path_ok
            && (self.hosts.is_empty()
                || host.is_some_and(|h| self.hosts.iter().any(|p| p.matches(h))))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && (self.headers.is_empty()
                || self.headers.iter().any(|(name, value)| match value {
                    None => req.headers.contains_key(name),
                    Some(v) => req.headers.get_all(name).iter().any(|got| got == v),
                }))
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// `path-prefix P`: with a trailing `/`, a plain prefix; otherwise the path equals P or
/// continues with `/` (so `/api` matches `/api/x` but not `/apix`).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The host without its port and trailing dot, borrowed (`[::1]:80` → `[::1]`).
pub fn bare_host(raw: &str) -> &str {
    let without_port = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    without_port.strip_suffix('.').unwrap_or(without_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Matches, Policies};

    fn route(name: &str, priority: Priority, m: Matches) -> Route {
        Route {
            name: name.into(),
            priority,
            matches: m,
            upstream: "u".into(),
            policies: Policies::default(),
        }
    }

    fn prefix(p: &[&str]) -> Matches {
        Matches {
            path_prefix: p.iter().map(|s| s.to_string()).collect(),
            ..Matches::default()
        }
    }

    fn find<'a>(
        t: &'a RouteTable,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<&'a str> {
        find_h(t, host, method, path, &HeaderMap::new())
    }

    fn find_h<'a>(
        t: &'a RouteTable,
        host: Option<&str>,
        method: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&'a str> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        t.find(&RequestFacts {
            host,
            path,
            method: &method,
            headers,
        })
        .map(|r| r.name.as_str())
    }

    #[test]
    fn priority_beats_specificity_then_exact_then_longer_prefix_then_declaration() {
        let routes = vec![
            route("short", Priority::Normal, prefix(&["/a"])),
            route("long", Priority::Normal, prefix(&["/a/b"])),
            route(
                "exact",
                Priority::Normal,
                Matches {
                    path: vec!["/a/b/c".into()],
                    ..Matches::default()
                },
            ),
            route("urgent", Priority::Critical, prefix(&["/z"])),
            route("first", Priority::Low, prefix(&["/t"])),
            route("second", Priority::Low, prefix(&["/t"])),
        ];
        let (t, _) = RouteTable::build(&routes);
        assert_eq!(find(&t, None, "GET", "/a/b/c"), Some("exact"));
        assert_eq!(find(&t, None, "GET", "/a/b/x"), Some("long"));
        assert_eq!(find(&t, None, "GET", "/a/x"), Some("short"));
        assert_eq!(find(&t, None, "GET", "/t"), Some("first"));
        assert_eq!(t.routes()[0].name, "urgent");
        // Priority beats specificity: a critical catch-all wins over an exact path.
        let routes = vec![
            route(
                "exact",
                Priority::High,
                Matches {
                    path: vec!["/x".into()],
                    ..Matches::default()
                },
            ),
            route("all", Priority::Critical, prefix(&["/"])),
        ];
        let (t, shadowed) = RouteTable::build(&routes);
        assert_eq!(find(&t, None, "GET", "/x"), Some("all"));
        assert_eq!(
            shadowed,
            vec![Shadowed {
                route: "exact".into(),
                by: "all".into()
            }]
        );
    }

    #[test]
    fn prefixes_respect_segment_boundaries() {
        let (t, _) = RouteTable::build(&[
            route("api", Priority::Normal, prefix(&["/api"])),
            route("slash", Priority::Normal, prefix(&["/v2/"])),
        ]);
        assert_eq!(find(&t, None, "GET", "/api"), Some("api"));
        assert_eq!(find(&t, None, "GET", "/api/x"), Some("api"));
        assert_eq!(find(&t, None, "GET", "/apix"), None);
        assert_eq!(find(&t, None, "GET", "/v2/x"), Some("slash"));
        assert_eq!(find(&t, None, "GET", "/v2"), None);
    }

    #[test]
    fn or_within_a_kind_and_across_kinds() {
        let m = Matches {
            path_prefix: vec!["/a".into(), "/b".into()],
            method: vec!["GET".into(), "POST".into()],
            header: vec![("X-Key".into(), None), ("X-Mode".into(), Some("on".into()))],
            ..Matches::default()
        };
        let (t, _) = RouteTable::build(&[route("r", Priority::Normal, m)]);
        let mut h = HeaderMap::new();
        h.insert("x-key", HeaderValue::from_static("1"));
        assert_eq!(find_h(&t, None, "POST", "/b/1", &h), Some("r"));
        assert_eq!(
            find_h(&t, None, "PUT", "/b/1", &h),
            None,
            "method kind fails"
        );
        assert_eq!(find_h(&t, None, "GET", "/c", &h), None, "path kind fails");
        assert_eq!(find(&t, None, "GET", "/a"), None, "header kind fails");
        let mut h = HeaderMap::new();
        h.append("x-mode", HeaderValue::from_static("off"));
        h.append("x-mode", HeaderValue::from_static("on"));
        assert_eq!(
            find_h(&t, None, "GET", "/a", &h),
            Some("r"),
            "any value equal"
        );
    }

    #[test]
    fn hosts_ignore_case_port_and_trailing_dot_and_wildcards_need_a_label() {
        let m = Matches {
            host: vec!["*.example.com".into(), "api.test".into()],
            ..Matches::default()
        };
        let (t, _) = RouteTable::build(&[route("h", Priority::Normal, m)]);
        assert_eq!(find(&t, Some("a.example.com:8080"), "GET", "/"), Some("h"));
        assert_eq!(find(&t, Some("A.B.Example.COM."), "GET", "/"), Some("h"));
        assert_eq!(find(&t, Some("example.com"), "GET", "/"), None);
        assert_eq!(find(&t, Some("API.test:1"), "GET", "/"), Some("h"));
        assert_eq!(find(&t, None, "GET", "/"), None);
        assert_eq!(bare_host("[::1]:8080"), "[::1]");
        assert_eq!(bare_host("h.example."), "h.example");
    }

    #[test]
    fn a_route_without_conditions_matches_everything_and_shadows_the_rest() {
        let (t, shadowed) = RouteTable::build(&[
            route("all", Priority::Normal, Matches::default()),
            route("later", Priority::Low, prefix(&["/x"])),
        ]);
        assert_eq!(find(&t, Some("any"), "DELETE", "/whatever"), Some("all"));
        assert_eq!(shadowed.len(), 1);
        assert_eq!(shadowed[0].route, "later");
    }
}
