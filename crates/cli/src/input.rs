//! What `kprod produce` reads: the inputs (files, or stdin), how they split into records
//! (`-D`), and how a record splits into headers, key and value (`--parse-headers`, `-K`), with
//! the fixed headers (`-H`) and partition (`-p`) every record gets.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use kafka_producer::{Header, ProducerRecord};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Bytes read from an input at a time.
const READ_BUFFER: usize = 1 << 20;

/// One input: a file, or stdin (`-`).
pub(crate) enum Input {
    Stdin,
    File(PathBuf, File),
}

impl Input {
    /// The inputs the arguments name, each file opened now (so that a missing one fails the run
    /// before anything is sent); stdin when none are named.
    pub(crate) fn open_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
        if paths.is_empty() {
            return Ok(vec![Input::Stdin]);
        }
        paths
            .iter()
            .map(|path| {
                if path.as_os_str() == "-" {
                    return Ok(Input::Stdin);
                }
                let file = File::open(path)
                    .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
                Ok(Input::File(path.clone(), file))
            })
            .collect()
    }

    /// "stdin", or the file's path: for error messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Input::Stdin => "stdin".into(),
            Input::File(path, _) => path.display().to_string(),
        }
    }

    /// A blocking reader of it.
    pub(crate) fn reader(self) -> BufReader<Box<dyn Read>> {
        let inner: Box<dyn Read> = match self {
            Input::Stdin => Box::new(io::stdin().lock()),
            Input::File(_, file) => Box::new(file),
        };
        BufReader::with_capacity(READ_BUFFER, inner)
    }

    /// A reader of it through tokio, whose waits can be interrupted (by a signal).
    pub(crate) fn async_reader(
        self,
    ) -> tokio::io::BufReader<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
        let inner: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match self {
            Input::Stdin => Box::new(tokio::io::stdin()),
            Input::File(_, file) => Box::new(tokio::fs::File::from_std(file)),
        };
        tokio::io::BufReader::with_capacity(READ_BUFFER, inner)
    }
}

/// Reads the next record, delimiter included, into `buf` (cleared first); `false` at the end
/// of the input. The end of an input ends its last record, delimiter or not.
pub(crate) fn read_record(
    input: &mut impl BufRead,
    delimiter: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    buf.clear();
    let last = delimiter[delimiter.len() - 1];
    loop {
        if input.read_until(last, buf)? == 0 {
            return Ok(!buf.is_empty());
        }
        if buf.ends_with(delimiter) || buf.last() != Some(&last) {
            return Ok(true);
        }
    }
}

/// [`read_record`] through tokio.
pub(crate) async fn read_record_async(
    input: &mut (impl AsyncBufRead + Unpin),
    delimiter: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    buf.clear();
    let last = delimiter[delimiter.len() - 1];
    loop {
        if input.read_until(last, buf).await? == 0 {
            return Ok(!buf.is_empty());
        }
        if buf.ends_with(delimiter) || buf.last() != Some(&last) {
            return Ok(true);
        }
    }
}

/// How per-record headers are written (`--parse-headers`), as kafka-console-producer's
/// `parse.headers` reads them: `NAME:VALUE,NAME:VALUE<TAB>` before the key and value.
pub(crate) struct HeaderFormat {
    /// Ends the headers (`headers.delimiter`).
    pub(crate) delimiter: Vec<u8>,
    /// Between two headers (`headers.separator`).
    pub(crate) separator: Vec<u8>,
    /// Between a header's name and its value (`headers.key.separator`).
    pub(crate) key_separator: Vec<u8>,
}

/// How input turns into records.
pub(crate) struct Framing {
    /// Ends each record (`-D`); newline by default.
    pub(crate) delimiter: Vec<u8>,
    /// Splits a record into key and value (`-K`).
    pub(crate) key_separator: Option<Vec<u8>>,
    /// Each record begins with its headers.
    pub(crate) headers: Option<HeaderFormat>,
    /// Headers of every record (`-H`), before its own.
    pub(crate) fixed_headers: Vec<Header>,
    /// The partition of every record (`-p`); the partitioner's choice when `None`.
    pub(crate) partition: Option<i32>,
}

/// One record's parts, borrowed from the input.
pub(crate) struct Parsed<'a> {
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: Vec<(String, &'a [u8])>,
}

impl Framing {
    /// Whether records end at newlines, where a `\r` before the `\n` goes too.
    fn by_lines(&self) -> bool {
        self.delimiter == b"\n"
    }

