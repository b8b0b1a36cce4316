//! Certificates: a cluster CA made with rcgen, node and client certificates it signs, and
//! loading them back from PEM files.
//!
//! Roles are names. A node certificate names `node-<id>.raft` (and `nodes.raft`, so a client
//! that knows only an address can still check it reached *some* node of the cluster); a
//! client certificate names `client-<id>.raft`. The peer protocol accepts only a certificate
//! naming the node id its handshake claims, so a client certificate cannot speak it.
//!
//! Files written by [`generate`]: `ca.pem`, `ca.key`, `node-<id>.pem`, `node-<id>.key`,
//! `client-<id>.pem`, `client-<id>.key`. Keys are written with mode 0600 on Unix.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A client's id, named in its certificate (`client-<id>.raft`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The DNS name a node's certificate carries.
#[must_use]
pub fn node_name(id: NodeId) -> String {
    format!("node-{}.raft", id.0)
}

/// The DNS name every node certificate carries besides its own.
pub const ANY_NODE_NAME: &str = "nodes.raft";

/// The host names every node certificate carries besides its node names, so that a client
/// verifying host names reaches a node on its own machine.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The DNS name a client's certificate carries.
#[must_use]
pub fn client_name(id: ClientId) -> String {
    format!("client-{}.raft", id.0)
}

