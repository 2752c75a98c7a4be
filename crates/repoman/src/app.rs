//! What every command receives: the environment snapshot, resolved paths, the printer, the clock,
//! the cancellation token and the global flags. Built once in `main`.

use repoman_core::registry::RegistryFile;
use repoman_core::settings::Settings;
use repoman_core::{Cancel, Clock, Env, Paths};
use repoman_state::{ActorRequest, State, StateOptions};

use crate::error::CliError;
use crate::ui::Ui;

/// The current directory, for commands that default to "the repo I am in". Unreadable (it was
/// deleted, or permissions changed) is the same failure in every command.
pub fn current_dir() -> Result<std::path::PathBuf, CliError> {
    std::env::current_dir().map_err(|e| {
        CliError::of_kind(
            repoman_core::ErrorKind::Failed,
            &e,
            Some("cd into an existing directory, or name the target with a flag".to_owned()),
        )
        .with_message("cannot read the current directory")
    })
}

/// The command context.
#[derive(Debug)]
pub struct App {
    pub env: Env,
    pub paths: Paths,
    pub ui: Ui,
    pub clock: Clock,
    pub cancel: Cancel,
    /// The effective settings, resolved once per invocation ([`App::settings`]).
    pub settings: std::sync::OnceLock<Settings>,
}

impl App {
    /// Load the registry (a missing file is an empty registry; nothing is created).
    /// The typed parse reports errors with file, line and column; the embedded JSON Schema
    /// (`repoman schema show repoman.toml/v1`) then checks what types alone cannot.
    pub fn registry(&self) -> Result<RegistryFile, CliError> {
        let file = RegistryFile::load(&self.paths.config_file)?;
        if file.exists() {
            repoman_state::schemas::validate_registry_file(&self.paths.config_file).map_err(
                |e| {
                    CliError::from(e).with_hint(format!("fix {}", self.paths.config_file.display()))
                },
            )?;
        }
        Ok(file)
    }

    /// The effective settings (defaults < repoman.toml < environment), resolved from the
    /// registry once per invocation; commands apply their own flags on top.
    pub fn settings(&self) -> Result<Settings, CliError> {
        if let Some(s) = self.settings.get() {
            return Ok(s.clone());
        }
        let reg = self.registry()?;
        let s = Settings::resolve(&reg.registry, &self.env);
        Ok(self.settings.get_or_init(|| s).clone())
    }

    /// Open the state for a command that records events (creates the state dir on first write).
    pub fn state(&self) -> Result<State, CliError> {
        Ok(State::open_with(
            &self.paths,
            &self.env,
            self.clock.clone(),
            StateOptions {
                actor: self.actor_request()?,
                // The installed `policy-rule` SNIFs join every decision (docs/snif.md).
                policy: repoman_snif::policy_extension(&self.paths),
                ..StateOptions::default()
            },
        )?)
    }

    /// Open the state for a read-only command: never creates a file or directory.
    pub fn state_read_only(&self) -> Result<State, CliError> {
        Ok(State::open_with(
            &self.paths,
            &self.env,
            self.clock.clone(),
            StateOptions {
                read_only: true,
                actor: self.actor_request()?,
                // Dry runs evaluate the gate on a read-only state: the same rules as a real run.
                policy: repoman_snif::policy_extension(&self.paths),
                ..StateOptions::default()
            },
        )?)
    }

    /// The actor to record: `REPOMAN_ACTOR` (`daemon` or `agent:PROJECT`, set by the daemon for
    /// the commands it runs on a caller's behalf), else the human (or CI) running repoman. No
    /// value names a human, so it cannot make repoman record someone else.
    pub fn actor_request(&self) -> Result<ActorRequest, CliError> {
        match self.env.get("REPOMAN_ACTOR") {
            None => Ok(ActorRequest::Derived),
            Some("daemon") => Ok(ActorRequest::Daemon),
            Some(v) => match v
                .strip_prefix("agent:")
                .map(repoman_core::ProjectName::parse)
            {
                Some(Ok(p)) => Ok(ActorRequest::Agent(p)),
                _ => Err(CliError::usage(format!(
                    "REPOMAN_ACTOR={v:?}: expected `daemon` or `agent:PROJECT`"
                ))
                .with_hint("unset REPOMAN_ACTOR; the daemon sets it for the commands it runs")),
            },
        }
    }

    /// Tell the user (on stderr) about repairs done while opening the state.
    pub fn report_repairs(&self, state: &State) {
        for w in state.warnings() {
            self.ui.warn(&w);
        }
        for r in state.repairs() {
            self.ui
                .warn(&format!("repaired the {}: {}", r.store, r.failed));
            if let Some(p) = &r.path {
                self.ui.hint(&format!("repair report: {}", p.display()));
            }
        }
    }

    /// Fail with exit 130 if Ctrl-C was pressed.
    pub fn check_cancelled(&self) -> Result<(), CliError> {
        if self.cancel.is_cancelled() {
            Err(CliError::interrupted())
        } else {
            Ok(())
        }
    }
}
