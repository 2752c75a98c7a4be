//! How a policy decision is shown, the same for every domain (sandboxes, backups, realms,
//! tools): one line per reason with its rule. A block is an error
//! ([`crate::error::CliError::blocked`]).

use repoman_state::Verdict;

/// One [`Verdict::line`] per verdict.
pub fn reason_lines(verdicts: &[Verdict]) -> Vec<String> {
    verdicts.iter().map(Verdict::line).collect()
}
