//! Message bus traits.
