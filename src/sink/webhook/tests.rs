//! The webhook body, its signature, and HTTPS with a private CA.

use super::{body, signature};
use crate::config::WebhookConfig;
use crate::sink::outbox::{LiveConfig, Outgoing, Transport};

#[test]
fn signature_is_hmac_sha256_in_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

fn sh(dir: &std::path::Path, cmd: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh");
    assert!(ok.success(), "{cmd}");
}

/// A private CA and a certificate for 127.0.0.1 signed by it.
fn certificates(dir: &std::path::Path) {
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
         -subj /CN=vigil-test-ca -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    sh(
        dir,
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    );
    sh(
        dir,
        "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && \
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
         -out server.crt -days 2 -extfile ext.cnf",
    );
}

/// An HTTPS endpoint answering 204 to each request; sends each request
/// (head and body) on the channel.
async fn https_receiver(
    dir: &std::path::Path,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A failed handshake (an untrusting client) ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    let _ = tx.send((head, body));
                    buf.drain(..end + 4 + len);
                    let _ = tls
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn https_with_a_private_ca_signed_and_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    std::fs::write(dir.path().join("key"), "k3y\n").unwrap();
    std::fs::write(dir.path().join("token"), "t0ken").unwrap();
    let (port, mut requests) = https_receiver(dir.path()).await;
    let config = |ca: bool| -> WebhookConfig {
        let mut text = format!(
            "url = \"https://127.0.0.1:{port}/hook\"\ntimeout = \"3s\"\n\
             secret_file = \"{}\"\nbearer_file = \"{}\"\n",
            dir.path().join("key").display(),
            dir.path().join("token").display()
        );
        if ca {
            text += &format!("ca_file = \"{}\"\n", dir.path().join("ca.crt").display());
        }
        toml::from_str(&text).unwrap()
    };
    let records = [Outgoing {
        seq: 1,
        run: "R".into(),
        id: "cam/1".into(),
        stream: "cam".into(),
        kind_of: "caption".into(),
        json: "{\"id\":\"cam/1\"}".into(),
        stored_ns: None,
    }];
    // Without the private CA the server is not trusted.
    let mut untrusting = config(false).build().unwrap();
    let e = untrusting.deliver(&records).await.unwrap_err().to_string();
    assert!(e.contains("https://127.0.0.1"), "{e}");
    assert!(!e.contains("t0ken") && !e.contains("k3y"), "{e}");
    let mut hook = config(true).build().unwrap();
    hook.deliver(&records).await.unwrap();
    let (head, body) = requests.recv().await.unwrap();
    assert!(head.starts_with("post /hook http/1.1"), "{head}");
    assert!(head.contains("authorization: bearer t0ken"), "{head}");
    assert!(head.contains("x-vigil-records: 1"), "{head}");
    assert!(head.contains("x-vigil-first: r/cam/1"), "{head}");
    let signed = signature(b"k3y", &body);
    assert!(
        head.contains(&format!("x-vigil-signature: {signed}")),
        "{head}"
    );
    assert_eq!(body, b"[{\"id\":\"cam/1\"}]");
}

#[test]
fn body_is_a_json_array_of_the_records() {
    let r = |id: &str| Outgoing {
        seq: 1,
        run: "R".into(),
        id: id.into(),
        stream: "cam".into(),
        kind_of: "caption".into(),
        json: format!("{{\"id\":\"{id}\",\"text\":\"a, \\\"b\\\"\"}}"),
        stored_ns: None,
    };
    let v: serde_json::Value =
        serde_json::from_str(&body(&[r("cam/1"), r("cam/2")])).expect("JSON");
    assert_eq!(v[1]["id"], "cam/2");
    assert_eq!(v[0]["text"], "a, \"b\"");
}
