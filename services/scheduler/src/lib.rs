//! The scheduler: cron schedules for copy and sink pipes, one run per tick cluster-wide.
//!
//! Its contract is `roost_proto::SchedulerService` (`proto/proto/scheduler.proto`); the
//! implementation comes with the copy and sink pipes issue.

pub use roost_proto::{SchedulerClient, SchedulerService};
