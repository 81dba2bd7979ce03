//! The master health probe: `GET https://masters.<cluster>.<domain>:6443/readyz`, TLS verified against the
//! cluster CA, connecting only to the addresses the agent already resolved (the probe never resolves a name: the
//! URL's host is used for SNI and certificate name verification, the connection goes to `connect_to`).
//!
//! # Trust
//!
//! What the API server's certificate is verified against comes from the role file ([`MasterTrust`]):
//!
//! - **`CA_CERT_FILE`** — a PEM file with one or more CA certificates. They are the only trust anchors (never the
//!   system roots); standard webpki chain, validity and host-name verification. The file is re-read at every
//!   probe (it is small) and the TLS set-up is rebuilt when its contents change, so fixing the file needs no
//!   restart. Unreadable, empty or invalid → [`ProbeResult::TlsUntrusted`] naming the file.
//! - **`CA_CERT_HASH`** (kubeadm's pin: `sha256:` of the CA certificate's SubjectPublicKeyInfo, see
//!   [`spki_sha256`]) — the API server usually presents only its leaf, so the CA is found the way kubeadm finds
//!   it: an anonymous GET of [`CLUSTER_INFO_PATH`] *without* verification (that is what the `cluster-info`
//!   ConfigMap is for; it is public), take the CA from its kubeconfig and accept it only if its key hash equals
//!   the pin. A certificate in the presented chain that matches the pin is used directly (the chain served by
//!   the API server is recorded during that same anonymous request). The CA found is remembered for this pin
//!   (a CA matching the pin stays valid as long as the pin does), so after the first success a probe is one
//!   connection. The probe itself then runs with a custom [`ServerCertVerifier`] (`PinVerifier`) whose only
//!   trust anchor is a presented certificate matching the pin, else the discovered CA; the leaf is verified
//!   against it by webpki (chain, validity, host name).
//! - **Both** — the file must hold a certificate matching the pin (checked when the file is read); only the
//!   file's certificates that match the pin are trust anchors.
//! - **Neither** with an `https` URL → [`ProbeResult::TlsUntrusted`]; there is no fallback to system roots or to
//!   no verification. Plain HTTP is used only for an `http://` URL (the role file's explicit `MASTER_PROBE=http`).
//!
//! # Outcome
//!
//! | what happened | [`ProbeResult`] |
//! |---|---|
//! | HTTP 200 | `Healthy` |
//! | any other HTTP status (redirects are not followed) | `HttpStatus` |
//! | certificate not trusted (unknown issuer, bad signature, name not a SAN, expired, wrong pin, no CA configured, CA file broken) | `TlsUntrusted`, with the reason in words and what to fix |
//! | connection refused / no route / reset, TLS protocol failure (e.g. plain HTTP on the TLS port) | `Unreachable` |
//! | no answer within the prober's timeout (the whole probe, discovery included) | `Timeout` |
//!
//! A probe makes at most two connections (the first one with a pin: cluster-info, then `/readyz`) and never
//! retries by itself: a wrong CA or pin costs exactly one connection per probe and comes back as a blocking
//! reason; retrying is the phase machine's business ([`crate::plan`]). Connections are not pooled (each probe
//! connects afresh, so a changed `connect_to` takes effect at once). No credentials are ever sent: the requests
//! carry no `Authorization` header (none is configured) and nothing secret is logged or returned.

use crate::plan::ProbeResult;
use crate::role_file::{CaPin, MasterTrust};
use base64::Engine as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing::debug;

/// Where kubeadm publishes the cluster CA for discovery (anonymous GET allowed by kubeadm's RBAC).
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// The cluster-info answer is read up to this size (it is a few KiB).
const MAX_CLUSTER_INFO_BYTES: usize = 1 << 20;

const USER_AGENT: &str = concat!("k8s-agent/", env!("CARGO_PKG_VERSION"));

const PIN_HINT: &str = "get the right pin on a master with `openssl x509 -pubkey -noout -in \
                        /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum` \
                        (or `kubeadm token create --print-join-command`)";