    /// The record without its delimiter (and, for lines, a `\r` before it).
    pub(crate) fn strip<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        let record = raw.strip_suffix(&self.delimiter[..]).unwrap_or(raw);
        if self.by_lines() {
            record.strip_suffix(b"\r").unwrap_or(record)
        } else {
            record
        }
    }

    /// Splits a record (as read, delimiter included) into headers, key and value; the error
    /// says what it lacks (the caller names the line, as for a send that fails).
    pub(crate) fn parse<'a>(&self, raw: &'a [u8]) -> Result<Parsed<'a>, String> {
        let mut rest = self.strip(raw);
        let mut headers = Vec::new();
        if let Some(format) = &self.headers {
            let (list, after) = split_at(rest, &format.delimiter)
                .ok_or_else(|| missing("headers delimiter", &format.delimiter))?;
            rest = after;
            if !list.is_empty() {
                for pair in split_all(list, &format.separator) {
                    let (name, value) = split_at(pair, &format.key_separator).ok_or_else(|| {
                        format!(
                            "no header key separator {} in the header {}",
                            shown(&format.key_separator),
                            shown(pair)
                        )
                    })?;
                    let name = String::from_utf8(name.to_vec())
                        .map_err(|_| "a header name is not UTF-8".to_string())?;
                    headers.push((name, value));
                }
            }
        }
        let (key, value) = match &self.key_separator {
            None => (None, rest),
            Some(sep) => {
                let (key, value) =
                    split_at(rest, sep).ok_or_else(|| missing("key separator", sep))?;
                (Some(key), value)
            }
        };
        Ok(Parsed {
            key,
            value,
            headers,
        })
    }

    /// The record to send to `topic`.
    pub(crate) fn record<'a>(
        &self,
        topic: &'a str,
        parsed: Parsed<'a>,
    ) -> ProducerRecord<'a, &'a [u8], &'a [u8]> {
        let mut record = ProducerRecord::new(topic).value(parsed.value);
        record.key = parsed.key;
        record.partition = self.partition;
        record.headers = self.fixed_headers.clone();
        for (name, value) in parsed.headers {
            record = record.header(name, Some(value));
        }
        record
    }
}

/// "no NAME "SEP" in the line".
fn missing(what: &str, sep: &[u8]) -> String {
    format!("no {what} {} in the line", shown(sep))
}

/// Bytes as a quoted string, for messages.
fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// `haystack` split at the first `sep`: before and after it.
pub(crate) fn split_at<'a>(haystack: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = find(haystack, sep)?;
    Some((&haystack[..at], &haystack[at + sep.len()..]))
}

/// `haystack` split at every `sep`.
fn split_all<'a>(mut haystack: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some((part, rest)) = split_at(haystack, sep) {
        parts.push(part);
        haystack = rest;
    }
    parts.push(haystack);
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [byte] => haystack.iter().position(|b| b == byte),
        _ => haystack.windows(needle.len()).position(|w| w == needle),
    }
}

/// A delimiter's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delimiter(pub(crate) Vec<u8>);

/// A delimiter as kcat's `-D` and `-K` take it: the text, with `\n`, `\r`, `\t`, `\\` and
/// `\xNN` (two hex digits) for those bytes. Not empty.
pub(crate) fn delimiter(s: &str) -> Result<Delimiter, String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match bytes[i + 1] {
            b'n' => (b'\n', 2),
            b'r' => (b'\r', 2),
            b't' => (b'\t', 2),
            b'\\' => (b'\\', 2),
            b'x' => {
                let hex = s.get(i + 2..i + 4).unwrap_or_default();
                let byte = u8::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("`{s}`: \\x takes two hex digits"))?;
                (byte, 4)
            }
            _ => (b'\\', 1),
        };
        out.push(byte);
        i += len;
    }
    if out.is_empty() {
        return Err("a delimiter must not be empty".into());
    }
    Ok(Delimiter(out))
}

