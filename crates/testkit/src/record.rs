//! Records as the independent Java reader (`scripts/kafka tool reader`) prints them.

use serde::Deserialize;

/// One record read back from the broker by the Java reference consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Partition the record is in.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// `"CreateTime"` or `"LogAppendTime"`, as the Java client names them.
    pub timestamp_type: String,
    /// Key bytes; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order: name and value bytes (`None` for a null header value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReadRecord {
    /// The key as UTF-8, if it is present and valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8, if it is present and valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Parses one line of the reader's output. The bytes come from the base64 fields, which the reader fills for
    /// every non-null key, value and header value; the string fields are only a convenience for people reading it.
    pub(crate) fn from_json_line(line: &str) -> Result<ReadRecord, String> {
        let raw: RawRecord =
            serde_json::from_str(line).map_err(|e| format!("{e} in reader line {line:?}"))?;
        let headers = raw
            .headers
            .into_iter()
            .map(|h| Ok((h.key, decode_opt(h.value_b64.as_deref())?)))
            .collect::<Result<_, String>>()?;
        Ok(ReadRecord {
            partition: raw.partition,
            offset: raw.offset,
            timestamp: raw.timestamp,
            timestamp_type: raw.timestamp_type,
            key: decode_opt(raw.key_b64.as_deref())?,
            value: decode_opt(raw.value_b64.as_deref())?,
            headers,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: String,
    key_b64: Option<String>,
    value_b64: Option<String>,
    headers: Vec<RawHeader>,
}

#[derive(Deserialize)]
struct RawHeader {
    key: String,
    #[serde(rename = "valueB64")]
    value_b64: Option<String>,
}

fn decode_opt(text: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    text.map(base64_decode).transpose()
}

/// Standard base64 with padding, as `java.util.Base64.getEncoder()` writes it.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "base64 length {} is not a multiple of 4",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(format!("bad base64 padding in {text:?}"));
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6
                | sextet(c)
                    .ok_or_else(|| format!("bad base64 character {:?} in {text:?}", c as char))?;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_java_encoder_output() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("/+8A").unwrap(), [0xff, 0xef, 0x00]);
        assert!(base64_decode("YQ=").is_err());
        assert!(base64_decode("Y===").is_err());
        assert!(base64_decode("YQ==YQ==").is_err());
        assert!(base64_decode("Y-Q=").is_err());
    }

    #[test]
    fn parses_a_reader_line_with_binary_key_and_headers() {
        let line = r#"{"partition":2,"offset":7,"timestamp":1700000000000,"timestampType":"CreateTime","key":null,"keyB64":"//4=","value":"v","valueB64":"dg==","headers":[{"key":"h","value":"x","valueB64":"eA=="},{"key":"n","value":null,"valueB64":null}]}"#;
        let record = ReadRecord::from_json_line(line).unwrap();
        assert_eq!(record.partition, 2);
        assert_eq!(record.offset, 7);
        assert_eq!(record.timestamp, 1_700_000_000_000);
        assert_eq!(record.timestamp_type, "CreateTime");
        assert_eq!(record.key, Some(vec![0xff, 0xfe]));
        assert_eq!(record.key_str(), None);
        assert_eq!(record.value_str(), Some("v"));
        assert_eq!(
            record.headers,
            vec![
                ("h".to_string(), Some(b"x".to_vec())),
                ("n".to_string(), None)
            ]
        );
    }

    #[test]
    fn null_key_and_value_stay_none() {
        let line = r#"{"partition":0,"offset":0,"timestamp":1,"timestampType":"LogAppendTime","key":null,"keyB64":null,"value":null,"valueB64":null,"headers":[]}"#;
        let record = ReadRecord::from_json_line(line).unwrap();
        assert_eq!((record.key, record.value), (None, None));
    }

    #[test]
    fn rejects_garbage() {
        assert!(ReadRecord::from_json_line("Exception in thread main").is_err());
    }
}
