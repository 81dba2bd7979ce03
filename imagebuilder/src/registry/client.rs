//! The registry pull's network edge, the only part of [`super`] that does I/O: GETs against one repository of one
//! registry, with anonymous Bearer tokens, redirects handled by hand, bounded retries, and digest/size checks on
//! every body.
//!
//! Redirects are followed here rather than by reqwest so that the rule is explicit: `Authorization` goes only to
//! the registry's own origin (scheme, host and port), never to a host a request redirects to (registry.k8s.io
//! sends manifest requests to Artifact Registry and blobs to S3; Docker Hub sends blobs to a CDN), and a 401 from
//! such a host is an error rather than a reason to send credentials there; `Accept` goes to every hop. A redirect
//! from https to http is refused unless the pull is plain http anyway. The token is kept for the pull's
//! later requests and fetched again once if the registry answers 401 to it (tokens expire). The token's value is
//! never logged nor put into an error; URLs in errors and logs lose their query (signed storage URLs carry
//! credentials there).

use super::challenge::{Challenge, parse_www_authenticate};
use super::document::{Descriptor, MANIFEST_ACCEPT};
use super::{ImageRef, MAX_DOCUMENT_BYTES, PullOptions, RegistryError, Subject};
use crate::checksum::{ChecksumAlgo, Hasher, sha256_hex};
use crate::fetch::error_chain;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// Delay before the second attempt; doubles each time up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8);
/// A `Retry-After` longer than this is not waited for: the request fails at once.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: u32 = 5;
/// Token answers are a few KiB.
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// One pull's connection to one repository.
pub(super) struct Session {
    client: reqwest::Client,
    /// `scheme://api-host/`.
    base: Url,
    repository: String,
    pin: String,
    opts: PullOptions,
    token: Mutex<Option<String>>,
}

/// How one attempt failed.
enum Failure {
    Retry {
        error: RegistryError,
        after: Option<Duration>,
    },
    Fatal(RegistryError),
}

