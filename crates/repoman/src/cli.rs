//! The clap definition of the command line: global flags and the subcommand list.

use clap::{Args, Parser};

use crate::commands::Command;
use crate::ui::ColorChoice;

/// repoman: sandboxes, provable backups and state integrity for your repositories.
///
/// Every project gets its own Incus container with the repository bind-mounted; working copies
/// are mirrored to a backup share with guards and content manifests; every change is an event in
/// a hash-chained log that `repoman explain` and `repoman doctor` read.
///
/// Commands prompt for missing arguments on a terminal, and take flags (and `--json`) in scripts.
/// Exit codes: 0 ok, 1 failed or problems found, 2 usage/config error, 3 blocked by policy or a
/// conflict, 4 environment unavailable (Incus down, backup not mounted), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "repoman", version = env!("REPOMAN_LONG_VERSION"), propagate_version = true)]
#[command(max_term_width = 100, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print machine-readable JSON on stdout (stable shapes, see docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Only print data and errors; no progress or status messages.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Do not draw progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Answer yes to every confirmation.
    #[arg(long, short, global = true)]
    pub yes: bool,
    /// Never prompt; fail when a value is missing instead.
    #[arg(long, global = true)]
    pub no_input: bool,
    /// Format of diagnostic logs on stderr (level set by REPOMAN_LOG).
    #[arg(long, global = true, value_enum, env = "REPOMAN_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// clap value parser for `--jobs N`: a whole number of at least 1 (0 workers would do nothing).
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => {
            Err("0 would run nothing; use 1 for one at a time, or more to run in parallel".into())
        }
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number; use 1 or more")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `repoman ...` line in the README's and docs' shell blocks must parse: examples that
    /// drift from the real flags are caught here (their behaviour is tested per command).
    #[test]
    fn documented_examples_parse() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut checked = 0;
        for doc in [
            "README.md",
            "docs/backup.md",
            "docs/state.md",
            "docs/realms.md",
            "docs/tools.md",
        ] {
            let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
            let mut in_sh = false;
            for line in text.lines() {
                let t = line.trim_start();
                if t.starts_with("```") {
                    in_sh = t == "```sh";
                    continue;
                }
                if !in_sh || !t.starts_with("repoman ") {
                    continue;
                }
                // Drop a trailing comment, redirection or pipe: only repoman's own argv is checked.
                let cmd = [" #", " >", " 2>", " |", " &&", " ;"]
                    .iter()
                    .fold(t, |c, sep| c.split(sep).next().unwrap_or(c))
                    .trim();
                let argv: Vec<&str> = cmd.split_whitespace().collect();
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!("{doc}: `{cmd}` does not parse:\n{e}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "found only {checked} examples");
    }
}
