//! Command-line flags (spec §2.1). Flags become the highest config layer, each with its
//! flag name as the source so errors read `(flag --bind)`.

use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cli {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--check-config`.
    pub check_config: bool,
    /// `--version`.
    pub version: bool,
    /// `--help`.
    pub help: bool,
    /// Config overrides as (key path, raw value, flag).
    pub flags: Vec<(String, String, String)>,
    /// `tools <CMD> ...`.
    pub tools: Option<Vec<String>>,
}

/// Usage text for `--help`.
pub const USAGE: &str = "usage: svc-edge [--config FILE] [--check-config] [--bind ADDR] [--metrics ADDR]
                [--mode offline|live] [--amnesia[=BOOL]] [--pack PATH]... [--allow HOST[:PORT]]...
       svc-edge tools sample-pmtiles --out FILE | bench-data --out DIR | manifest DIR | pmtiles-info FILE
       svc-edge --version | --help";

/// Parses `args` (without the program name). `Err` is one line naming the bad flag.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli::default();
    let mut packs = Vec::new();
    let mut allow = Vec::new();
    let mut it = args.iter();
    if args.first().map(String::as_str) == Some("tools") {
        cli.tools = Some(args[1..].to_vec());
        return Ok(cli);
    }
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("flag {flag} needs a value"))
        };
        match name {
            "--config" => cli.config = Some(PathBuf::from(value("--config")?)),
            "--check-config" => cli.check_config = true,
            "--version" => cli.version = true,
            "--help" | "-h" => cli.help = true,
            "--bind" => cli
                .flags
                .push(("bind_addr".into(), value("--bind")?, "--bind".into())),
            "--metrics" => cli.flags.push((
                "metrics_addr".into(),
                value("--metrics")?,
                "--metrics".into(),
            )),
            "--mode" => cli
                .flags
                .push(("edge.mode".into(), value("--mode")?, "--mode".into())),
            "--amnesia" => cli.flags.push((
                "security.amnesia".into(),
                inline.clone().unwrap_or_else(|| "true".into()),
                "--amnesia".into(),
            )),
            "--pack" => packs.push(value("--pack")?),
            "--allow" => allow.push(value("--allow")?),
            other => return Err(format!("unknown flag {other:?}; see --help")),
        }
    }
    if !packs.is_empty() {
        cli.flags
            .push(("edge.packs".into(), packs.join(","), "--pack".into()));
    }
    if !allow.is_empty() {
        cli.flags
            .push(("edge.allow".into(), allow.join(","), "--allow".into()));
    }
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn flags_map_to_config_keys_and_repeatables_join() {
        let c = parse(&args(&[
            "--config",
            "c.toml",
            "--bind=127.0.0.1:0",
            "--amnesia",
            "--pack",
            "a",
            "--pack",
            "b",
        ]))
        .unwrap();
        assert_eq!(c.config, Some(PathBuf::from("c.toml")));
        assert!(
            c.flags
                .contains(&("bind_addr".into(), "127.0.0.1:0".into(), "--bind".into()))
        );
        assert!(
            c.flags
                .contains(&("security.amnesia".into(), "true".into(), "--amnesia".into()))
        );
        assert!(
            c.flags
                .contains(&("edge.packs".into(), "a,b".into(), "--pack".into()))
        );
        assert!(parse(&args(&["--nope"])).is_err());
        assert!(parse(&args(&["--bind"])).is_err());
        assert_eq!(
            parse(&args(&["tools", "manifest", "d"]))
                .unwrap()
                .tools
                .unwrap(),
            ["manifest", "d"]
        );
    }
}
