//! Java KeyStore (JKS) files, the Java client's default store type, read with the `jks` crate.
//! As in Java's compatibility mode, a store named `JKS` that holds PKCS12 is read as PKCS12 (the
//! caller sniffs with [`is_jks`]). The crate always checks the store's integrity digest, so a JKS
//! store needs its password even where Java would read it without one.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Whether `data` starts with JKS's magic number.
pub(super) fn is_jks(data: &[u8]) -> bool {
    data.starts_with(&[0xfe, 0xed, 0xfe, 0xed])
}

fn load(key: &str, path: &str, data: &[u8], password: Option<&str>) -> Result<jks::KeyStore> {
    let password_key = key.replace(".location", ".password");
    let password = password.ok_or_else(|| {
        Error::config(
            &password_key,
            format!("{path} is a JKS store, read with its password ({password_key})"),
        )
    })?;
    let mut store = jks::KeyStore::new();
    store.load(data, password.as_bytes()).map_err(|e| {
        Error::config(
            key,
            format!("{path} is not a JKS store this password opens: {e}"),
        )
    })?;
    Ok(store)
}

/// Every certificate in a truststore: its trusted entries and its key entries' chains.
pub(super) fn certificates(
    key: &str,
    path: &str,
    data: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>> {
    let store = load(key, path, data, password)?;
    let mut certs = Vec::new();
    for alias in store.aliases() {
        if let Ok(entry) = store.get_trusted_certificate_entry(&alias) {
            certs.push(CertificateDer::from(entry.certificate.content));
        } else if let Ok(chain) = store.get_private_key_entry_certificate_chain(&alias) {
            certs.extend(chain.into_iter().map(|c| CertificateDer::from(c.content)));
        }
    }
    if certs.is_empty() {
        return Err(Error::config(key, format!("{path} holds no certificate")));
    }
    Ok(certs)
}

/// The private key and its chain in a keystore, the key opened with `key_password` (Java's
/// `ssl.key.password`, which defaults to the store's password).
#[allow(clippy::type_complexity)]
pub(super) fn identity(
    key: &str,
    path: &str,
    data: &[u8],
    store_password: Option<&str>,
    key_password: Option<&str>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let store = load(key, path, data, store_password)?;
    let alias = store
        .aliases()
        .into_iter()
        .find(|a| store.is_private_key_entry(a))
        .ok_or_else(|| Error::config(key, format!("{path} holds no private key")))?;
    let password = key_password.or(store_password).unwrap_or_default();
    let entry = store
        .get_private_key_entry(&alias, password.as_bytes())
        .map_err(|e| {
            Error::config(
                "ssl.key.password",
                format!("cannot open the key `{alias}` in {path}: {e}"),
            )
        })?;
    let chain = entry
        .certificate_chain
        .into_iter()
        .map(|c| CertificateDer::from(c.content))
        .collect();
    Ok((chain, PrivateKeyDer::Pkcs8(entry.private_key.into())))
}
