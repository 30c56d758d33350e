//! Remote files for imports and analysis: reading an http(s) URL with every address checked
//! before it is connected to (private, loopback, link-local and other reserved addresses are
//! refused unless the operator allows them, on each redirect too), streaming and inflating the
//! body within a size limit, recognising the file format, and cutting rows into chunks that
//! decode on their own. Shared by the gateway (checks, analysis) and the jobs (imports); knows
//! nothing of services.

pub mod address;
pub mod chunks;
mod fetch;
mod format;

pub use address::PrivateAccess;
pub use chunks::{RowChunker, RowFormat};
pub use fetch::{Body, Download, FetchConfig, FetchError, Fetcher};
pub use format::FileFormat;
