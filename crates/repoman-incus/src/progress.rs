//! The bridge from the client's [`Reporter`] (running Incus operations) to the one progress
//! interface every domain reports through ([`repoman_core::Progress`]).
//!
//! While an operation runs, Incus' progress text (`download_progress: "rootfs: 45% (12.3MB/s)"`)
//! becomes [`Progress::detail`]; when Incus also says how many bytes are done
//! (`metadata.progress.processed`), the work is measured in [`Unit::Bytes`] and each report moves
//! [`Progress::position`]. Work is begun on the first report of a stage and ended when the stage
//! changes or the wait ends, so a face shows one bar or spinner per download or unpack.

use std::sync::{Arc, Mutex};

use repoman_core::{Progress, Unit};

use crate::api::Operation;
use crate::client::Reporter;

/// A [`Reporter`] that forwards to a [`Progress`].
pub struct ProgressReporter {
    progress: Arc<dyn Progress>,
    /// The stage whose work is begun, if any.
    begun: Mutex<Option<String>>,
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReporter").finish_non_exhaustive()
    }
}

impl ProgressReporter {
    pub fn new(progress: Arc<dyn Progress>) -> Arc<ProgressReporter> {
        Arc::new(ProgressReporter {
            progress,
            begun: Mutex::new(None),
        })
    }

    fn end_stage(&self, begun: &mut Option<String>) {
        if begun.take().is_some() {
            self.progress.end();
        }
    }
}

impl Reporter for ProgressReporter {
    fn operation_running(&self, op: &Operation) {
        let text = op.progress();
        let data = op.progress_data();
        if text.is_none() && data.is_none() {
            return;
        }
        let Ok(mut begun) = self.begun.lock() else {
            return;
        };
        let stage = data
            .as_ref()
            .map(|d| d.stage.clone())
            .or_else(|| text.and_then(|t| t.split(':').next()).map(str::to_owned))
            .unwrap_or_default();
        if begun.as_deref() != Some(stage.as_str()) {
            self.end_stage(&mut begun);
            let unit = if data.as_ref().is_some_and(|d| d.processed.is_some()) {
                Unit::Bytes
            } else {
                Unit::Items
            };
            let label = if op.description.is_empty() {
                stage.clone()
            } else {
                op.description.clone()
            };
            self.progress.begin(&label, None, unit);
            *begun = Some(stage);
        }
        if let Some(done) = data.and_then(|d| d.processed) {
            self.progress.position(done);
        }
        if let Some(t) = text {
            self.progress.detail(t);
        }
    }

    fn operation_finished(&self, _op: &Operation) {
        if let Ok(mut begun) = self.begun.lock() {
            self.end_stage(&mut begun);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repoman_core::progress::{Call, Recorder};

    fn op(metadata: &str) -> Operation {
        serde_json::from_str(&format!(
            r#"{{"description":"Creating instance","status_code":103,"metadata":{metadata}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn download_text_becomes_detail_and_processed_bytes_move_the_position() {
        let rec = Arc::new(Recorder::default());
        let r = ProgressReporter::new(rec.clone());
        // No progress in the metadata: nothing is reported.
        r.operation_running(&op("{}"));
        r.operation_running(&op(
            r#"{"download_progress":"rootfs: 1.00MB (1.00MB/s)","progress":{"stage":"download","processed":"1000000","speed":"1000000"}}"#,
        ));
        r.operation_running(&op(
            r#"{"download_progress":"rootfs: 3.00MB (1.50MB/s)","progress":{"stage":"download","processed":"3000000","speed":"1500000"}}"#,
        ));
        // A new stage (percent only, no bytes) ends the first and begins a count-less one.
        r.operation_running(&op(
            r#"{"create_instance_from_image_unpack_progress":"Unpack: 40%","progress":{"stage":"create_instance_from_image_unpack","percent":"40"}}"#,
        ));
        r.operation_finished(&op("{}"));
        // A second finish (another operation's wait) ends nothing more.
        r.operation_finished(&op("{}"));
        assert_eq!(
            rec.calls(),
            [
                Call::Begin("Creating instance".into(), None, Unit::Bytes),
                Call::Position(1_000_000),
                Call::Detail("rootfs: 1.00MB (1.00MB/s)".into()),
                Call::Position(3_000_000),
                Call::Detail("rootfs: 3.00MB (1.50MB/s)".into()),
                Call::End,
                Call::Begin("Creating instance".into(), None, Unit::Items),
                Call::Detail("Unpack: 40%".into()),
                Call::End,
            ]
        );
    }
}
