//! Choosing a record's partition, exactly as the Java client does.
//!
//! The order of precedence is the Java client's: an explicit partition in the record wins; then a
//! user [`Partitioner`], if one is set and answers; then the key's murmur2 hash (unless
//! `partitioner.ignore.keys`); then, for records without a key, the uniform sticky partitioner
//! (KIP-794): stay on one partition until `batch.size` bytes went there and its batch is full (or
//! was sent), then move to another one chosen at random among those with a leader. Switching
//! only at a batch boundary, as the Java client does, keeps batches full. With batch growth
//! (`batch.max.size`, README "batch growth") a batch is full only at `batch.max.size`, and
//! the partitioner also moves on, once `batch.size` bytes went there, when the partition's batch
//! was sent, before a record would start a new one there (`Sticky::batch_sent`).

use std::cell::Cell;

/// Which partition the Java client's default partitioner picks for a non-null key:
/// `(murmur2(key) & 0x7fffffff) % partition_count`. An empty key is hashed like any other.
///
/// # Panics
///
/// When `partition_count` is 0.
pub fn partition_for_key(key: &[u8], partition_count: u32) -> u32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    kafka_producer_protocol::murmur2::partition_for_key(key, partition_count)
}

/// A user's partitioner.
pub trait Partitioner: Send + Sync + 'static {
    /// The partition for a record, in `0..partition_count`; `None` falls back to the built-in
    /// choice (the key's hash, or the sticky partition for a record without a key).
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition_count: u32,
    ) -> Option<u32>;
}

/// The sticky partition of one topic, for records without a key.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    current: Option<u32>,
    produced: usize,
}

impl Sticky {
    /// The partition a keyless record goes to now. `available` lists the partitions with a
    /// leader; when it is empty any partition may be chosen.
    pub(crate) fn partition(&mut self, available: &[u32], partition_count: u32) -> u32 {
        match self.current {
            Some(p) if p < partition_count => p,
            _ => {
                let p = pick(available, partition_count);
                self.current = Some(p);
                self.produced = 0;
                p
            }
        }
    }

    /// Counts `bytes` appended to the sticky partition, whose batch may hold `batch_limit`
    /// bytes. Moves on once `batch_size` bytes went there and the batch they went to is closed
    /// (`batch_open` false), as Java's; in any case after twice `batch_limit` bytes, as Java's
    /// after twice `batch.size`: when `linger.ms` sends batches before they fill, the partition
    /// never has a full batch, and without this bound it would keep every record.
    pub(crate) fn appended(
        &mut self,
        bytes: usize,
        batch_size: usize,
        batch_limit: usize,
        batch_open: bool,
    ) {
        self.produced += bytes;
        if (self.produced >= batch_size.max(1) && !batch_open)
            || self.produced >= batch_limit.max(batch_size).max(1).saturating_mul(2)
        {
            self.current = None;
        }
    }

    /// With batch growth: the sticky partition has no open batch (its last one was sent, by
    /// `linger.ms` or with another's request), so a record would start a new one there. Once
    /// `batch_size` bytes went there, move on first, so that the record starts its batch on the
    /// next partition: a partition gets what arrives while its batch fills, in one batch.
    pub(crate) fn batch_sent(&mut self, partition: u32, batch_size: usize) {
        if self.current == Some(partition) && self.produced >= batch_size.max(1) {
            self.current = None;
        }
    }

    /// The sticky partition's batch has no room for the record: move on now.
    pub(crate) fn batch_full(&mut self, partition: u32) {
        if self.current == Some(partition) {
            self.current = None;
        }
    }
}

fn pick(available: &[u32], partition_count: u32) -> u32 {
    let r = random_u32();
    if available.is_empty() {
        r % partition_count
    } else {
        available[r as usize % available.len()]
    }
}

