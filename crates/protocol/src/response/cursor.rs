//! Walking Kafka's primitive types over a byte slice without building anything.

use crate::error::DecodeError;

/// The front of a response still to be walked, and how its version encodes lengths.
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
    /// Flexible versions (KIP-482) use compact (varint, length + 1) strings and arrays and
    /// end every struct with a tagged-field section.
    flexible: bool,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], flexible: bool) -> Self {
        Cursor {
            rest: bytes,
            flexible,
        }
    }

    /// Switches encodings between the header and the body: ApiVersions v3+ has a flexible
    /// body behind a v0 header (KIP-511).
    pub(super) fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    /// Errors unless every byte has been walked.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    pub(super) fn boolean(&mut self) -> Result<(), DecodeError> {
        self.take(1).map(drop)
    }

    pub(super) fn int16(&mut self) -> Result<(), DecodeError> {
        self.take(2).map(drop)
    }

    pub(super) fn int32(&mut self) -> Result<(), DecodeError> {
        self.take(4).map(drop)
    }

    pub(super) fn int64(&mut self) -> Result<(), DecodeError> {
        self.take(8).map(drop)
    }

    pub(super) fn uuid(&mut self) -> Result<(), DecodeError> {
        self.take(16).map(drop)
    }

    /// A `string` field; null is an error unless the field is nullable in this version.
    pub(super) fn string(&mut self, nullable: Nullable) -> Result<(), DecodeError> {
        let len = if self.flexible {
            self.compact_length()?
        } else {
            let [hi, lo] = self.fixed()?;
            classic_length(i16::from_be_bytes([hi, lo]).into())?
        };
        match (len, nullable) {
            (Some(len), _) => self.take(len).map(drop),
            (None, Nullable::Yes) => Ok(()),
            (None, Nullable::No) => Err(DecodeError::InvalidLength(-1)),
        }
    }

    /// A (non-nullable) `bytes` field.
    pub(super) fn bytes(&mut self) -> Result<(), DecodeError> {
        let len = if self.flexible {
            self.compact_length()?
        } else {
            classic_length(i32::from_be_bytes(self.fixed()?).into())?
        };
        let len = len.ok_or(DecodeError::InvalidLength(-1))?;
        self.take(len).map(drop)
    }

    /// A (non-nullable) array whose elements `element` walks.
    ///
    /// Every element here takes at least one byte, so a count above the bytes left is
    /// rejected before any element is read: that is what keeps kafka-protocol's
    /// `Vec::with_capacity(count)` within the size of the frame once the walk succeeds.
    pub(super) fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = if self.flexible {
            self.compact_length()?
        } else {
            let bytes = self.fixed()?;
            classic_length(i32::from_be_bytes(bytes).into())?
        };
        let count = count.ok_or(DecodeError::InvalidLength(-1))?;
        if count > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        (0..count).try_for_each(|_| element(self))
    }

    /// A `[]int32` field.
    pub(super) fn int32_array(&mut self) -> Result<(), DecodeError> {
        self.array(Self::int32)
    }

    /// The tagged-field section ending a struct in flexible versions, when this version of
    /// the struct defines no tags: every field is skipped by its size.
    pub(super) fn tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields_with(|_, _| Ok(false))
    }

    /// The tagged-field section ending a struct in flexible versions (nothing otherwise).
    ///
    /// `known(tag, field)` walks a tag this version defines over exactly that field's bytes
    /// and returns `Ok(true)`, or returns `Ok(false)` for a tag it does not know, which is
    /// skipped by its size as Kafka does. Tags must fit in an i32. A known field must fill its size exactly:
    /// kafka-protocol decodes known tags from the message bytes without looking at the
    /// size, so a size that disagrees with the contents would make it read other bytes
    /// than the ones walked here.
    pub(super) fn tagged_fields_with(
        &mut self,
        mut known: impl FnMut(u32, &mut Cursor<'a>) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint()?;
        // Each field takes at least two bytes: its tag and its size.
        if usize::try_from(count).map_or(true, |count| count > self.rest.len() / 2) {
            return Err(DecodeError::Truncated);
        }
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            // Kafka's tags are non-negative Java ints; kafka-protocol keys unknown ones by
            // i32 and its encoders skip negative keys, so a larger tag would not survive
            // a round trip.
            if i32::try_from(tag).is_err() {
                return Err(DecodeError::Message(format!(
                    "tagged field {tag} is over i32::MAX"
                )));
            }
            let size = self.unsigned_varint()?;
            let mut field = Cursor::new(self.take(to_usize(size))?, true);
            if known(tag, &mut field)? {
                field.finish()?;
            }
        }
        Ok(())
    }

    /// Reads Kafka's unsigned varint: at most 5 bytes, and no bits beyond the 32nd.
    ///
    /// kafka-protocol reads up to 5 bytes and drops overflowing bits; rejecting those
    /// encodings here means any varint that passes is read the same way by both.
    fn unsigned_varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21] {
            let [byte] = self.fixed()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        let [last] = self.fixed()?;
        if last > 0x0f {
            return Err(DecodeError::VarintOverflow);
        }
        Ok(value | u32::from(last) << 28)
    }

    /// A compact length: 0 is null, n is n - 1.
    fn compact_length(&mut self) -> Result<Option<usize>, DecodeError> {
        Ok(self.unsigned_varint()?.checked_sub(1).map(to_usize))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.rest = rest;
        Ok(*bytes)
    }
}

/// Whether a string field may be null in the version being walked.
#[derive(Clone, Copy)]
pub(super) enum Nullable {
    Yes,
    No,
}

impl Nullable {
    /// `Yes` from `since` on: Kafka's `nullableVersions: "N+"`.
    pub(super) fn since(since: i16, version: i16) -> Self {
        if version >= since {
            Nullable::Yes
        } else {
            Nullable::No
        }
    }
}

/// A classic (int16 or int32) length: -1 is null, other negatives are errors.
fn classic_length(len: i64) -> Result<Option<usize>, DecodeError> {
    match len {
        -1 => Ok(None),
        len => usize::try_from(len)
            .map(Some)
            .map_err(|_| DecodeError::InvalidLength(len)),
    }
}

/// A u32 from the wire as a length; on a 16-bit target one that does not fit is too long
/// for any input anyway.
fn to_usize(len: u32) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}
