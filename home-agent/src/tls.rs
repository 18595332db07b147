//! The cluster's own certificate authority and the mutual-TLS configuration
//! built on it.
//!
//! Every node holds a certificate issued by the cluster CA whose only DNS
//! name is the node's name. Both ends of every connection present one and
//! verify the other's against the CA; a certificate from another CA, an
//! expired one, or one for a name other than the node being dialed is
//! refused by rustls, and the refusal is logged with the names the
//! presented certificate carries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{client::WebPkiServerVerifier, DigitallySignedStruct, DistinguishedName as TlsDn};
use rustls::{RootCertStore, SignatureScheme};
use time::{Duration, OffsetDateTime};

/// ALPN protocol id of the node-to-node protocol.
pub const ALPN: &[u8] = b"homing";

/// File names inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key file name.
pub const CA_KEY_FILE: &str = "ca.key";

const CA_COMMON_NAME_PREFIX: &str = "homing cluster CA";

/// Errors creating, issuing or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
    /// A node name that cannot be a certificate's DNS name.
    #[error(
        "invalid node name {0:?}: use lowercase letters, digits and '-', starting with a letter"
    )]
    BadNodeName(String),
    /// The CA directory already holds a CA.
    #[error("{0} already holds a CA; refusing to overwrite it")]
    CaExists(PathBuf),
}

/// Checks that `name` can serve as a node name (and so as a DNS name).
pub fn validate_node_name(name: &str) -> Result<(), TlsError> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TlsError::BadNodeName(name.to_owned()))
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| TlsError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}

fn read_file(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|error| TlsError::Io {
        path: path.to_owned(),
        error,
    })
}

