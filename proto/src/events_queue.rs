//! The contract of the Events API's queue in distributed mode, shared by the gateway (producer)
//! and ingest (consumer): a queued batch is an encoded [`IngestDataRequest`] stored under its
//! batch id; once a batch is settled, ingest announces a "done" fact for the gateways waiting on
//! it (`wait=true`): an encoded [`IngestDataResponse`] on `<prefix>.<batch>.stored`, or an
//! encoded [`Status`] on `<prefix>.<batch>.failed` when the batch can never be stored.
//!
//! [`IngestDataRequest`]: crate::ingest::v1::IngestDataRequest
//! [`IngestDataResponse`]: crate::ingest::v1::IngestDataResponse
//! [`Status`]: crate::common::v1::Status

/// The work queue accepted batches wait on.
pub const QUEUE: &str = "events";

/// The last subject token of a stored batch's fact.
pub const STORED: &str = "stored";

/// The last subject token of a failed batch's fact.
pub const FAILED: &str = "failed";

/// The subject of a settled batch's fact: `<done_prefix>.<batch_id>.<outcome>`.
pub fn done_subject(done_prefix: &str, batch_id: &str, outcome: &str) -> String {
    format!("{done_prefix}.{batch_id}.{outcome}")
}

/// The pattern a waiting gateway subscribes to: either outcome of one batch.
pub fn done_pattern(done_prefix: &str, batch_id: &str) -> String {
    format!("{done_prefix}.{batch_id}.*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_has_one_pattern_that_matches_both_outcomes() {
        let prefix = "roost.rpc.events.done";
        assert_eq!(
            done_subject(prefix, "b-1", STORED),
            "roost.rpc.events.done.b-1.stored"
        );
        assert_eq!(done_pattern(prefix, "b-1"), "roost.rpc.events.done.b-1.*");
        let failed = done_subject(prefix, "b-1", FAILED);
        assert!(failed.starts_with(done_pattern(prefix, "b-1").trim_end_matches('*')));
    }
}