/// What keeps the probe from being set up; every one of them is a configuration problem, reported as
/// [`ProbeResult::TlsUntrusted`] (except [`ProbeSetupError::BadTarget`], which is [`ProbeResult::Unreachable`]).
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    #[error("not a DER X.509 certificate ({reason})")]
    NotACertificate { reason: String },
    #[error(
        "cannot read CA_CERT_FILE {}: {source} — put the cluster CA there as PEM \
         (/etc/kubernetes/pki/ca.crt on a master) or use CA_CERT_HASH instead",
        .path.display()
    )]
    CaFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "CA_CERT_FILE {} {problem} — it must hold the cluster CA as PEM (-----BEGIN CERTIFICATE-----; \
         /etc/kubernetes/pki/ca.crt on a master)",
        .path.display()
    )]
    CaFileInvalid { path: PathBuf, problem: String },
    #[error(
        "CA_CERT_FILE {} does not hold the CA pinned by CA_CERT_HASH {pin} (its certificates' public key \
         hashes: {}) — when both are set they must name the same CA: fix one of them; {hint}",
        .path.display(),
        .found.join(", "),
        hint = PIN_HINT
    )]
    CaFileNotPinned {
        path: PathBuf,
        pin: CaPin,
        found: Vec<String>,
    },
    #[error(
        "no CA to verify the masters' certificate with — set CA_CERT_HASH=sha256:<hex> or CA_CERT_FILE in \
         the role file (MASTER_PROBE=http only for an old or test cluster)"
    )]
    NoTrust,
    #[error("cannot probe {url:?}: {reason}")]
    BadTarget { url: String, reason: String },
    #[error("cannot set up the TLS client: {0}")]
    Client(String),
}

impl ProbeSetupError {
    fn into_result(self) -> ProbeResult {
        match self {
            ProbeSetupError::BadTarget { .. } => ProbeResult::Unreachable {
                message: self.to_string(),
            },
            _ => ProbeResult::TlsUntrusted {
                message: self.to_string(),
            },
        }
    }
}

/// sha256 of the DER SubjectPublicKeyInfo of a certificate ([`k8s_core::discovery::spki_sha256`], with this
/// edge's error).
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], ProbeSetupError> {
    k8s_core::discovery::spki_sha256(cert_der)
        .map_err(|e| ProbeSetupError::NotACertificate { reason: e.reason })
}

/// `sha256:<hex>` of a certificate's public key, or a note that it does not parse (for messages).
fn spki_text(cert_der: &[u8]) -> String {
    match spki_sha256(cert_der) {
        Ok(hash) => format!("sha256:{}", hex::encode(hash)),
        Err(_) => "(unparsable certificate)".to_string(),
    }
}

fn pin_matches(pin: &CaPin, cert_der: &[u8]) -> bool {
    spki_sha256(cert_der).is_ok_and(|hash| &hash == pin.sha256())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Probes the masters' health endpoint. Holds nothing secret: per trust configuration a TLS set-up (and the
/// cluster CA discovered for a pin) and a client for the last endpoint and addresses probed.
pub struct MasterProber {
    timeout: Duration,
    provider: Arc<CryptoProvider>,
    trusts: Mutex<HashMap<MasterTrust, Arc<TrustSetup>>>,
    plain: Mutex<Option<CachedClient>>,
}

impl fmt::Debug for MasterProber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterProber")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where one probe goes: the URL's host and port, and the addresses to connect to instead of resolving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) addrs: Vec<SocketAddr>,
}

