//! Jobs: the contract only for now.
