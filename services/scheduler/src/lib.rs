//! Scheduler: the contract only for now.
