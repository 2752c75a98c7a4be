//! `repoman completions <shell>`: print a completion script for bash, zsh, fish, elvish or
//! PowerShell.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::app::App;
use crate::cli::Cli;
use crate::error::{CliError, Exit};

/// Print a shell completion script on stdout.
///
/// Examples:
///   repoman completions bash > ~/.local/share/bash-completion/completions/repoman
///   repoman completions zsh > ~/.zfunc/_repoman
///   repoman completions fish > ~/.config/fish/completions/repoman.fish
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(_app: &App, args: CompletionsArgs) -> Result<Exit, CliError> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "repoman", &mut buf);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(&buf).and_then(|_| out.flush()) {
        Ok(()) => Ok(Exit::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(e.into()),
    }
}