impl Target {
    pub(crate) fn new(url: &str, connect_to: &[IpAddr]) -> Result<Target, ProbeSetupError> {
        let bad = |reason: &str| ProbeSetupError::BadTarget {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => {
                return Err(bad(
                    "the scheme must be https (or http when asked for explicitly)",
                ));
            }
        };
        let host = parsed
            .domain()
            .ok_or_else(|| bad("the host must be a DNS name (the masters name), not an address"))?
            .to_ascii_lowercase();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("no port"))?;
        if connect_to.is_empty() {
            return Err(bad(
                "no address to connect to (the masters name resolved to nothing)",
            ));
        }
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(connect_to.len());
        for ip in connect_to {
            let addr = SocketAddr::new(*ip, port);
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(Target {
            https,
            host,
            port,
            addrs,
        })
    }

    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn addrs_text(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct CachedClient {
    target: Target,
    client: reqwest::Client,
}

/// The TLS side of one [`MasterTrust`].
struct TrustSetup {
    /// sha256 of the CA_CERT_FILE contents this was built from; rebuilt when the file changes.
    file_digest: Option<[u8; 32]>,
    tls: rustls::ClientConfig,
    /// What the trust anchors are, for messages.
    anchor_words: String,
    /// Pin only: the verifier whose CA slot discovery fills.
    pinned: Option<Arc<PinVerifier>>,
    client: Mutex<Option<CachedClient>>,
}

impl MasterProber {
    /// A prober whose every probe (discovery included) ends within `timeout`. Installs rustls' ring provider as
    /// the process default if none is installed yet (the clients built here name it explicitly anyway).
    pub fn new(timeout: Duration) -> MasterProber {
        // Already installed (by the agent's start-up or an earlier prober) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        MasterProber {
            timeout,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            trusts: Mutex::new(HashMap::new()),
            plain: Mutex::new(None),
        }
    }

    /// `GET url` connecting only to `connect_to` (the URL's host for SNI and name verification), the
    /// certificate verified against `trust` (ignored for an `http://` URL). See the module documentation.
    pub async fn probe(
        &self,
        url: &str,
        connect_to: &[IpAddr],
        trust: &MasterTrust,
    ) -> ProbeResult {
        let result =
            match tokio::time::timeout(self.timeout, self.probe_within(url, connect_to, trust))
                .await
            {
                Ok(result) => result,
                Err(_) => ProbeResult::Timeout,
            };
        debug!(url, ?connect_to, trust = %trust.describe(), ?result, "master probe");
        result
    }

    async fn probe_within(
        &self,
        url: &str,
        connect_to: &[IpAddr],
        trust: &MasterTrust,
    ) -> ProbeResult {
        let target = match Target::new(url, connect_to) {
            Ok(target) => target,
            Err(e) => return e.into_result(),
        };
        if !target.https {
            let client = match self.plain_client(&target) {
                Ok(client) => client,
                Err(e) => return e.into_result(),
            };
            return get_status(&client, url, &target, "").await;
        }
        let setup = match self.trust_setup(trust).await {
            Ok(setup) => setup,
            Err(e) => return e.into_result(),
        };
        if let Some(pinned) = &setup.pinned
            && !pinned.has_ca()
        {
            match self.discover(&target, &pinned.pin).await {
                Ok(ca) => pinned.set_ca(ca),
                Err(result) => return result,
            }
        }
        let client = {
            let mut slot = lock(&setup.client);
            match slot.as_ref() {
                Some(cached) if cached.target == target => cached.client.clone(),
                _ => match self.build_client(setup.tls.clone(), &target) {
                    Ok(client) => {
                        *slot = Some(CachedClient {
                            target: target.clone(),
                            client: client.clone(),
                        });
                        client
                    }
                    Err(e) => return e.into_result(),
                },
            }
        };
        get_status(&client, url, &target, &setup.anchor_words).await
    }

    fn plain_client(&self, target: &Target) -> Result<reqwest::Client, ProbeSetupError> {
        let mut slot = lock(&self.plain);
        if let Some(cached) = slot.as_ref()
            && cached.target == *target
        {
            return Ok(cached.client.clone());
        }
        // Trusts nothing: an https URL (or redirect) can never succeed through this client.
        let tls = self
            .config_builder()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let client = self.build_client(tls, target)?;
        *slot = Some(CachedClient {
            target: target.clone(),
            client: client.clone(),
        });
        Ok(client)
    }

    fn config_builder(
        &self,
    ) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, ProbeSetupError>
    {
        rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProbeSetupError::Client(e.to_string()))
    }

