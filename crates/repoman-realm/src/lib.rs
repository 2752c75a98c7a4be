//! repoman realms.
pub mod compat;