fn retry(error: RegistryError) -> Failure {
    Failure::Retry { error, after: None }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

impl Session {
    pub(super) fn new(
        reference: &ImageRef,
        pin: &str,
        opts: &PullOptions,
    ) -> Result<Session, RegistryError> {
        crate::install_crypto_provider();
        let scheme = if opts.plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", reference.api_host())).map_err(|e| {
            RegistryError::BadReference {
                reference: reference.to_string(),
                reason: format!("the registry host does not make a URL: {e}"),
            }
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("k8s-imagebuilder/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = client.map_err(|e| {
            let registry = base.as_str().trim_end_matches('/').to_string();
            RegistryError::Connect {
                at: Subject {
                    registry: registry.clone(),
                    repository: reference.repository.clone(),
                    object: "manifest".to_string(),
                    digest: pin.to_string(),
                    pin: pin.to_string(),
                },
                url: registry,
                reason: format!("cannot set up the HTTP client: {e}"),
                attempts: 0,
            }
        })?;
        let session = Session {
            client,
            base,
            repository: reference.repository.clone(),
            pin: pin.to_string(),
            opts: opts.clone(),
            token: Mutex::new(None),
        };
        Ok(session)
    }

    /// The registry's API URL as errors name it, `https://registry.k8s.io`.
    fn registry(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    pub(super) fn subject(&self, object: &str, digest: &str) -> Subject {
        Subject {
            registry: self.registry(),
            repository: self.repository.clone(),
            object: object.to_string(),
            digest: digest.to_string(),
            pin: self.pin.clone(),
        }
    }

    fn api_url(&self, kind: &str, digest: &str, at: &Subject) -> Result<Url, RegistryError> {
        // The repository and the digest are checked (reference.rs, document.rs): nothing here needs escaping.
        let text = format!("{}v2/{}/{kind}/{digest}", self.base, self.repository);
        Url::parse(&text).map_err(|e| RegistryError::BadDocument {
            at: at.clone(),
            reason: format!("{text} is not a URL: {e}"),
        })
    }

    /// GETs a manifest or index by digest, bounded by [`MAX_DOCUMENT_BYTES`]; checks its digest, and its size if
    /// a descriptor gave one. Returns the bytes and the response's `Content-Type`.
    pub(super) async fn fetch_document(
        &self,
        digest: &str,
        expected_size: Option<u64>,
        at: &Subject,
    ) -> Result<(Vec<u8>, Option<String>), RegistryError> {
        let url = self.api_url("manifests", digest, at)?;
        let (bytes, content_type) = self
            .retrying(|attempt| self.document_once(&url, at, attempt))
            .await?;
        let actual = format!("sha256:{}", sha256_hex(&bytes));
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                at: at.clone(),
                url: redact(&url),
                actual,
            });
        }
        if let Some(size) = expected_size
            && bytes.len() as u64 != size
        {
            return Err(RegistryError::SizeMismatch {
                at: at.clone(),
                url: redact(&url),
                expected: size,
                served: bytes.len().to_string(),
            });
        }
        Ok((bytes, content_type))
    }

    async fn document_once(
        &self,
        url: &Url,
        at: &Subject,
        attempt: u32,
    ) -> Result<(Vec<u8>, Option<String>), Failure> {
        let response = self.open(url, Some(MANIFEST_ACCEPT), at, attempt).await?;
        let served_from = response.url().clone();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match read_bounded(response, MAX_DOCUMENT_BYTES).await {
            Ok(bytes) => Ok((bytes, content_type)),
            Err(BodyError::TooLarge) => Err(Failure::Fatal(RegistryError::TooLarge {
                at: at.clone(),
                url: redact(&served_from),
                limit: MAX_DOCUMENT_BYTES,
            })),
            Err(BodyError::Transport(e)) => {
                Err(retry(self.transport(at, &served_from, e, attempt)))
            }
        }
    }

    /// GETs a blob by digest into `path` (created or truncated), hashing while it streams; the body must be
    /// exactly the descriptor's size and digest.
    pub(super) async fn fetch_blob(
        &self,
        descriptor: &Descriptor,
        at: &Subject,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let url = self.api_url("blobs", &descriptor.digest, at)?;
        self.retrying(|attempt| self.blob_once(&url, descriptor, at, path, attempt))
            .await?;
        tracing::debug!(digest = %descriptor.digest, bytes = descriptor.size, "blob verified");
        Ok(())
    }

    async fn blob_once(
        &self,
        url: &Url,
        descriptor: &Descriptor,
        at: &Subject,
        path: &Path,
        attempt: u32,
    ) -> Result<(), Failure> {
        let response = self.open(url, None, at, attempt).await?;
        let served_from = response.url().clone();
        let size = descriptor.size;
        let size_mismatch = |served: String| {
            Failure::Fatal(RegistryError::SizeMismatch {
                at: at.clone(),
                url: redact(&served_from),
                expected: size,
                served,
            })
        };
        if let Some(announced) = response.content_length()
            && announced != size
        {
            return Err(size_mismatch(format!("{announced} (its Content-Length)")));
        }
        let output = |e: std::io::Error| {
            Failure::Fatal(RegistryError::Output {
                at: at.clone(),
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        };
        let file = std::fs::File::create(path).map_err(output)?;
        let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Hasher::new(ChecksumAlgo::Sha256);
        let mut received: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| retry(self.transport(at, &served_from, e, attempt)))?;
            received += chunk.len() as u64;
            if received > size {
                return Err(size_mismatch(format!("more than {size}")));
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).map_err(output)?;
        }
        if received != size {
            return Err(size_mismatch(received.to_string()));
        }
        writer.flush().map_err(output)?;
        let actual = hasher.finish();
        if actual.hex != descriptor.hex() {
            return Err(Failure::Fatal(RegistryError::DigestMismatch {
                at: at.clone(),
                url: redact(&served_from),
                actual: actual.to_string(),
            }));
        }
        Ok(())
    }

    /// Runs `once` up to `attempts` times while it fails transiently, waiting `Retry-After` or a doubling delay.
    async fn retrying<T, F, Fut>(&self, once: F) -> Result<T, RegistryError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let attempts = self.opts.attempts.max(1);
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 1;
        loop {
            match once(attempt).await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry { error, .. }) if attempt >= attempts => return Err(error),
                Err(Failure::Retry { error, after }) => {
                    let wait = after.unwrap_or(delay);
                    tracing::warn!(
                        attempt,
                        retry_in = ?wait,
                        error = %error.to_string().lines().next().unwrap_or_default(),
                        "registry request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
                    attempt += 1;
                }
            }
        }
    }

    /// Sends a GET and returns a 2xx response, following redirects and answering Bearer challenges.
    async fn open(
        &self,
        url: &Url,
        accept: Option<&str>,
        at: &Subject,
        attempt: u32,
    ) -> Result<reqwest::Response, Failure> {
        let mut current = url.clone();
        let mut redirects = 0;
        let mut fresh_token = false;
        loop {
            let to_registry = same_origin(&current, &self.base);
            let mut request = self.client.get(current.clone());
            // Accept goes everywhere (registry.k8s.io redirects manifest requests to Artifact Registry, which must
            // still see which types are wanted); the token only to the registry that issued it.
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if to_registry && let Some(token) = self.token() {
                request = request.bearer_auth(token);
            }
            tracing::debug!(url = %redact(&current), "GET");
            let response = request
                .send()
                .await
                .map_err(|e| retry(self.transport(at, &current, e, attempt)))?;
            let status = response.status().as_u16();
            match status {
                200..=299 => return Ok(response),
                301 | 302 | 303 | 307 | 308 => {
                    redirects += 1;
                    current = self.redirect_target(&current, &response, redirects, at)?;
                }
                401 if to_registry => {
                    if fresh_token {
                        return Err(Failure::Fatal(RegistryError::AccessDenied {
                            at: at.clone(),
                            reason: format!(
                                "{} answered HTTP 401 to the anonymous token its token service issued{}",
                                redact(&current),
                                challenge_error(&response)
                            ),
                        }));
                    }
                    let token = self.answer_challenge(&response, at, attempt).await?;
                    *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
                    fresh_token = true;
                }
                404 => {
                    return Err(Failure::Fatal(RegistryError::NotFound {
                        at: at.clone(),
                        url: redact(&current),
                    }));
                }
                _ => return Err(self.status_failure(&current, &response, at, attempt)),
            }
        }
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn redirect_target(
        &self,
        current: &Url,
        response: &reqwest::Response,
        redirects: u32,
        at: &Subject,
    ) -> Result<Url, Failure> {
        let fatal = |location: String, reason: &str, hint: &'static str| {
            Failure::Fatal(RegistryError::Redirect {
                at: at.clone(),
                url: redact(current),
                location,
                reason: reason.to_string(),
                hint,
            })
        };
        let broken = "the registry's redirect is broken; retry later or report it to the registry";
        let Some(location) = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(fatal(
                "(nothing)".to_string(),
                "the redirect has no usable Location header",
                broken,
            ));
        };
        let next = current
            .join(location)
            .map_err(|e| fatal("(not a URL)".to_string(), &e.to_string(), broken))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(fatal(
                redact(&next),
                "only http(s) redirects are followed",
                broken,
            ));
        }
        if current.scheme() == "https" && next.scheme() == "http" && !self.opts.plain_http {
            return Err(fatal(
                redact(&next),
                "a redirect from https to plain http is refused",
                "the registry or a proxy downgrades the connection; pull from a registry that keeps https",
            ));
        }
        if redirects > MAX_REDIRECTS {
            return Err(fatal(
                redact(&next),
                &format!("more than {MAX_REDIRECTS} redirects"),
                broken,
            ));
        }
        tracing::debug!(from = %redact(current), to = %redact(&next), "following redirect");
        Ok(next)
    }

    /// Answers a 401: a Bearer challenge gets an anonymous token; anything else is an error.
    async fn answer_challenge(
        &self,
        response: &reqwest::Response,
        at: &Subject,
        attempt: u32,
    ) -> Result<String, Failure> {
        let mut challenges: Vec<Challenge> = Vec::new();
        let mut unparsable = Vec::new();
        for value in response.headers().get_all(WWW_AUTHENTICATE) {
            match value
                .to_str()
                .map_err(|e| e.to_string())
                .and_then(parse_www_authenticate)
            {
                Ok(c) => challenges.extend(c),
                Err(e) => unparsable.push(e),
            }
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self.fetch_token(bearer, at, attempt).await;
        }
        if let Some(other) = challenges.first() {
            return Err(Failure::Fatal(RegistryError::CredentialsRequired {
                at: at.clone(),
                scheme: other.scheme.clone(),
            }));
        }
        Err(Failure::Fatal(RegistryError::AccessDenied {
            at: at.clone(),
            reason: if unparsable.is_empty() {
                "HTTP 401 without a WWW-Authenticate challenge".to_string()
            } else {
                format!(
                    "HTTP 401 with a WWW-Authenticate header that does not parse: {}",
                    unparsable.join("; ")
                )
            },
        }))
    }

    /// GETs `realm?service=…&scope=…` without credentials and returns the token it issues.
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        at: &Subject,
        attempt: u32,
    ) -> Result<String, Failure> {
        let Some(realm) = challenge.param("realm") else {
            return Err(Failure::Fatal(RegistryError::AccessDenied {
                at: at.clone(),
                reason: "the Bearer challenge names no realm (token service)".to_string(),
            }));
        };
        let token_error = |realm: &str, reason: String| RegistryError::Token {
            at: at.clone(),
            realm: realm.to_string(),
            reason,
        };
        let mut url = Url::parse(realm)
            .map_err(|e| Failure::Fatal(token_error(realm, format!("it is not a URL: {e}"))))?;
        let realm_shown = redact(&url);
        match url.scheme() {
            "https" => {}
            "http" if self.opts.plain_http => {}
            scheme => {
                return Err(Failure::Fatal(token_error(
                    &realm_shown,
                    format!("its scheme is {scheme}; only https token services are used"),
                )));
            }
        }
        let default_scope = format!("repository:{}:pull", self.repository);
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", challenge.param("scope").unwrap_or(&default_scope));
        }
        tracing::debug!(realm = %realm_shown, "getting an anonymous registry token");
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| retry(self.transport(at, &url, e, attempt)))?;
        let status = response.status();
        if !status.is_success() {
            let error = token_error(&realm_shown, format!("HTTP {}", status.as_u16()));
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Failure::Retry {
                    error,
                    after: retry_after(&response),
                }
            } else {
                Failure::Fatal(error)
            });
        }
        let body = match read_bounded(response, MAX_TOKEN_RESPONSE).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return Err(Failure::Fatal(token_error(
                    &realm_shown,
                    format!("the answer is larger than {MAX_TOKEN_RESPONSE} bytes"),
                )));
            }
            Err(BodyError::Transport(e)) => {
                return Err(retry(self.transport(at, &url, e, attempt)));
            }
        };
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::Fatal(token_error(
                &realm_shown,
                format!("the answer is not a token document: {e}"),
            ))
        })?;
        match answer.token.or(answer.access_token) {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(Failure::Fatal(token_error(
                &realm_shown,
                "the answer has no token".to_string(),
            ))),
        }
    }

    fn status_failure(
        &self,
        url: &Url,
        response: &reqwest::Response,
        at: &Subject,
        attempt: u32,
    ) -> Failure {
        let status = response.status().as_u16();
        let hint = match status {
            429 => "the registry rate-limits this client: retry later, or pull from a mirror",
            500..=599 => "the registry failed; the request was retried, then given up: retry later",
            401 | 403 => {
                "the host refused access (no credentials are sent to a host the registry redirects to): retry later, or pull from a mirror"
            }
            _ => "the registry refused the request",
        };
        let after = retry_after(response);
        let error = RegistryError::Status {
            at: at.clone(),
            url: redact(url),
            status,
            attempts: attempt,
            hint,
        };
        match (status, after) {
            (429 | 500..=599, Some(after)) if after > MAX_RETRY_AFTER => Failure::Fatal(error),
            (429 | 500..=599, after) => Failure::Retry { error, after },
            _ => Failure::Fatal(error),
        }
    }

    fn transport(
        &self,
        at: &Subject,
        url: &Url,
        e: reqwest::Error,
        attempts: u32,
    ) -> RegistryError {
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        let reason = error_chain(&e.without_url());
        let (at, url) = (at.clone(), redact(url));
        if timeout {
            RegistryError::Timeout {
                at,
                url,
                timeout: self.opts.timeout,
                attempts,
            }
        } else if connect {
            RegistryError::Connect {
                at,
                url,
                reason,
                attempts,
            }
        } else {
            RegistryError::Transfer {
                at,
                url,
                reason,
                attempts,
            }
        }
    }
}

async fn read_bounded(response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Transport)?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the doubling delay applies).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `, error="…"` from a Bearer challenge, for the message.
fn challenge_error(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| parse_www_authenticate(v).ok())
        .flatten()
        .find_map(|c| c.param("error").map(|e| format!(" (error={e:?})")))
        .unwrap_or_default()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL as errors and logs show it: without query, fragment or user info.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_redaction() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(same_origin(
            &u("https://r.example/v2/x"),
            &u("https://r.example:443/")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("https://s.example/")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/"),
            &u("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(
            &u("http://r.example/"),
            &u("https://r.example/")
        ));
        assert_eq!(
            redact(&u("https://u:p@s.example/b/c?X-Amz-Signature=secret#f")),
            "https://s.example/b/c"
        );
    }
}