/// A `-H` header, as kcat takes it: `NAME=VALUE`, or `NAME` alone for a null value.
pub(crate) fn header(s: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match s.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("`{s}` is not NAME=VALUE or NAME"));
    }
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing() -> Framing {
        Framing {
            delimiter: b"\n".to_vec(),
            key_separator: None,
            headers: None,
            fixed_headers: Vec::new(),
            partition: None,
        }
    }

    fn records(input: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
        let mut reader = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while read_record(&mut reader, delimiter, &mut buf).unwrap() {
            out.push(buf.clone());
        }
        out
    }

    #[test]
    fn records_end_at_the_delimiter_or_the_end() {
        assert_eq!(records(b"a\nb\r\nc", b"\n"), [&b"a\n"[..], b"b\r\n", b"c"]);
        assert_eq!(records(b"a\n", b"\n"), [b"a\n"]);
        assert!(records(b"", b"\n").is_empty());
        assert_eq!(records(b"a;;b;c;;", b";;"), [&b"a;;"[..], b"b;c;;"]);
        assert_eq!(records(b"a;b;", b";;"), [b"a;b;"]);
        assert_eq!(records(b"\n\n", b"\n"), [b"\n", b"\n"]);
    }

    #[test]
    fn lines_lose_a_carriage_return_other_delimiters_do_not() {
        let mut f = framing();
        assert_eq!(f.strip(b"a\r\n"), b"a");
        assert_eq!(f.strip(b"a\r"), b"a");
        assert_eq!(f.strip(b"a"), b"a");
        f.delimiter = b"|".to_vec();
        assert_eq!(f.strip(b"a\r|"), b"a\r");
        assert_eq!(f.strip(b"a\n"), b"a\n");
    }

    #[test]
    fn delimiters_take_kcats_escapes() {
        assert_eq!(delimiter("\\n").unwrap().0, b"\n");
        assert_eq!(delimiter("\\t\\r\\n").unwrap().0, b"\t\r\n");
        assert_eq!(delimiter("\\x1e").unwrap().0, [0x1e]);
        assert_eq!(delimiter("a\\x00b").unwrap().0, b"a\0b");
        assert_eq!(delimiter("\\\\").unwrap().0, b"\\");
        assert_eq!(delimiter("::").unwrap().0, b"::");
        assert_eq!(delimiter("\\q").unwrap().0, b"\\q");
        assert_eq!(delimiter("x\\").unwrap().0, b"x\\");
        assert!(delimiter("\\x1").is_err());
        assert!(delimiter("\\xzz").is_err());
        assert!(delimiter("").is_err());
    }

    #[test]
    fn headers_are_name_equals_value_or_a_name() {
        assert_eq!(header("a=b=c").unwrap(), ("a".into(), Some("b=c".into())));
        assert_eq!(header("a=").unwrap(), ("a".into(), Some(String::new())));
        assert_eq!(header("a").unwrap(), ("a".into(), None));
        assert!(header("=b").is_err());
    }

    #[test]
    fn a_record_splits_into_headers_key_and_value() {
        let mut f = framing();
        f.key_separator = Some(b":".to_vec());
        f.headers = Some(HeaderFormat {
            delimiter: b"\t".to_vec(),
            separator: b",".to_vec(),
            key_separator: b"=".to_vec(),
        });
        let p = f.parse(b"h1=v1,h2=\tk:v:w\n").unwrap();
        assert_eq!(p.key, Some(&b"k"[..]));
        assert_eq!(p.value, b"v:w");
        assert_eq!(
            p.headers,
            [("h1".into(), &b"v1"[..]), ("h2".into(), &b""[..])]
        );
        let p = f.parse(b"\tk:v").unwrap();
        assert!(p.headers.is_empty());
        let e = f.parse(b"k:v").err().unwrap();
        assert!(e.starts_with("no headers delimiter"), "{e}");
        let e = f.parse(b"h1\tk:v").err().unwrap();
        assert!(e.contains("header key separator"), "{e}");
        let e = f.parse(b"h=1\tkv").err().unwrap();
        assert!(e.contains("key separator \":\""), "{e}");
    }

    #[test]
    fn fixed_headers_come_first_and_the_partition_is_set() {
        let mut f = framing();
        f.fixed_headers = ProducerRecord::<&[u8], &[u8]>::new("t")
            .header("fixed", None)
            .headers;
        f.partition = Some(2);
        f.headers = Some(HeaderFormat {
            delimiter: b"|".to_vec(),
            separator: b",".to_vec(),
            key_separator: b":".to_vec(),
        });
        let record = f.record("t", f.parse(b"own:x|value").unwrap());
        assert_eq!(record.partition, Some(2));
        let names: Vec<&str> = record.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(names, ["fixed", "own"]);
        assert_eq!(record.headers[0].value, None);
        assert_eq!(record.value, Some(&b"value"[..]));
    }
}
