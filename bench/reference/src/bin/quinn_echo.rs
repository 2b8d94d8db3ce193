//! An upper-casing echo over QUIC written as quinn's own examples write a server: a
//! self-signed certificate (rcgen), ALPN "netecho", each bidirectional stream read to its
//! end and answered on that stream, each datagram answered with a datagram. The anchor
//! `bench/quic.sh` measures `netecho serve --proto quic` against. Prints
//! `listening quic ADDR tls sha256 FINGERPRINT` like `netecho serve`.

use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::PrivateKeyDer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)?;
    tls.alpn_protocols = vec![b"netecho".to_vec()];
    let config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let endpoint = quinn::Endpoint::server(config, addr.parse()?)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    println!("listening quic {} tls sha256 {}", endpoint.local_addr()?, hex.join(":"));
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let datagrams = conn.clone();
            tokio::spawn(async move {
                while let Ok(d) = datagrams.read_datagram().await {
                    let _ = datagrams.send_datagram(d.to_ascii_uppercase().into());
                }
            });
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let Ok(mut msg) = recv.read_to_end(65536).await else { return };
                    msg.make_ascii_uppercase();
                    if send.write_all(&msg).await.is_ok() {
                        let _ = send.finish();
                    }
                });
            }
        });
    }
    Ok(())
}
