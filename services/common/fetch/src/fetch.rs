//! Reading a file from an http(s) URL: every address connected to is checked first (the
//! resolver refuses hosts with a refused address, redirects are followed here, one at a time,
//! with the same checks), the body streams, gzip is inflated, and sizes are bounded.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use crate::address::PrivateAccess;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// How long resolving a host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How imports reach remote files.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Non-public addresses imports may connect to anyway (none by default).
    pub private_access: PrivateAccess,
    /// Largest file read, after decompression.
    pub max_bytes: u64,
    /// Largest Parquet file: it is read whole into memory, since its rows cannot be cut apart.
    pub max_parquet_bytes: u64,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the server may stay silent while sending.
    pub read_timeout: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            private_access: PrivateAccess::Refused,
            max_bytes: 32 << 30,
            max_parquet_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a remote file could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Not a URL, or not http(s).
    #[error("{0}")]
    InvalidUrl(String),
    /// The host is, or resolves to, an address imports may not reach.
    #[error(
        "The URL's host {host} resolves to {address}, a private or reserved address that imports may not reach"
    )]
    Refused { host: String, address: IpAddr },
    /// The host does not resolve.
    #[error("Cannot resolve the URL's host {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// More redirects than allowed, or a redirect without a usable Location.
    #[error("{0}")]
    Redirect(String),
    /// The server answered with an error status.
    #[error("The URL answered HTTP {status}")]
    Status { status: u16 },
    /// Connecting or reading failed.
    #[error("Cannot read the URL: {0}")]
    Network(String),
    /// The body is not valid gzip.
    #[error("The file is not valid gzip: {0}")]
    Gzip(String),
    /// The file is larger than allowed.
    #[error("The file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

impl FetchError {
    /// Whether the caller's request is at fault (a bad or refused URL) rather than the network
    /// or the remote server.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            FetchError::InvalidUrl(_) | FetchError::Refused { .. } | FetchError::Redirect(_)
        )
    }
}

/// Reads remote files under a [`FetchConfig`].
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    config: Arc<FetchConfig>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.config)
            .finish()
    }
}

impl Fetcher {
    /// A fetcher; fails only when the TLS stack cannot start.
    pub fn new(config: FetchConfig) -> Result<Fetcher, FetchError> {
        let config = Arc::new(config);
        let client = reqwest::Client::builder()
            // Redirects are followed by `open`, which checks each target first.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf to addresses never checked.
            .no_proxy()
            // Bodies are inflated by `Download::into_body`, so progress counts the bytes sent.
            .no_gzip()
            .dns_resolver(Arc::new(CheckedResolver {
                access: config.private_access.clone(),
            }))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(concat!("roost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network(e.to_string()))?;
        Ok(Fetcher { client, config })
    }

    /// The settings.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Checks a URL before accepting it: an http(s) URL whose host is not refused. A host that
    /// does not resolve now passes (the import fails later if it still does not).
    pub async fn check(&self, url: &str) -> Result<Url, FetchError> {
        let url = parse(url)?;
        match self.check_host(&url).await {
            Ok(()) | Err(FetchError::Resolve { .. }) => Ok(url),
            Err(error) => Err(error),
        }
    }

    /// Starts reading a URL, following redirects (each target checked before it is connected
    /// to); answers once the final response's headers are in.
    pub async fn open(&self, url: &str) -> Result<Download, FetchError> {
        let mut url = parse(url)?;
        for _ in 0..=MAX_REDIRECTS {
            self.check_host(&url).await?;
            let response = self
                .client
                .get(url.clone())
                .header(ACCEPT_ENCODING, "gzip")
                .send()
                .await
                .map_err(request_error)?;
            let status = response.status();
            if matches!(
                status,
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            ) {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        FetchError::Redirect(format!(
                            "The URL redirects (HTTP {}) without a Location",
                            status.as_u16()
                        ))
                    })?;
                let next = url.join(location).map_err(|_| {
                    FetchError::Redirect(format!("The URL redirects to an invalid URL: {location}"))
                })?;
                url = checked_scheme(next)?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status {
                    status: status.as_u16(),
                });
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            let encoding = header(CONTENT_ENCODING);
            let kind = header(CONTENT_TYPE);
            let gzip = encoding.contains("gzip")
                || url.path().to_ascii_lowercase().ends_with(".gz")
                || kind.starts_with("application/gzip")
                || kind.starts_with("application/x-gzip");
            return Ok(Download {
                content_length: response.content_length(),
                url,
                gzip,
                response,
            });
        }
        Err(FetchError::Redirect(format!(
            "The URL redirects more than {MAX_REDIRECTS} times"
        )))
    }

