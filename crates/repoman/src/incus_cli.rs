//! How the CLI runs the `incus` client for interactive sessions (`shell`, `exec`).

/// The global flags repoman gives the `incus` CLI. `--force-local`: talk to the socket repoman
/// resolved (passed as `INCUS_SOCKET`), never the user's default remote, and never print the
/// client's first-run banner ("To start your first container, try: ..."), which the CLI prints
/// when the user has no `~/.config/incus` (`INCUS_CONF`) yet.
pub(crate) const INCUS_CLI_FLAGS: [&str; 1] = ["--force-local"];
