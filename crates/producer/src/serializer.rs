//! Turning keys and values into bytes.
//!
//! A [`Serializer`] writes into a buffer the producer lends it, so serializing needs no allocation of
//! its own. Built-ins: bytes ([`BytesSerializer`]), UTF-8 strings ([`StringSerializer`]), JSON through
//! serde ([`JsonSerializer`], feature `json`), and any closure `Fn(&T) -> Result<Vec<u8>, E>`.
//! A null key or value is `None` in the record, so it needs no serializer.

use crate::error::BoxError;

/// Turns a `T` into the bytes Kafka stores.
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// Appends the bytes of `data` to `out` (which is empty when called).
    fn serialize(&self, topic: &str, data: &T, out: &mut Vec<u8>) -> Result<(), BoxError>;
}

/// Raw bytes as they are: `Vec<u8>`, `Bytes`, `&[u8]`, `[u8; N]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl<T: AsRef<[u8]> + ?Sized> Serializer<T> for BytesSerializer {
    fn serialize(&self, _topic: &str, data: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(data.as_ref());
        Ok(())
    }
}

/// UTF-8 strings: `String`, `&str`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl<T: AsRef<str> + ?Sized> Serializer<T> for StringSerializer {
    fn serialize(&self, _topic: &str, data: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(data.as_ref().as_bytes());
        Ok(())
    }
}

/// JSON through serde: `{"temp": 10}` becomes the bytes `{"temp":10}`.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

#[cfg(feature = "json")]
impl<T: serde::Serialize + ?Sized> Serializer<T> for JsonSerializer {
    fn serialize(&self, _topic: &str, data: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        serde_json::to_writer(out, data)?;
        Ok(())
    }
}

/// Any closure from `&T` to bytes, like kafka-python's `value_serializer=lambda v: ...`.
impl<T, F, E> Serializer<T> for F
where
    T: ?Sized,
    F: Fn(&T) -> Result<Vec<u8>, E> + Send + Sync,
    E: Into<BoxError>,
{
    fn serialize(&self, _topic: &str, data: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(&self(data).map_err(Into::into)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser<T: ?Sized>(s: &dyn Serializer<T>, v: &T) -> Result<Vec<u8>, BoxError> {
        let mut out = Vec::new();
        s.serialize("t", v, &mut out).map(|()| out)
    }

    #[test]
    fn builtins() {
        assert_eq!(ser(&BytesSerializer, &b"ab"[..]).unwrap(), b"ab");
        assert_eq!(ser(&BytesSerializer, &vec![1u8, 2]).unwrap(), [1, 2]);
        assert_eq!(ser(&StringSerializer, "서울").unwrap(), "서울".as_bytes());
        #[cfg(feature = "json")]
        assert_eq!(
            ser(&JsonSerializer, &serde_json::json!({"temp": 10})).unwrap(),
            br#"{"temp":10}"#
        );
    }

    #[test]
    fn closures_and_their_errors() {
        let upper =
            |s: &String| -> Result<Vec<u8>, std::io::Error> { Ok(s.to_uppercase().into_bytes()) };
        assert_eq!(ser(&upper, &"a".to_string()).unwrap(), b"A");
        let failing = |_: &u32| -> Result<Vec<u8>, String> { Err("no".into()) };
        assert_eq!(ser(&failing, &1).unwrap_err().to_string(), "no");
    }
}