    /// Refuses a host that is, or resolves to, an address the config does not permit.
    async fn check_host(&self, url: &Url) -> Result<(), FetchError> {
        let refused = |address| FetchError::Refused {
            host: url.host_str().unwrap_or_default().to_string(),
            address,
        };
        match url.host() {
            Some(url::Host::Ipv4(v4)) => self
                .permits(IpAddr::V4(v4))
                .then_some(())
                .ok_or_else(|| refused(IpAddr::V4(v4))),
            Some(url::Host::Ipv6(v6)) => self
                .permits(IpAddr::V6(v6))
                .then_some(())
                .ok_or_else(|| refused(IpAddr::V6(v6))),
            Some(url::Host::Domain(domain)) => {
                resolve(domain, &self.config.private_access).await?;
                Ok(())
            }
            None => Err(FetchError::InvalidUrl("The URL has no host".into())),
        }
    }

    fn permits(&self, address: IpAddr) -> bool {
        self.config.private_access.permits(address)
    }
}

/// An http(s) URL.
fn parse(text: &str) -> Result<Url, FetchError> {
    let url = Url::parse(text.trim())
        .map_err(|e| FetchError::InvalidUrl(format!("Invalid URL '{text}': {e}")))?;
    checked_scheme(url)
}

fn checked_scheme(url: Url) -> Result<Url, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl(format!(
            "Only http and https URLs can be imported, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::InvalidUrl("The URL has no host".into()));
    }
    Ok(url)
}

/// The addresses of `host`, refusing it when any is not permitted (a host with one public and
/// one private address could be steered to either).
async fn resolve(host: &str, access: &PrivateAccess) -> Result<Vec<SocketAddr>, FetchError> {
    let resolve_error = |reason: String| FetchError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addresses: Vec<SocketAddr> =
        tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
            .await
            .map_err(|_| resolve_error("timed out".into()))?
            .map_err(|e| resolve_error(e.to_string()))?
            .collect();
    if addresses.is_empty() {
        return Err(resolve_error("no address".into()));
    }
    if let Some(refused) = addresses.iter().find(|a| !access.permits(a.ip())) {
        return Err(FetchError::Refused {
            host: host.to_string(),
            address: refused.ip(),
        });
    }
    Ok(addresses)
}

/// The resolver of the HTTP client: the addresses it connects to are the ones checked, so a
/// host that resolves differently between the check and the connection gains nothing.
struct CheckedResolver {
    access: PrivateAccess,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let access = self.access.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = resolve(&host, &access).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A client error as a [`FetchError`], keeping a refusal by the resolver as it was.
fn request_error(error: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(fetch) = cause.downcast_ref::<FetchError>() {
            return fetch.clone();
        }
        source = cause.source();
    }
    FetchError::Network(describe(&error))
}

/// A client error with its causes, which say what actually failed (refused, timed out, ...).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A response whose body is still to be read.
#[derive(Debug)]
pub struct Download {
    /// The final URL, after redirects.
    pub url: Url,
    /// The length the server announced (of the bytes sent, compressed or not).
    pub content_length: Option<u64>,
    /// Whether the body is gzip (by Content-Encoding, Content-Type or a `.gz` path).
    pub gzip: bool,
    response: reqwest::Response,
}

type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

impl Download {
    /// The body, inflated when gzip, failing past `limit` bytes.
    pub fn into_body(self, limit: u64) -> Body {
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let raw = self
            .response
            .bytes_stream()
            .inspect_ok(move |piece| {
                counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
            })
            .map_err(std::io::Error::other);
        let stream: ByteStream = if self.gzip {
            let reader = tokio_util::io::StreamReader::new(raw);
            let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(reader);
            decoder.multiple_members(true);
            Box::pin(tokio_util::io::ReaderStream::with_capacity(
                decoder,
                256 * 1024,
            ))
        } else {
            Box::pin(raw)
        };
        Body {
            stream,
            received,
            read: 0,
            limit,
        }
    }
}

/// A body being read.
pub struct Body {
    stream: ByteStream,
    received: Arc<AtomicU64>,
    read: u64,
    limit: u64,
}

impl Body {
    /// The next bytes, None at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, FetchError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(piece)) => {
                self.read += piece.len() as u64;
                if self.read > self.limit {
                    return Err(FetchError::TooLarge { limit: self.limit });
                }
                Ok(Some(piece))
            }
            Some(Err(error)) => Err(body_error(error)),
        }
    }

    /// Bytes received from the server so far (compressed when the body is).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes of file read so far (decompressed).
    pub fn read(&self) -> u64 {
        self.read
    }

    /// Reads at least `wanted` bytes (fewer only when the body ends first); true when the body
    /// ended.
    pub async fn read_at_least(&mut self, wanted: usize) -> Result<(Bytes, bool), FetchError> {
        let mut data = BytesMut::new();
        while data.len() < wanted {
            match self.next().await? {
                Some(piece) => data.extend_from_slice(&piece),
                None => return Ok((data.freeze(), true)),
            }
        }
        Ok((data.freeze(), false))
    }
}

fn body_error(error: std::io::Error) -> FetchError {
    match error.get_ref() {
        Some(inner) if inner.is::<reqwest::Error>() => FetchError::Network(describe(inner)),
        _ => FetchError::Gzip(error.to_string()),
    }
}
