//! Embeds the git revision in `repoman --version` when built from a git checkout.
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let version = match (rev.is_empty(), dirty) {
        (true, _) => env!("CARGO_PKG_VERSION").to_owned(),
        (false, false) => format!("{} ({rev})", env!("CARGO_PKG_VERSION")),
        (false, true) => format!("{} ({rev}, modified)", env!("CARGO_PKG_VERSION")),
    };
    println!("cargo:rustc-env=REPOMAN_LONG_VERSION={version}");
    // Re-run when HEAD moves; the git dir is two levels up from this crate.
    for p in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
