//! `serve --config FILE`: a TOML file whose keys are the long names of `serve`'s flags.
//!
//! ```toml
//! iface = "eth1"
//! addr = ["192.0.2.10"]      # repeatable flags take arrays
//! port = 8080
//! metrics = "127.0.0.1:9100"
//! ```
//!
//! The file is turned into the flags it stands for, added after the command line's, except
//! those the command line already gives: flags override the file. Each value goes through the
//! flag's own parser, so a file accepts exactly what the command line accepts; an unknown key
//! or a value of the wrong type is an error that names the key.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, CommandFactory};

use crate::Cli;

/// Returns `argv` with the settings of `serve --config FILE` appended, or unchanged when
/// there is no config file (or the command line is bad: the real parse then says why).
pub(crate) fn merge(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    let relaxed = Cli::command().mut_subcommand("serve", |s| s.mut_args(|a| a.required(false)));
    let Ok(matches) = relaxed.try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(argv);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    let given = |id: &str| serve.value_source(id) == Some(ValueSource::CommandLine);
    let mut argv = argv;
    argv.extend(flags_from(path, &text, &given)?);
    Ok(argv)
}

/// The `serve` flags that the TOML `text` (from `path`) stands for, leaving out those for which
/// `given(id)` says the command line has its own.
fn flags_from(path: &Path, text: &str, given: &dyn Fn(&str) -> bool) -> Result<Vec<OsString>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow!("{} is not valid TOML: {e}", path.display()))?;
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("the CLI has a serve command");
    let relaxed = serve.clone().mut_args(|a| a.required(false));
    let flags: Vec<&Arg> = serve
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != "config" && l != "help"))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        let in_file = || format!("{}: key `{key}`", path.display());
        let Some(arg) = flags.iter().find(|a| a.get_long() == Some(key.as_str())) else {
            let hint = closest(key, flags.iter().filter_map(|a| a.get_long()))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            bail!(
                "{}: unknown key `{key}`{hint}; the keys are the long flags of `xdptcp serve --help`",
                path.display()
            );
        };
        if given(arg.get_id().as_str()) {
            continue;
        }
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) if repeatable => items.iter().collect(),
            toml::Value::Array(_) => bail!("{}: takes one value, not an array", in_file()),
            _ if repeatable => bail!("{}: takes an array, e.g. {key} = [\"...\"]", in_file()),
            v => vec![v],
        };
        for v in values {
            let text = match v {
                toml::Value::Boolean(b) if switch => {
                    if *b {
                        out.push(format!("--{key}").into());
                    }
                    continue;
                }
                _ if switch => bail!("{}: takes true or false", in_file()),
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => bail!(
                    "{}: takes a {}, not a {}",
                    in_file(),
                    arg.get_value_names()
                        .and_then(|n| n.first())
                        .map_or("value".to_string(), |n| n.to_string()),
                    other.type_str()
                ),
            };
            // The flag's own parser judges the value, as it would on the command line.
            let flag = format!("--{key}={text}");
            relaxed
                .clone()
                .try_get_matches_from([OsStr::new("serve"), OsStr::new(&flag)])
                .map_err(|e| anyhow!("{}: {}", in_file(), clap_reason(&e)))?;
            out.push(flag.into());
        }
    }
    Ok(out)
}

/// What a clap value error says, without its usage text.
fn clap_reason(e: &clap::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// The known key nearest to a mistyped one, if it is close (edit distance at most 2).
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn write(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("xdptcp-config-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    /// The error of `serve --config FILE` with `text` in FILE.
    fn merge_error(name: &str, text: &str) -> String {
        let path = write(name, text);
        let argv = args(&["xdptcp", "serve", "--config", path.to_str().unwrap()]);
        let err = merge(argv).unwrap_err();
        let _ = std::fs::remove_file(&path);
        format!("{err:#}")
    }

    fn serve_args(argv: Vec<OsString>) -> crate::serve::ServeArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            crate::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_file_supplies_what_the_command_line_does_not_and_flags_win() {
        let path = write(
            "merge",
            "iface = \"veth9\"\nport = 8080\naddr = [\"10.0.0.1\", \"10.0.0.2\"]\nduration = 30\n\
             header-timeout = 3\nkeepalive-timeout = 0\nnagle = true\n",
        );
        let p = path.to_str().unwrap();
        let merged = merge(args(&["xdptcp", "serve", "--config", p, "--port", "9090"])).unwrap();
        let text = format!("{:?}", serve_args(merged));
        let _ = std::fs::remove_file(&path);
        assert!(text.contains("iface: \"veth9\""), "{text}");
        assert!(text.contains("port: 9090"), "the flag wins: {text}");
        assert!(text.contains("addrs: [10.0.0.1, 10.0.0.2]"), "{text}");
        assert!(text.contains("duration: Some(30)"), "{text}");
        assert!(text.contains("header_timeout: 3,"), "{text}");
        assert!(text.contains("keepalive_timeout: 0,"), "{text}");
        assert!(text.contains("nagle: true,"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_named_with_the_nearest_known_one() {
        let err = merge_error("unknown", "iface = \"x\"\nprot = 8080\n");
        assert!(err.contains("unknown key `prot`"), "{err}");
        assert!(err.contains("did you mean `port`?"), "{err}");
    }

    #[test]
    fn a_mistyped_value_is_an_error_naming_the_key() {
        for (text, want) in [
            ("port = \"eighty\"", "key `port`: invalid value"),
            ("port = 70000", "key `port`: invalid value"),
            ("port = [1, 2]", "key `port`: takes one value"),
            ("addr = \"10.0.0.1\"", "key `addr`: takes an array"),
            ("app = \"ftp\"", "key `app`: invalid value"),
            ("duration = true", "key `duration`: takes a"),
            ("fastopen = 0", "key `fastopen`: invalid value"),
        ] {
            let err = merge_error("mistyped", text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_missing_or_broken_file_is_an_error_naming_it() {
        let argv = args(&["xdptcp", "serve", "--config", "/nonexistent/x.toml"]);
        let err = format!("{:#}", merge(argv).unwrap_err());
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
        let err = merge_error("broken", "port = = 1");
        assert!(err.contains("is not valid TOML"), "{err}");
    }

    #[test]
    fn the_example_config_in_examples_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/xdptcp.toml");
        let merged = merge(args(&[
            "xdptcp",
            "serve",
            "--config",
            path.to_str().unwrap(),
        ]))
        .unwrap();
        let a = serve_args(merged);
        assert!(a.config.is_some());
        let text = format!("{a:?}");
        assert!(text.contains("fastopen: Some(256)"), "{text}");
    }

    #[test]
    fn without_a_config_the_command_line_is_untouched() {
        let argv = args(&["xdptcp", "serve", "--iface", "x", "--port", "1"]);
        assert_eq!(merge(argv.clone()).unwrap(), argv);
        let bad = args(&["xdptcp", "serve", "--port", "eighty"]);
        assert_eq!(
            merge(bad.clone()).unwrap(),
            bad,
            "the real parse reports it"
        );
    }
}
