//! Encrypted PKCS#8 private keys (`-----BEGIN ENCRYPTED PRIVATE KEY-----`), opened with
//! `ssl.key.password`: PBES2 (PBKDF2 with AES, openssl's default) and PKCS#12's
//! `pbeWithSHAAnd3-KeyTripleDES-CBC`, the scheme the Java client's PEM keystores can read (so
//! the one Kafka's documentation has users make: `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES`).

use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Reader, SliceReader};
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use spki::AlgorithmIdentifierRef;

/// PKCS#12's pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 appendix C).
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");

/// The DER of the first `ENCRYPTED PRIVATE KEY` in `pem`, if there is one (rustls's PEM reader
/// skips this label).
pub(super) fn find(pem: &str) -> Option<Result<Vec<u8>, String>> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let Some(len) = pem[start..].find(END) else {
        return Some(Err("an ENCRYPTED PRIVATE KEY without its END line".into()));
    };
    let b64: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("an ENCRYPTED PRIVATE KEY that is not base64: {e}")),
    )
}

/// The PKCS#8 `PrivateKeyInfo` inside an `EncryptedPrivateKeyInfo` (DER), or why not.
pub(super) fn decrypt(der: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let malformed = |e: der::Error| format!("not an encrypted PKCS#8 key: {e}");
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let (algorithm, data) = reader
        .sequence(|r| {
            let algorithm: AlgorithmIdentifierRef<'_> = r.decode()?;
            let data: OctetString = r.decode()?;
            Ok::<_, der::Error>((algorithm, data))
        })
        .map_err(malformed)?;
    let wrong = "cannot decrypt it: ssl.key.password is not its password";
    if algorithm.oid == PBE_SHA1_3DES {
        let params = algorithm
            .parameters
            .ok_or("PBE-SHA1-3DES without its parameters")?;
        let (salt, iterations) = params
            .decode_as::<Pkcs12PbeParams>()
            .map_err(malformed)?
            .into_parts();
        if !(1..=10_000_000).contains(&iterations) {
            return Err(format!("PBE-SHA1-3DES with {iterations} iterations"));
        }
        let derive = |kind, len| {
            derive_key_utf8::<sha1::Sha1>(password, &salt, kind, iterations, len)
                .map_err(|e| format!("cannot derive the key: {e}"))
        };
        let key = derive(Pkcs12KeyType::EncryptionKey, 24)?;
        let iv = derive(Pkcs12KeyType::Iv, 8)?;
        let plain = cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| format!("cannot set up 3DES: {e}"))?
            .decrypt_padded_vec::<Pkcs7>(data.as_bytes())
            .map_err(|_| wrong.to_string())?;
        return private_key_or(plain, wrong);
    }
    let scheme = pkcs5::EncryptionScheme::try_from(algorithm).map_err(|_| {
        format!(
            "its encryption ({}) is not PBES2 or PBE-SHA1-3DES",
            algorithm.oid
        )
    })?;
    let plain = scheme
        .decrypt(password, data.as_bytes())
        .map_err(|_| wrong.to_string())?;
    private_key_or(plain, wrong)
}

/// `plain` if it is shaped as a PKCS#8 `PrivateKeyInfo` (`SEQUENCE { INTEGER, AlgorithmIdentifier,
/// OCTET STRING, ... }`), else `wrong`: a wrong password passes the CBC padding check about once
/// in 256 tries, and then gives bytes that are no key, which must not be reported as a key that
/// does not parse.
fn private_key_or(plain: Vec<u8>, wrong: &str) -> Result<Vec<u8>, String> {
    let shaped = SliceReader::new(&plain).is_ok_and(|mut r| {
        r.sequence(|r| {
            let _version: u8 = r.decode()?;
            let _algorithm: AlgorithmIdentifierRef<'_> = r.decode()?;
            let _key: OctetString = r.decode()?;
            // PKCS#8 v2's optional attributes and public key.
            let rest = r.remaining_len();
            r.read_slice(rest)?;
            Ok::<_, der::Error>(())
        })
        .is_ok()
            && r.is_finished()
    });
    match shaped {
        true => Ok(plain),
        false => Err(wrong.to_string()),
    }
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`.
struct Pkcs12PbeParams {
    salt: Vec<u8>,
    iterations: i32,
}

impl Pkcs12PbeParams {
    fn into_parts(self) -> (Vec<u8>, i32) {
        (self.salt, self.iterations)
    }
}

impl<'a> der::DecodeValue<'a> for Pkcs12PbeParams {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, _header: der::Header) -> der::Result<Self> {
        let salt: OctetString = reader.decode()?;
        let iterations: i32 = reader.decode()?;
        Ok(Pkcs12PbeParams {
            salt: salt.into_bytes().into_vec(),
            iterations,
        })
    }
}

impl der::FixedTag for Pkcs12PbeParams {
    const TAG: der::Tag = der::Tag::Sequence;
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivatePkcs8KeyDer;

    use super::*;

    fn der_of(pem: &str) -> Vec<u8> {
        find(pem).expect("an encrypted key").unwrap()
    }

    #[test]
    fn both_schemes_open_with_the_password_and_only_with_it() {
        let plain = PrivatePkcs8KeyDer::from_pem_slice(include_bytes!("testdata/key.pem"))
            .unwrap()
            .secret_pkcs8_der()
            .to_vec();
        for pem in [
            include_str!("testdata/key-pbe-sha1-3des.pem"),
            include_str!("testdata/key-pbes2-aes256.pem"),
        ] {
            let der = der_of(pem);
            assert_eq!(decrypt(&der, "kprod-key-pw").unwrap(), plain);
            let e = decrypt(&der, "not-the-password").unwrap_err();
            assert!(e.contains("not its password"), "{e}");
        }
        assert!(find(include_str!("testdata/key.pem")).is_none());
        // About one wrong password in 256 passes the padding check (of wrong-0 to wrong-999,
        // these three do for this key); such a one is still called a wrong password, not a key
        // that does not parse.
        let der = der_of(include_str!("testdata/key-pbe-sha1-3des.pem"));
        for password in ["wrong-82", "wrong-812", "wrong-854"] {
            let e = decrypt(&der, password).unwrap_err();
            assert!(e.contains("not its password"), "{password}: {e}");
        }
        let e = decrypt(b"\x30\x03\x02\x01\x00", "pw").unwrap_err();
        assert!(e.contains("not an encrypted PKCS#8 key"), "{e}");
    }
}
