//! Rules that span blocks (spec SEN-R07, SEN-R08, §2.4 listeners): unique upstream,
//! route and listener names; every route's upstream defined; no two listeners (main,
//! extra, metrics) on the same socket address.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::model::*;
use super::parse::{Loc, Locations};
use super::reader::Reader;
use super::rules;

/// Runs every cross-block rule, reporting into `r`.
pub(crate) fn cross_checks(r: &mut Reader, config: &Config, locs: &Locations) {
    unique(
        r,
        "upstream",
        config.upstreams.iter().map(|u| u.name.as_str()),
        locs.upstreams.iter().map(|l| l.name.as_ref()),
    );
    unique(
        r,
        "route",
        config.routes.iter().map(|x| x.name.as_str()),
        locs.routes.iter().map(|l| l.name.as_ref()),
    );
    unique(
        r,
        "listener",
        config.listeners.iter().map(|l| l.name.as_str()),
        locs.listeners.iter().map(|l| l.name.as_ref()),
    );
    references(r, config, locs);
    for (loc, why) in address_clashes(config, locs) {
        r.error_at(loc.pos, &loc.path, why);
    }
}

/// Reports each name seen before, naming both lines.
fn unique<'a>(
    r: &mut Reader,
    kind: &str,
    names: impl Iterator<Item = &'a str>,
    locs: impl Iterator<Item = Option<&'a Loc>>,
) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (name, loc) in names.zip(locs) {
        let Some(loc) = loc else { continue };
        match first.get(name) {
            Some(line) => r.error_at(
                loc.pos,
                &loc.path,
                format!(
                    "duplicate {kind} name {name:?} (lines {line} and {})",
                    loc.pos.line
                ),
            ),
            None => {
                first.insert(name, loc.pos.line);
            }
        }
    }
}

/// Every `route > upstream` names a defined upstream (static ones included).
fn references(r: &mut Reader, config: &Config, locs: &Locations) {
    for (route, loc) in config.routes.iter().zip(&locs.routes) {
        let Some(loc) = &loc.upstream else { continue };
        if !config.upstreams.iter().any(|u| u.name == route.upstream) {
            let known: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
            r.error_at(
                loc.pos,
                &loc.path,
                format!(
                    "upstream {:?} is not defined (defined: {})",
                    route.upstream,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
}

/// Listener addresses (main, extra listeners, metrics when enabled) that take a socket
/// an earlier one already has. Each clash is reported at the later address.
pub(crate) fn address_clashes(config: &Config, locs: &Locations) -> Vec<(Loc, String)> {
    let mut written: Vec<(String, &str, Option<&Loc>)> = vec![(
        "server.listen".into(),
        &config.server.listen,
        locs.listen.as_ref(),
    )];
    for (i, l) in config.listeners.iter().enumerate() {
        let loc = locs.listeners.get(i).and_then(|ll| ll.address.as_ref());
        written.push((format!("listener {:?}", l.name), &l.address, loc));
    }
    if config.metrics.enabled {
        written.push((
            "metrics.address".into(),
            &config.metrics.address,
            locs.metrics_address.as_ref(),
        ));
    }
    let all: Vec<(String, SocketAddr, Option<&Loc>)> = written
        .into_iter()
        .filter_map(|(what, addr, loc)| addr.parse().ok().map(|a| (what, a, loc)))
        .collect();
    let mut out = Vec::new();
    for (i, (what, addr, loc)) in all.iter().enumerate() {
        let earlier = all[..i]
            .iter()
            .find(|(_, earlier, _)| rules::addrs_clash(*earlier, *addr));
        if let Some((other, _, other_loc)) = earlier {
            // A clash with a default address has no line of its own: blame the written one.
            if let Some(loc) = loc.or(*other_loc) {
                out.push((
                    loc.clone(),
                    format!(
                        "address {addr} of {what} clashes with {other}; listener addresses must be unique"
                    ),
                ));
            }
        }
    }
    out
}
