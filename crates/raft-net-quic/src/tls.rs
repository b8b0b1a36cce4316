//! rustls and quinn configuration: mutual TLS 1.3 with the cluster CA as the only trust
//! anchor, and the `ring` crypto provider, for QUIC and for TCP alike.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::certs::Identity;
use crate::error::Error;

/// ALPN of the peer (Raft message) protocol.
pub const ALPN_PEER: &[u8] = b"raft-peer";
/// ALPN of the client request/response protocol.
pub const ALPN_RPC: &[u8] = b"raft-rpc";

/// Connection-level timings shared by both protocols.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timings {
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(identity: &Identity) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    roots
        .add(identity.ca.clone())
        .map_err(|source| Error::Tls { what: "cluster CA certificate", source })?;
    Ok(Arc::new(roots))
}

fn transport(timings: Timings, bidi_streams: u32, uni_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(timings.idle_timeout).ok();
    transport
        .max_idle_timeout(idle)
        .keep_alive_interval(Some(timings.keep_alive_interval))
        .max_concurrent_bidi_streams(bidi_streams.into())
        .max_concurrent_uni_streams(uni_streams.into());
    Arc::new(transport)
}

/// The server side's TLS: requires a client certificate signed by the cluster CA, so any
/// other connection fails in the TLS handshake before a byte of application data is read.
/// Used as is on TCP, wrapped for QUIC by [`server_config`].
pub(crate) fn tls_server(identity: &Identity) -> Result<rustls::ServerConfig, Error> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(identity)?, provider.clone())
        .build()
        .map_err(|source| Error::Verifier { source })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| Error::Tls { what: "TLS 1.3 with ring", source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|source| Error::Tls { what: "this node's certificate and key", source })?;
    tls.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_RPC.to_vec()];
    Ok(tls)
}

/// The QUIC server side (see [`tls_server`]).
pub(crate) fn server_config(
    identity: &Identity,
    timings: Timings,
    bidi_streams: u32,
) -> Result<quinn::ServerConfig, Error> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls_server(identity)?)
        .map_err(|source| Error::QuicCrypto { source })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // Peer connections lower their stream limits once the protocol is known.
    config.transport_config(transport(timings, bidi_streams, PEER_UNI_STREAMS));
    // Bounds connections waiting for their handshake (each holds buffered packets).
    config.max_incoming(INCOMING_MAX);
    Ok(config)
}

/// Uni streams a peer may have open at once: the message stream and the snapshot stream,
/// plus room for one of each from a previous attempt still draining.
pub(crate) const PEER_UNI_STREAMS: u32 = 4;

/// Handshakes in progress at once: far more than a cluster's nodes and clients reconnecting
/// together, small enough that a flood of handshakes cannot hold unbounded memory.
pub(crate) const INCOMING_MAX: usize = 256;

/// The client side's TLS: presents `identity` and accepts only a server certificate signed
/// by the cluster CA that names the expected server. Used as is on TCP, wrapped for QUIC by
/// [`client_config`].
pub(crate) fn tls_client(identity: &Identity, alpn: &[u8]) -> Result<rustls::ClientConfig, Error> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| Error::Tls { what: "TLS 1.3 with ring", source })?
        .with_root_certificates(roots(identity)?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|source| Error::Tls { what: "this side's certificate and key", source })?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    Ok(tls)
}

/// The QUIC client side (see [`tls_client`]).
pub(crate) fn client_config(
    identity: &Identity,
    alpn: &[u8],
    timings: Timings,
    bidi_streams: u32,
) -> Result<quinn::ClientConfig, Error> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls_client(identity, alpn)?)
        .map_err(|source| Error::QuicCrypto { source })?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(timings, bidi_streams, PEER_UNI_STREAMS));
    Ok(config)
}

/// A quinn client configuration presenting `identity` and speaking `alpn` ([`ALPN_PEER`] or
/// [`ALPN_RPC`]), with default timings: for tools and tests that dial a node by hand.
///
/// # Errors
///
/// TLS setup errors for a bad identity.
pub fn dialer_config(identity: &Identity, alpn: &[u8]) -> Result<quinn::ClientConfig, Error> {
    let timings = Timings {
        idle_timeout: Duration::from_secs(10),
        keep_alive_interval: Duration::from_secs(2),
    };
    client_config(identity, alpn, timings, 0)
}

/// The ALPN protocol the connection agreed on.
pub(crate) fn negotiated_protocol(connection: &quinn::Connection) -> Option<Vec<u8>> {
    let data: Box<dyn Any> = connection.handshake_data()?;
    let data = data.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?;
    data.protocol
}

/// Whether the other side's (already CA-verified) certificate names `name`.
pub(crate) fn certificate_names(connection: &quinn::Connection, name: &str) -> bool {
    let Some(identity) = connection.peer_identity() else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    chain_names(&chain, name)
}

/// Whether the leaf of an (already CA-verified) certificate chain names `name`.
pub(crate) fn chain_names(chain: &[CertificateDer<'static>], name: &str) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|certificate| certificate.verify_is_valid_for_subject_name(&server_name))
        .is_ok()
}
