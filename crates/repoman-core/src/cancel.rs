//! Cooperative cancellation.
//!
//! The CLI turns SIGINT/SIGTERM into [`Cancel::cancel`]; long-running work (subprocess waits,
//! tree walks, hashing) polls [`Cancel::is_cancelled`] at safe points and stops without leaving
//! half-written state. A token is cheap to clone and every clone sees the same flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "please stop" flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A fresh token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every holder of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called on this token or a clone of it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The underlying flag, for signal handlers that need an `Arc<AtomicBool>`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}