    fn build_client(
        &self,
        tls: rustls::ClientConfig,
        target: &Target,
    ) -> Result<reqwest::Client, ProbeSetupError> {
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(NoResolver)
            .resolve_to_addrs(&target.host, &target.addrs)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ProbeSetupError::Client(error_text(&e)))
    }

    /// The TLS set-up for `trust`, from the cache unless the CA file changed.
    async fn trust_setup(&self, trust: &MasterTrust) -> Result<Arc<TrustSetup>, ProbeSetupError> {
        let file = match &trust.ca_cert_file {
            Some(path) => match tokio::fs::read(path).await {
                Ok(bytes) => Some((path.as_path(), bytes)),
                Err(source) => {
                    return Err(ProbeSetupError::CaFileUnreadable {
                        path: path.clone(),
                        source,
                    });
                }
            },
            None => None,
        };
        let file_digest: Option<[u8; 32]> =
            file.as_ref().map(|(_, bytes)| Sha256::digest(bytes).into());
        if let Some(setup) = lock(&self.trusts).get(trust)
            && setup.file_digest == file_digest
        {
            return Ok(setup.clone());
        }
        let setup = Arc::new(self.build_setup(trust, file, file_digest)?);
        lock(&self.trusts).insert(trust.clone(), setup.clone());
        Ok(setup)
    }

    fn build_setup(
        &self,
        trust: &MasterTrust,
        file: Option<(&Path, Vec<u8>)>,
        file_digest: Option<[u8; 32]>,
    ) -> Result<TrustSetup, ProbeSetupError> {
        let (tls, anchor_words, pinned) = match (file, &trust.ca_cert_hash) {
            (None, None) => return Err(ProbeSetupError::NoTrust),
            (Some((path, bytes)), pin) => {
                let mut anchors = read_ca_file(path, &bytes)?;
                if let Some(pin) = pin {
                    let found: Vec<String> = anchors.iter().map(|c| spki_text(c)).collect();
                    anchors.retain(|c| pin_matches(pin, c));
                    if anchors.is_empty() {
                        return Err(ProbeSetupError::CaFileNotPinned {
                            path: path.to_path_buf(),
                            pin: pin.clone(),
                            found,
                        });
                    }
                }
                let mut roots = RootCertStore::empty();
                for (index, cert) in anchors.into_iter().enumerate() {
                    roots
                        .add(cert)
                        .map_err(|e| ProbeSetupError::CaFileInvalid {
                            path: path.to_path_buf(),
                            problem: format!(
                                "holds certificate #{} that cannot be a trust anchor ({e})",
                                index + 1
                            ),
                        })?;
                }
                let verifier = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| ProbeSetupError::Client(e.to_string()))?;
                let tls = self
                    .config_builder()?
                    .with_webpki_verifier(verifier)
                    .with_no_client_auth();
                let words = match pin {
                    None => format!("the CA in CA_CERT_FILE {}", path.display()),
                    Some(pin) => format!(
                        "the CA in CA_CERT_FILE {} pinned by CA_CERT_HASH {pin}",
                        path.display()
                    ),
                };
                (tls, words, None)
            }
            (None, Some(pin)) => {
                let verifier = Arc::new(PinVerifier::new(pin.clone(), self.provider.clone()));
                let tls = self
                    .config_builder()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier.clone())
                    .with_no_client_auth();
                (
                    tls,
                    format!("the cluster CA pinned by CA_CERT_HASH {pin}"),
                    Some(verifier),
                )
            }
        };
        Ok(TrustSetup {
            file_digest,
            tls,
            anchor_words,
            pinned,
            client: Mutex::new(None),
        })
    }

    /// kubeadm-style discovery of the CA for `pin`: one anonymous, unverified GET of cluster-info, recording the
    /// chain the server presents. A presented certificate matching the pin wins; else cluster-info's CA must
    /// match it. `Err` is the probe's result (nothing more is tried).
    async fn discover(
        &self,
        target: &Target,
        pin: &CaPin,
    ) -> Result<CertificateDer<'static>, ProbeResult> {
        let recorder = Arc::new(RecordingVerifier::new(self.provider.clone()));
        let tls = match self.config_builder() {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(recorder.clone())
                .with_no_client_auth(),
            Err(e) => return Err(e.into_result()),
        };
        let client = self
            .build_client(tls, target)
            .map_err(ProbeSetupError::into_result)?;
        let url = format!("https://{}{CLUSTER_INFO_PATH}", target.authority());
        let outcome = fetch_limited(&client, &url).await;
        let presented = recorder.take();
        if let Some(ca) = presented.iter().find(|c| pin_matches(pin, c)) {
            debug!(authority = %target.authority(), "the API server presented the pinned CA");
            return Ok(ca.clone());
        }
        let presented_words = if presented.is_empty() {
            String::new()
        } else {
            let hashes: Vec<String> = presented.iter().map(|c| spki_text(c)).collect();
            format!(
                " (its certificates' public key hashes: {})",
                hashes.join(", ")
            )
        };
        let not_presented = format!(
            "{} did not present the CA pinned by CA_CERT_HASH {pin}{presented_words}",
            target.authority()
        );
        let unavailable = |why: String| ProbeResult::TlsUntrusted {
            message: format!(
                "{not_presented}, and cluster-info was not available ({why}) — serve the chain (leaf + CA) from \
                 the API server, allow anonymous reads of kube-public/cluster-info (kubeadm does), or set \
                 CA_CERT_FILE"
            ),
        };
        let (status, body) = match outcome {
            Ok(answer) => answer,
            Err(e) => return Err(classify(&e, target, "")),
        };
        if status >= 500 {
            // The API server is up but not serving yet: a wait, not a trust verdict.
            return Err(ProbeResult::HttpStatus { status });
        }
        if status != 200 {
            return Err(unavailable(format!(
                "HTTP {status} for {CLUSTER_INFO_PATH}"
            )));
        }
        let Some(body) = body else {
            return Err(unavailable(format!(
                "its answer is larger than {MAX_CLUSTER_INFO_BYTES} bytes"
            )));
        };
        let cas = ca_from_cluster_info(&body)
            .map_err(|problem| unavailable(format!("unusable: {problem}")))?;
        if let Some(ca) = cas.iter().find(|c| pin_matches(pin, c)) {
            debug!(authority = %target.authority(), "the cluster CA from cluster-info matches the pin");
            return Ok(ca.clone());
        }
        let hashes: Vec<String> = cas.iter().map(|c| spki_text(c)).collect();
        Err(ProbeResult::TlsUntrusted {
            message: format!(
                "the cluster CA's public key hash is {}, the role file pins {pin} — CA_CERT_HASH is wrong or \
                 {} is another cluster; {PIN_HINT}",
                hashes.join(" / "),
                target.host
            ),
        })
    }
}