/// A fast per-thread pseudo-random number (xorshift64*); good enough to spread partitions.
fn random_u32() -> u32 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    })
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_partition_for_known_keys() {
        // murmur2("21") = -973932308 in the Java client's UtilsTest; & 0x7fffffff = 1173551340.
        assert_eq!(partition_for_key(b"21", 10), 1173551340 % 10);
        assert_eq!(partition_for_key(b"", 1), 0);
    }

    #[test]
    fn sticky_stays_until_batch_size_then_moves_among_available() {
        let mut s = Sticky::default();
        let available = [1, 3];
        let first = s.partition(&available, 4);
        assert!(available.contains(&first));
        s.appended(100, 1000, 1000, true);
        assert_eq!(s.partition(&available, 4), first);
        s.appended(900, 1000, 1000, true);
        assert_eq!(s.partition(&available, 4), first, "its batch is still open");
        s.appended(10, 1000, 1000, false);
        // A new choice is made, still among the available partitions.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = s.partition(&available, 4);
            assert!(available.contains(&p));
            seen.insert(p);
            s.appended(1000, 1000, 1000, false);
        }
        assert_eq!(seen.len(), 2, "both available partitions get used");
    }

    #[test]
    fn sticky_with_no_leaders_uses_any_partition() {
        let mut s = Sticky::default();
        for _ in 0..50 {
            assert!(s.partition(&[], 3) < 3);
            s.appended(1, 1, 1, false);
        }
    }

    #[test]
    fn sticky_moves_on_after_twice_batch_size_even_if_batches_never_fill() {
        // Batches sent by linger.ms before they fill: the partition always has an open batch.
        let mut s = Sticky::default();
        let p = s.partition(&[0, 1, 2, 3], 4);
        for _ in 0..6 {
            s.appended(300, 1000, 1000, true);
        }
        assert_eq!(
            s.partition(&[0, 1, 2, 3], 4),
            p,
            "1800 bytes: still under 2000"
        );
        s.appended(300, 1000, 1000, true);
        assert_eq!(
            s.current, None,
            "2100 bytes: the next record picks a partition anew"
        );
        let _ = s.partition(&[0, 1, 2, 3], 4);
        assert_eq!(s.produced, 0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            seen.insert(s.partition(&[0, 1, 2, 3], 4));
            s.appended(1000, 1000, 1000, true);
            s.appended(1000, 1000, 1000, true);
        }
        assert_eq!(seen.len(), 4, "every partition gets records");
    }

    #[test]
    fn with_growth_sticky_stays_while_its_batch_grows_and_moves_on_before_the_next_one() {
        let mut s = Sticky::default();
        let p = s.partition(&[0, 1, 2, 3], 4);
        // batch.size 1000, batch.max.size 8000.
        for _ in 0..31 {
            s.appended(100, 1000, 8000, true);
        }
        assert_eq!(
            s.partition(&[0, 1, 2, 3], 4),
            p,
            "3100 bytes, past batch.size, in a batch still filling"
        );
        // Another partition's batch was sent: no change.
        s.batch_sent((p + 1) % 4, 1000);
        assert_eq!(s.current, Some(p));
        // This partition's batch was sent: the next record goes elsewhere, not into a new
        // batch here.
        s.batch_sent(p, 1000);
        assert_eq!(s.current, None);
        // Under batch.size, a partition whose batch was sent keeps the next records.
        let q = s.partition(&[0, 1, 2, 3], 4);
        s.appended(100, 1000, 8000, true);
        s.batch_sent(q, 1000);
        assert_eq!(s.current, Some(q));
        // A batch that fills up to batch.max.size closes: move on too.
        s.appended(7900, 1000, 8000, false);
        assert_eq!(s.current, None);
        // Never more than twice batch.max.size on one partition.
        let _ = s.partition(&[0, 1, 2, 3], 4);
        for _ in 0..159 {
            s.appended(100, 1000, 8000, true);
        }
        assert!(s.current.is_some(), "15,900 bytes");
        s.appended(100, 1000, 8000, true);
        assert_eq!(s.current, None, "16,000 bytes");
    }

    #[test]
    fn sticky_moves_on_when_its_batch_has_no_room() {
        let mut s = Sticky::default();
        let p = s.partition(&[0, 1, 2, 3], 4);
        s.appended(10, 1000, 1000, true);
        s.batch_full((p + 1) % 4); // another partition's batch: no change
        assert_eq!(s.partition(&[0, 1, 2, 3], 4), p);
        s.batch_full(p);
        assert_eq!(s.produced, 10);
        let _ = s.partition(&[0, 1, 2, 3], 4);
        assert_eq!(
            s.produced, 0,
            "a new sticky partition starts counting afresh"
        );
    }
}