/// A certificate chain and its private key, plus the cluster CA that verifies the other side.
#[derive(Debug)]
pub struct Identity {
    /// The cluster CA certificate: the only trust anchor.
    pub ca: CertificateDer<'static>,
    /// This side's certificate (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
    /// This side's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity { ca: self.ca.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

/// A cluster CA held in memory, issuing node and client certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

fn generation_error(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.into();
    move |source| Error::CertificateGeneration { what, source }
}

impl CertificateAuthority {
    /// Makes a new CA with a fresh P-256 key, named `common_name`.
    ///
    /// # Errors
    ///
    /// [`Error::CertificateGeneration`] if rcgen fails.
    pub fn new(common_name: &str) -> Result<CertificateAuthority, Error> {
        let key = KeyPair::generate().map_err(generation_error("CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(generation_error("CA parameters"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).map_err(generation_error("CA certificate"))?;
        Ok(CertificateAuthority {
            certificate_pem: certificate.pem(),
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA written by [`generate`] (`ca.pem` and `ca.key`), to issue certificates
    /// for nodes and clients added later.
    ///
    /// # Errors
    ///
    /// [`Error::File`] if a file cannot be read, [`Error::Pem`] if it holds no
    /// certificate, [`Error::CertificateGeneration`] if the key or certificate is unusable.
    pub fn load(certificate: &Path, key: &Path) -> Result<CertificateAuthority, Error> {
        let certificate_der =
            read_certificates(certificate)?.into_iter().next().ok_or_else(|| Error::Pem {
                path: certificate.to_path_buf(),
                what: "a CA certificate",
                source: no_items(),
            })?;
        let certificate_pem = String::from_utf8_lossy(&read(certificate)?).into_owned();
        let key_pem = String::from_utf8_lossy(&read(key)?).into_owned();
        let key_pair = KeyPair::from_pem(&key_pem).map_err(generation_error("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&certificate_pem, key_pair)
            .map_err(generation_error("CA certificate"))?;
        Ok(CertificateAuthority { issuer, certificate_pem, certificate: certificate_der })
    }

    /// Issues the certificate for node `id`.
    ///
    /// # Errors
    ///
    /// [`Error::CertificateGeneration`] if rcgen fails.
    pub fn issue_node(&self, id: NodeId) -> Result<Issued, Error> {
        self.issue_node_for_hosts(id, &[])
    }

    /// Issues the certificate for node `id`, naming also the loopback host
    /// ([`LOOPBACK_HOSTS`]) and `hosts` (IP addresses or DNS names), so that clients that
    /// check a server's host name against its certificate (etcd's, over TLS) accept the
    /// node at those addresses.
    ///
    /// # Errors
    ///
    /// [`Error::CertificateGeneration`] if rcgen fails, a malformed host name included.
    pub fn issue_node_for_hosts(&self, id: NodeId, hosts: &[String]) -> Result<Issued, Error> {
        let mut names = vec![node_name(id), ANY_NODE_NAME.to_owned()];
        names.extend(LOOPBACK_HOSTS.iter().map(|host| (*host).to_owned()));
        for host in hosts {
            if !names.contains(host) {
                names.push(host.clone());
            }
        }
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&format!("node {id}"), names, usages)
    }

    /// Issues the certificate for client `id`: it can only authenticate as a client.
    ///
    /// # Errors
    ///
    /// [`Error::CertificateGeneration`] if rcgen fails.
    pub fn issue_client(&self, id: ClientId) -> Result<Issued, Error> {
        let names = vec![client_name(id)];
        self.issue(&format!("client {id}"), names, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    fn issue(
        &self,
        what: &str,
        names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<Issued, Error> {
        let key = KeyPair::generate().map_err(generation_error(format!("{what} key")))?;
        let mut params =
            CertificateParams::new(names.clone()).map_err(generation_error(what.to_owned()))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let certificate = params
            .signed_by(&key, &self.issuer)
            .map_err(generation_error(format!("{what} certificate")))?;
        Ok(Issued {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            identity: Identity {
                ca: self.certificate.clone(),
                chain: vec![certificate.der().clone()],
                key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            },
        })
    }

    /// The CA certificate in PEM.
    #[must_use]
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA's private key in PEM.
    #[must_use]
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}

/// A certificate the CA issued, as PEM and ready to use.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate in PEM.
    pub certificate_pem: String,
    /// The private key in PEM.
    pub key_pem: String,
    /// The same, parsed, with the CA.
    pub identity: Identity,
}

/// Makes certificates for `nodes` and `clients` and writes them to `out_dir` (created if
/// missing), signed by the CA already there (`ca.pem` and `ca.key`, so a node added later
/// joins the same cluster) or, without one, by a new CA. Existing node and client files of
/// the same names are replaced.
///
/// # Errors
///
/// [`Error::CertificateGeneration`] if rcgen fails, [`Error::File`] naming the file that could
/// not be written.
pub fn generate(out_dir: &Path, nodes: &[NodeId], clients: &[ClientId]) -> Result<(), Error> {
    generate_for_hosts(out_dir, nodes, clients, &[])
}

/// As [`generate`], with `hosts` (IP addresses or DNS names where the nodes are reached)
/// named in every node certificate besides the loopback host.
///
/// # Errors
///
/// As [`generate`].
pub fn generate_for_hosts(
    out_dir: &Path,
    nodes: &[NodeId],
    clients: &[ClientId],
    hosts: &[String],
) -> Result<(), Error> {
    fs::create_dir_all(out_dir)
        .map_err(|source| Error::File { path: out_dir.to_path_buf(), source })?;
    let (ca_certificate, ca_key) = (out_dir.join("ca.pem"), out_dir.join("ca.key"));
    let ca = if ca_certificate.exists() && ca_key.exists() {
        CertificateAuthority::load(&ca_certificate, &ca_key)?
    } else {
        let ca = CertificateAuthority::new("raft cluster CA")?;
        write_file(&ca_certificate, ca.certificate_pem(), false)?;
        write_file(&ca_key, &ca.key_pem(), true)?;
        ca
    };
    for &id in nodes {
        let issued = ca.issue_node_for_hosts(id, hosts)?;
        write_file(&out_dir.join(format!("node-{}.pem", id.0)), &issued.certificate_pem, false)?;
        write_file(&out_dir.join(format!("node-{}.key", id.0)), &issued.key_pem, true)?;
    }
    for &id in clients {
        let issued = ca.issue_client(id)?;
        write_file(&out_dir.join(format!("client-{}.pem", id.0)), &issued.certificate_pem, false)?;
        write_file(&out_dir.join(format!("client-{}.key", id.0)), &issued.key_pem, true)?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), Error> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let file_error = |source| Error::File { path: path.to_path_buf(), source };
    let mut file = options.open(path).map_err(file_error)?;
    file.write_all(contents.as_bytes()).map_err(file_error)?;
    file.sync_all().map_err(file_error)
}

/// Loads node `id`'s identity from a directory written by [`generate`].
///
/// # Errors
///
/// As [`load`].
pub fn load_node(dir: &Path, id: NodeId) -> Result<Identity, Error> {
    load(
        &dir.join("ca.pem"),
        &dir.join(format!("node-{}.pem", id.0)),
        &dir.join(format!("node-{}.key", id.0)),
    )
}

/// Loads client `id`'s identity from a directory written by [`generate`].
///
/// # Errors
///
/// As [`load`].
pub fn load_client(dir: &Path, id: ClientId) -> Result<Identity, Error> {
    load(
        &dir.join("ca.pem"),
        &dir.join(format!("client-{}.pem", id.0)),
        &dir.join(format!("client-{}.key", id.0)),
    )
}

/// Loads an identity from PEM files: the CA certificate, this side's certificate chain and
/// its private key.
///
/// # Errors
///
/// [`Error::File`] if a file cannot be read, [`Error::Pem`] if it holds no certificate or key.
pub fn load(ca: &Path, certificate: &Path, key: &Path) -> Result<Identity, Error> {
    let ca_certificate = read_certificates(ca)?.into_iter().next();
    let chain = read_certificates(certificate)?;
    let pem_error =
        |path: &Path, what, source| Error::Pem { path: path.to_path_buf(), what, source };
    let ca = ca_certificate.ok_or_else(|| pem_error(ca, "a CA certificate", no_items()))?;
    if chain.is_empty() {
        return Err(pem_error(certificate, "a certificate", no_items()));
    }
    let bytes = read(key)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|source| pem_error(key, "a private key", source))?;
    Ok(Identity { ca, chain, key })
}

fn no_items() -> rustls_pki_types::pem::Error {
    rustls_pki_types::pem::Error::NoItemsFound
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::File { path: PathBuf::from(path), source })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(path)?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem { path: path.to_path_buf(), what: "certificates", source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn generated_files_load_back_for_every_node_and_client() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[NodeId(1), NodeId(2)], &[ClientId(9)]).unwrap();
        for file in ["ca.pem", "ca.key", "node-1.pem", "node-2.key", "client-9.pem"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
        let node = load_node(dir.path(), NodeId(2)).unwrap();
        let client = load_client(dir.path(), ClientId(9)).unwrap();
        assert_eq!(node.ca, client.ca, "one CA signs both");
        assert_eq!(node.chain.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("node-1.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "keys are private");
        }
    }

    #[test]
    fn a_second_generate_issues_from_the_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[NodeId(1)], &[]).unwrap();
        let ca = fs::read(dir.path().join("ca.pem")).unwrap();
        generate(dir.path(), &[NodeId(4)], &[]).unwrap();
        assert_eq!(fs::read(dir.path().join("ca.pem")).unwrap(), ca, "the CA is kept");
        let first = load_node(dir.path(), NodeId(1)).unwrap();
        let added = load_node(dir.path(), NodeId(4)).unwrap();
        assert_eq!(first.ca, added.ca);
        assert_ne!(first.chain, added.chain);
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_node(dir.path(), NodeId(1)).unwrap_err();
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }

    #[test]
    fn file_without_a_certificate_is_a_pem_error() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[NodeId(1)], &[]).unwrap();
        fs::write(dir.path().join("node-1.pem"), "not pem").unwrap();
        let error = load_node(dir.path(), NodeId(1)).unwrap_err();
        assert!(matches!(error, Error::Pem { .. }), "{error}");
        assert!(error.to_string().contains("node-1.pem"), "{error}");
    }
}