/// GET `url`; the body only for a 200 (`None` when larger than [`MAX_CLUSTER_INFO_BYTES`]).
async fn fetch_limited(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u16, Option<Vec<u8>>), reqwest::Error> {
    let mut response = client.get(url).send().await?;
    let status = response.status().as_u16();
    if status != 200 {
        return Ok((status, Some(Vec::new())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_CLUSTER_INFO_BYTES {
            return Ok((status, None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, Some(body)))
}

async fn get_status(
    client: &reqwest::Client,
    url: &str,
    target: &Target,
    anchor_words: &str,
) -> ProbeResult {
    match client.get(url).send().await {
        Ok(response) => match response.status().as_u16() {
            200 => ProbeResult::Healthy,
            status => ProbeResult::HttpStatus { status },
        },
        Err(e) => classify(&e, target, anchor_words),
    }
}

/// The certificates of a CA file (PEM, one or more `CERTIFICATE` blocks; other blocks are ignored).
fn read_ca_file(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ProbeSetupError> {
    let invalid = |problem: String| ProbeSetupError::CaFileInvalid {
        path: path.to_path_buf(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("is not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate".to_string()));
    }
    for (index, cert) in certs.iter().enumerate() {
        spki_sha256(cert)
            .map_err(|e| invalid(format!("holds certificate #{} that is {e}", index + 1)))?;
    }
    Ok(certs)
}

/// The CA certificates of a cluster-info ConfigMap (JSON): `data.kubeconfig` →
/// `clusters[0].cluster.certificate-authority-data` (base64 of PEM).
fn ca_from_cluster_info(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let kubeconfig = json
        .get("data")
        .and_then(|data| data.get("kubeconfig"))
        .and_then(serde_json::Value::as_str)
        .ok_or("the ConfigMap has no data.kubeconfig")?;
    let encoded = ca_data_from_kubeconfig(kubeconfig)
        .ok_or("its kubeconfig has no certificate-authority-data")?;
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("certificate-authority-data is not base64 ({e})"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate-authority-data is not PEM ({e})"))?;
    if certs.is_empty() {
        return Err("certificate-authority-data holds no certificate".to_string());
    }
    Ok(certs)
}

/// `certificate-authority-data` of the first cluster of a kubeconfig. A kubeconfig in JSON is read as JSON;
/// YAML (what the API server stores) is read line by line rather than with a YAML parser: the first line whose
/// key (after an optional `- `) is `certificate-authority-data:` — the first cluster that has one — gives the
/// value, quotes removed; a value continued on more-indented lines (a folded plain scalar or a `|`/`>` block)
/// is joined, since base64 ignores the whitespace. Flow-style YAML (`{…}`) is not understood.
fn ca_data_from_kubeconfig(kubeconfig: &str) -> Option<String> {
    const KEY: &str = "certificate-authority-data";
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(kubeconfig)
        && json.is_object()
    {
        return json
            .get("clusters")?
            .get(0)?
            .get("cluster")?
            .get(KEY)?
            .as_str()
            .map(str::to_string);
    }
    let mut lines = kubeconfig.lines();
    while let Some(line) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let mut rest = line.trim_start();
        let mut key_column = indent;
        while let Some(after) = rest.strip_prefix("- ") {
            let stripped = after.trim_start();
            key_column += rest.len() - stripped.len();
            rest = stripped;
        }
        let Some(value) = rest
            .strip_prefix(KEY)
            .and_then(|r| r.trim_start().strip_prefix(':'))
        else {
            continue;
        };
        let value = value.trim();
        let value = value.split(" #").next().unwrap_or(value).trim();
        let mut data = if matches!(value.chars().next(), Some('|' | '>')) {
            String::new()
        } else {
            unquote(value).to_string()
        };
        for next in lines.by_ref() {
            if next.trim().is_empty() {
                continue;
            }
            let next_indent = next.len() - next.trim_start().len();
            if next_indent <= key_column {
                break;
            }
            data.push_str(next.trim());
        }
        return Some(data);
    }
    None
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Verifies the API server's certificate against kubeadm's CA pin: the trust anchor is a presented certificate
/// whose SubjectPublicKeyInfo hashes to the pin, else the CA discovery found (and checked against the pin); the
/// leaf is then verified by webpki against that single anchor (chain, validity, host name).
#[derive(Debug)]
struct PinVerifier {
    pin: CaPin,
    provider: Arc<CryptoProvider>,
    ca: Mutex<Option<CertificateDer<'static>>>,
}

impl PinVerifier {
    fn new(pin: CaPin, provider: Arc<CryptoProvider>) -> PinVerifier {
        PinVerifier {
            pin,
            provider,
            ca: Mutex::new(None),
        }
    }

    fn has_ca(&self) -> bool {
        lock(&self.ca).is_some()
    }

    fn set_ca(&self, ca: CertificateDer<'static>) {
        *lock(&self.ca) = Some(ca);
    }
}

/// The handshake was refused because no certificate matched the pin and no CA had been discovered.
#[derive(Debug)]
struct PinNotPresented {
    pin: String,
    presented: Vec<String>,
}

impl fmt::Display for PinNotPresented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no presented certificate has the pinned public key hash {} (presented: {}) and no cluster CA was \
             discovered",
            self.pin,
            self.presented.join(", ")
        )
    }
}

impl StdError for PinNotPresented {}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = std::iter::once(end_entity).chain(intermediates);
        let anchor = match presented.clone().find(|c| pin_matches(&self.pin, c)) {
            Some(cert) => cert.clone().into_owned(),
            None => match lock(&self.ca).clone() {
                Some(ca) => ca,
                None => {
                    let error = PinNotPresented {
                        pin: self.pin.to_string(),
                        presented: presented.map(|c| spki_text(c)).collect(),
                    };
                    return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                        OtherError(Arc::new(error)),
                    )));
                }
            },
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor)?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signatures::verify12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signatures::verify13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        handshake_signatures::schemes(&self.provider)
    }
}

