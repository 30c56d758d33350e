//! Service contracts.
