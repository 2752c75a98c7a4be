//! Integration tests against the real Incus daemon (see `scripts/incus-lab`).
//!
//! Each test gets its own Incus project ([`TestProject`]) that is deleted when the test ends, even
//! when it panics. Without a reachable daemon every test prints `SKIPPED: ...` and returns, unless
//! `REPOMAN_TEST_INCUS=require` is set, in which case it fails.

mod errors;
mod exec_files;
mod exec_stream;
mod instances;
mod mounts;
mod projects;
mod server;

use repoman_incus::testlab::TEST_IMAGE_ALIAS;
use repoman_incus::{ImageSource, InstanceSpec};

/// Connect to the lab or return from the test (after the loud skip message).
macro_rules! lab {
    () => {
        match repoman_incus::testlab::TestLab::connect() {
            Some(lab) => lab,
            None => return,
        }
    };
}
pub(crate) use lab;

/// A container spec from the busybox test image.
pub fn busybox(name: &str) -> InstanceSpec {
    InstanceSpec::new(name, ImageSource::alias(TEST_IMAGE_ALIAS))
}