/// Handshake signature checks shared by both verifiers: ring's algorithms, nothing custom.
mod handshake_signatures {
    use rustls::DigitallySignedStruct;
    use rustls::SignatureScheme;
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::CertificateDer;

    pub(super) fn verify12(
        provider: &CryptoProvider,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider.signature_verification_algorithms,
        )
    }

    pub(super) fn verify13(
        provider: &CryptoProvider,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider.signature_verification_algorithms,
        )
    }

    pub(super) fn schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
        provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// For the anonymous cluster-info GET only: accepts any chain (kubeadm's discovery does the same: the answer is
/// checked against the pin afterwards) but records it, and still checks that the server holds the leaf's key.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    presented: Mutex<Vec<CertificateDer<'static>>>,
}

impl RecordingVerifier {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> RecordingVerifier {
        RecordingVerifier {
            provider,
            presented: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take(&self) -> Vec<CertificateDer<'static>> {
        std::mem::take(&mut *lock(&self.presented))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *lock(&self.presented) = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signatures::verify12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signatures::verify13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        handshake_signatures::schemes(&self.provider)
    }
}

/// Refuses every name: the probe connects only to the addresses it is given (`resolve_to_addrs`), so a name
/// that reaches the resolver (a redirect elsewhere, say) fails instead of being looked up.
pub(crate) struct NoResolver;

impl reqwest::dns::Resolve for NoResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!(
            "the master probe does not resolve names (asked for {})",
            name.as_str()
        );
        Box::pin(std::future::ready(Err(message.into())))
    }
}

