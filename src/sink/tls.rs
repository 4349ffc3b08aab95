//! The one TLS client setup the live sinks share: rustls with the ring
//! provider, the system's root certificates, and an optional PEM file of
//! more (a private CA).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration trusting the system's roots and those in `ca_file`.
/// `sink` names the sink in errors.
pub fn client_config(sink: &str, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    build(sink, ca_file, true)
}

/// The same for a client that may never use TLS (a plain `http://`
/// webhook, which a redirect could still not take to HTTPS): no trusted
/// certificate is not an error.
pub fn optional_client_config(
    sink: &str,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig, String> {
    build(sink, ca_file, false)
}

fn build(
    sink: &str,
    ca_file: Option<&Path>,
    need_roots: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped (a minimal container may
    // have none); a CA file given by the user must load.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{sink}: cannot read the CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{sink}: the CA file {} is not PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{sink}: the CA file {} holds no certificate",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "{sink}: a certificate of {} is not usable: {e}",
                    path.display()
                )
            })?;
        }
    }
    if roots.is_empty() && need_roots {
        return Err(format!(
            "{sink}: no trusted certificate: the system has none (install ca-certificates) and no ca_file is given"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{sink}: TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