/// The CA's parameters, a function of its key alone.
///
/// The name carries a piece of the public key so that two clusters' CAs
/// never share a name: a certificate from another cluster is then refused as
/// from an unknown issuer, not as a bad signature.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let tag: String = key
        .public_key_raw()
        .iter()
        .skip(1)
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    dn.push(DnType::CommonName, format!("{CA_COMMON_NAME_PREFIX} {tag}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Creates a new cluster CA in `dir` (`ca.pem`, and `ca.key` readable by its owner only).
pub fn init_ca(dir: &Path, validity_days: i64) -> Result<(), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    if cert_path.exists() {
        return Err(TlsError::CaExists(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(|error| TlsError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let key = KeyPair::generate()?;
    let mut params = ca_params(&key);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days);
    let cert = params.self_signed(&key)?;
    write_file(&dir.join(CA_KEY_FILE), &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)
}

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Days the certificate stays valid after its start.
    pub days: i64,
    /// Days before now that its validity starts (for tests of expiry).
    pub backdate_days: i64,
}

/// Issues a certificate for node `node` from the CA in `ca_dir`, writing
/// `NODE.pem` and `NODE.key` into `out_dir`. Returns the certificate's path.
pub fn issue(
    ca_dir: &Path,
    node: &str,
    out_dir: &Path,
    validity: Validity,
) -> Result<PathBuf, TlsError> {
    validate_node_name(node)?;
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key = KeyPair::from_pem(&read_file(&ca_key_path)?).map_err(|e| TlsError::Pem {
        path: ca_key_path,
        what: e.to_string(),
    })?;
    // rcgen signs with the issuer's name and key; rebuilding the CA's
    // parameters from its key gives an issuer identical on the wire to the
    // stored CA certificate, without parsing that certificate.
    let issuer = ca_params(&ca_key).self_signed(&ca_key)?;

    let mut params = CertificateParams::new(vec![node.to_owned()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let start = OffsetDateTime::now_utc() - Duration::days(validity.backdate_days);
    params.not_before = start - Duration::minutes(5);
    params.not_after = start + Duration::days(validity.days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer, &ca_key)?;

    std::fs::create_dir_all(out_dir).map_err(|error| TlsError::Io {
        path: out_dir.to_owned(),
        error,
    })?;
    let cert_path = out_dir.join(format!("{node}.pem"));
    write_file(
        &out_dir.join(format!("{node}.key")),
        &key.serialize_pem(),
        0o600,
    )?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok(cert_path)
}

/// A node's TLS material, loaded from PEM files.
#[derive(Debug)]
pub struct Identity {
    /// The cluster CA certificates trusted for peers.
    pub roots: Arc<RootCertStore>,
    /// This node's certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads the CA, certificate and key files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path| {
            let path = path.to_owned();
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                path: path.clone(),
                what: e.to_string(),
            }
        };
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(ca).map_err(pem_error(ca))? {
            roots.add(der.map_err(pem_error(ca))?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                path: ca.to_owned(),
                what: "no CA certificate in file".into(),
            });
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(pem_error(cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(cert))?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                path: cert.to_owned(),
                what: "no certificate in file".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
        Ok(Self {
            roots: Arc::new(roots),
            chain,
            key,
        })
    }

    /// Keys for QUIC stateless resets and connection ids, derived from the
    /// node's private key so they survive restarts: a restarted node can
    /// then tell its peers at once that their old connection to it is gone.
    pub fn stable_keys(&self) -> (ring::hmac::Key, u64) {
        let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.key.secret_der());
        let reset = ring::hmac::sign(&secret, b"homing stateless reset key");
        let cid = ring::hmac::sign(&secret, b"homing connection id key");
        let cid_key = u64::from_ne_bytes(
            cid.as_ref()[..8]
                .try_into()
                .expect("HMAC-SHA256 is 32 bytes"),
        );
        (
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref()),
            cid_key,
        )
    }

    /// ring's suites with AES-128-GCM first (ring puts AES-256 first):
    /// QUIC's own default, and four fewer AES rounds on every byte a
    /// process image or a bulk read carries (bare quinn bulk 3.17 to 3.28
    /// GB/s here).
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        use rustls::crypto::ring::{cipher_suite, default_provider};
        let mut provider = default_provider();
        provider.cipher_suites = vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        Arc::new(provider)
    }

    /// The rustls configuration for accepting peers: a client certificate from the CA is required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), Self::provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(LoggingClientVerifier(verifier)))
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls configuration for dialing peers: the server must hold a
    /// certificate from the CA for the name being dialed.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), Self::provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LoggingServerVerifier(verifier)))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// The DNS names a certificate carries (empty if it cannot be parsed).
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(cert)
        .map(|ee| ee.valid_dns_names().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Wraps the standard client verifier to log who was refused, not only why.
#[derive(Debug)]
struct LoggingClientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for LoggingClientVerifier {
    fn root_hint_subjects(&self) -> &[TlsDn] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                tracing::warn!(
                    names = ?certificate_names(end_entity),
                    "refused a dialing peer's certificate: {error}"
                )
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Wraps the standard server verifier to log who was refused, not only why.
#[derive(Debug)]
struct LoggingServerVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for LoggingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|error| {
                tracing::warn!(
                    dialed = ?server_name,
                    names = ?certificate_names(end_entity),
                    "refused an answering peer's certificate: {error}"
                )
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_node_and_chain_to_the_ca() {
        let dir = std::env::temp_dir().join(format!("homing-tls-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init_ca(&dir, 30).unwrap();
        assert!(matches!(init_ca(&dir, 30), Err(TlsError::CaExists(_))));
        let validity = Validity {
            days: 10,
            backdate_days: 0,
        };
        let cert = issue(&dir, "node7", &dir, validity).unwrap();
        let identity =
            Identity::load(&dir.join(CA_CERT_FILE), &cert, &dir.join("node7.key")).unwrap();
        assert_eq!(certificate_names(&identity.chain[0]), vec!["node7"]);
        let ee = webpki::EndEntityCert::try_from(&identity.chain[0]).unwrap();
        let anchors: Vec<_> = identity.roots.roots.to_vec();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .expect("the node certificate chains to the cluster CA");
        assert!(matches!(
            issue(&dir, "Bad_Name", &dir, validity),
            Err(TlsError::BadNodeName(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