/// The error and its causes, looking inside `std::io::Error`s (whose `source()` skips the wrapped error).
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        if out.len() >= 32 {
            break;
        }
        out.push(current);
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    out
}

/// An error with its causes, `: `-separated, repeats dropped.
pub(crate) fn error_text(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes(error) {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Maps a failed request to a probe result: certificate verification → `TlsUntrusted`, timeouts → `Timeout`,
/// everything else (refused, unreachable, reset, TLS protocol errors) → `Unreachable`.
pub(crate) fn classify(error: &reqwest::Error, target: &Target, anchor_words: &str) -> ProbeResult {
    let chain = causes(error);
    let tls = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>());
    if let Some(tls) = tls {
        let untrusted = |why: String| ProbeResult::TlsUntrusted {
            message: format!(
                "the certificate of {} is not trusted: {why}",
                target.authority()
            ),
        };
        return match tls {
            rustls::Error::InvalidCertificate(problem) => {
                untrusted(describe_certificate_error(problem, target, anchor_words))
            }
            rustls::Error::NoCertificatesPresented => {
                untrusted("the server presented no certificate".to_string())
            }
            rustls::Error::UnsupportedNameType => {
                untrusted(format!("{} is not a name TLS can verify", target.host))
            }
            rustls::Error::InvalidCertRevocationList(e) => {
                untrusted(format!("bad revocation list ({e:?})"))
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                ProbeResult::Unreachable {
                    message: format!(
                        "TLS handshake with {} at {} failed: {tls} — does it serve plain HTTP? (then MASTER_PROBE=http)",
                        target.authority(),
                        target.addrs_text()
                    ),
                }
            }
            other => ProbeResult::Unreachable {
                message: format!(
                    "TLS handshake with {} at {} failed: {other}",
                    target.authority(),
                    target.addrs_text()
                ),
            },
        };
    }
    let io_timeout = chain
        .iter()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if error.is_timeout() || io_timeout {
        return ProbeResult::Timeout;
    }
    let reason = match chain
        .iter()
        .rev()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
    {
        Some(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::HostUnreachable => "no route to host".to_string(),
            std::io::ErrorKind::NetworkUnreachable => "network unreachable".to_string(),
            std::io::ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
            _ => error_text(error),
        },
        None => error_text(error),
    };
    ProbeResult::Unreachable {
        message: format!(
            "cannot reach {} at {}: {reason}",
            target.authority(),
            target.addrs_text()
        ),
    }
}

fn describe_certificate_error(
    problem: &CertificateError,
    target: &Target,
    anchor_words: &str,
) -> String {
    let host = &target.host;
    let san_hint = format!(
        "{host} must be a subjectAltName of the API server certificate (kubeadm: controlPlaneEndpoint or \
         --apiserver-cert-extra-sans)"
    );
    match problem {
        CertificateError::UnknownIssuer => format!(
            "it is not signed by {anchor_words} (unknown issuer) — check that the role file names this cluster's \
             CA (/etc/kubernetes/pki/ca.crt on a master)"
        ),
        CertificateError::BadSignature => {
            "a signature in its chain does not verify (bad signature)".to_string()
        }
        CertificateError::NotValidForName => format!("it is not valid for {host}: {san_hint}"),
        CertificateError::NotValidForNameContext { presented, .. } => {
            // webpki renders each name as `DnsName("…")` / `IpAddress(…)`: keep what is inside.
            let names: Vec<&str> = presented
                .iter()
                .map(
                    |name| match (name.find(['"', '(']), name.rfind(['"', ')'])) {
                        (Some(start), Some(end)) if start < end => &name[start + 1..end],
                        _ => name.as_str(),
                    },
                )
                .map(|name| name.trim_matches('"'))
                .collect();
            let names = if names.is_empty() {
                "no name".to_string()
            } else {
                names.join(", ")
            };
            format!("it is not valid for {host} (it names {names}): {san_hint}")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "it has expired ({problem}) — renew it (`kubeadm certs renew apiserver`) or check this node's clock"
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("it is not valid yet ({problem}) — check this node's clock (NTP)")
        }
        CertificateError::Other(other) => other.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_yaml_ca_data() {
        let yaml = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: \
                    https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\n";
        assert_eq!(ca_data_from_kubeconfig(yaml).as_deref(), Some("QUJD"));
        let first_key = "clusters:\n- certificate-authority-data: 'QUJD'\n  server: x\n";
        assert_eq!(ca_data_from_kubeconfig(first_key).as_deref(), Some("QUJD"));
        let folded = "clusters:\n- cluster:\n    certificate-authority-data: |\n      QU\n      JD\n    server: x\n";
        assert_eq!(ca_data_from_kubeconfig(folded).as_deref(), Some("QUJD"));
        let continued =
            "clusters:\n- cluster:\n    certificate-authority-data: QU\n      JD\n    server: x\n";
        assert_eq!(ca_data_from_kubeconfig(continued).as_deref(), Some("QUJD"));
        let json = r#"{"clusters":[{"cluster":{"certificate-authority-data":"QUJD"}}]}"#;
        assert_eq!(ca_data_from_kubeconfig(json).as_deref(), Some("QUJD"));
        assert_eq!(ca_data_from_kubeconfig("clusters: []\n"), None);
    }

    #[test]
    fn cluster_info_errors_are_words() {
        assert!(ca_from_cluster_info(b"not json").is_err_and(|e| e.contains("not JSON")));
        assert!(
            ca_from_cluster_info(br#"{"data":{}}"#).is_err_and(|e| e.contains("data.kubeconfig"))
        );
        let no_cert = r#"{"data":{"kubeconfig":"clusters:\n- cluster:\n    certificate-authority-data: QUJD\n"}}"#;
        assert!(
            ca_from_cluster_info(no_cert.as_bytes()).is_err_and(|e| e.contains("no certificate"))
        );
    }

    #[test]
    fn target_rejects_what_it_cannot_probe() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(Target::new("https://masters.a.k8s:6443/readyz", &[]).is_err());
        assert!(Target::new("https://10.0.0.1:6443/readyz", &[ip]).is_err());
        assert!(Target::new("ftp://masters.a.k8s/readyz", &[ip]).is_err());
        let target =
            Target::new("https://Masters.A.k8s/readyz", &[ip, ip]).map_err(|e| e.to_string());
        assert_eq!(
            target,
            Ok(Target {
                https: true,
                host: "masters.a.k8s".into(),
                port: 443,
                addrs: vec![SocketAddr::new(ip, 443)]
            })
        );
    }
}
