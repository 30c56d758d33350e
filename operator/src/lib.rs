//! The Kubernetes operator (Workspace and DataSource CRDs); built in a later issue.
