//! Choosing a record's partition, exactly as the Java client does.
//!
//! The order of precedence is the Java client's: an explicit partition in the record wins; then a
//! user [`Partitioner`], if one is set and answers; then the key's murmur2 hash (unless
//! `partitioner.ignore.keys`); then, for records without a key, the uniform sticky partitioner
//! (KIP-794): stay on one partition until `batch.size` bytes went there and its batch is full (or
//! was sent), then move to another one chosen at random among those with a leader. With
//! `partitioner.adaptive.partitioning.enable` (the default) that choice is weighted, as Java's
//! is, by how short each partition's queue of batches was at the sender's last look
//! ([`QueueSizes`], `Accumulator::ready_for`): a partition whose broker keeps up gets more
//! records than one whose batches pile up. Switching
//! only at a batch boundary, as the Java client does, keeps batches full. With batch growth
//! (`batch.max.size`, README "batch growth") a batch is full only at `batch.max.size`, and
//! the partitioner also moves on, once `batch.size` bytes went there, when the partition's batch
//! was sent, before a record would start a new one there (`StickyCount::batch_sent`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

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
    ///
    /// It may be asked more than once for one record, and only the last answer counts: when the
    /// record needs a new batch, a send asks again once it has the memory for the batch (the
    /// Java client asks again in that case too), and a `send` after a `try_send` that handed the
    /// record back asks afresh. A partitioner that counts calls (round-robin) then skips a
    /// partition now and then.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition_count: u32,
    ) -> Option<u32>;
}

/// The sticky partition of one topic, for records without a key, shared by every thread that
/// sends to it without a lock, as the Java client's `BuiltInPartitioner` is.
///
/// It is one word: the partition, and an epoch that changes at every move. A send reads it with a
/// plain load and counts what it appended in the partition's own [`StickyCount`], under the
/// partition's lock that `append` takes anyway; the move on, once per batch, is a compare-and-swap
/// from the epoch the mover saw, so of two threads deciding to move at once only one does. Under
/// the partition's lock a send checks that the partition is still the sticky one (Java's
/// `partitionChanged`), so no record starts a batch on a partition just left.
///
/// A new partition is chosen with the topic's [`LoadStats`], which the sender replaces at every
/// look at the queues; they are read once per batch, not per record, so a small lock does.
#[derive(Debug)]
pub(crate) struct Sticky {
    /// `epoch << 32 | partition`; partition [`NO_PARTITION`] until one is chosen.
    state: AtomicU64,
    /// The weights of the next choice; empty: uniform.
    load: Mutex<LoadStats>,
}

const NO_PARTITION: u32 = u32::MAX;

/// A new epoch, from one counter for the whole process: when a topic grows, its new queues get a
/// new `Sticky` while sends holding the old one may still count in the same partitions, and
/// neither must take the other's epoch for its own. (Once per batch, not per record.)
fn next_epoch() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The sticky partition as one send saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StickyChoice {
    pub(crate) epoch: u32,
    pub(crate) partition: u32,
}

impl StickyChoice {
    fn from_bits(bits: u64) -> Self {
        StickyChoice {
            epoch: (bits >> 32) as u32,
            partition: bits as u32,
        }
    }

    fn bits(self) -> u64 {
        u64::from(self.epoch) << 32 | u64::from(self.partition)
    }
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            state: AtomicU64::new(u64::from(NO_PARTITION)),
            load: Mutex::new(LoadStats::default()),
        }
    }
}

impl Sticky {
    /// The partition a keyless record goes to now, choosing one if there is none (see
    /// [`Sticky::choose`]).
    pub(crate) fn current(&self, available: &[u32], partition_count: u32) -> StickyChoice {
        // Relaxed throughout: the state only steers records, it guards no other memory.
        let mut seen = StickyChoice::from_bits(self.state.load(Ordering::Relaxed));
        loop {
            if seen.partition < partition_count {
                return seen;
            }
            let chosen = StickyChoice {
                epoch: next_epoch(),
                partition: self.choose(available, partition_count, random_u64()),
            };
            match self.state.compare_exchange(
                seen.bits(),
                chosen.bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return chosen,
                Err(now) => seen = StickyChoice::from_bits(now),
            }
        }
    }

    /// A new sticky partition for the random number `r`: weighted by the topic's load stats if it
    /// has some, else uniform among `available`, the partitions with a leader, or among all when
    /// none has one. Java's `nextPartition`.
    pub(crate) fn choose(&self, available: &[u32], partition_count: u32, r: u64) -> u32 {
        let weighted = self
            .load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .choose(r)
            // Stats of a topic that has grown since name only partitions it had.
            .filter(|&p| p < partition_count);
        match weighted {
            Some(p) => p,
            None if available.is_empty() => (r % u64::from(partition_count)) as u32,
            None => available[(r % available.len() as u64) as usize],
        }
    }

    /// Replaces the weights of the next choices with those of `sizes` (the sender's last look
    /// at the topic's queues).
    pub(crate) fn update_load(&self, sizes: &QueueSizes) {
        self.load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(sizes);
    }

    /// Whether `choice` is still the sticky partition.
    pub(crate) fn is(&self, choice: StickyChoice) -> bool {
        self.state.load(Ordering::Relaxed) == choice.bits()
    }

    /// Leaves `choice`'s partition: the next record picks another. Nothing happens if another
    /// send moved on from it already.
    pub(crate) fn move_on(&self, choice: StickyChoice) {
        let next = StickyChoice {
            epoch: next_epoch(),
            partition: NO_PARTITION,
        };
        let _ = self.state.compare_exchange(
            choice.bits(),
            next.bits(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// What the sticky partitioner appended to one partition since it became the sticky one; kept in
/// the partition's queue, under its lock, so counting costs a send no atomic operation.
#[derive(Debug, Default)]
pub(crate) struct StickyCount {
    epoch: u32,
    produced: usize,
}

impl StickyCount {
    /// Bytes appended while `epoch` is the sticky one; the count starts afresh with a new epoch.
    fn produced(&mut self, epoch: u32) -> &mut usize {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.produced = 0;
        }
        &mut self.produced
    }

    /// Counts `bytes` appended by the sticky choice of `epoch` to a batch that may hold
    /// `batch_limit` bytes; true when the partitioner should move on. It moves on once
    /// `batch_size` bytes went there and the batch they went to is closed (`batch_open` false),
    /// as Java's; in any case after twice `batch_limit` bytes, as Java's after twice
    /// `batch.size`: when `linger.ms` sends batches before they fill, the partition never has a
    /// full batch, and without this bound it would keep every record.
    pub(crate) fn appended(
        &mut self,
        epoch: u32,
        bytes: usize,
        batch_size: usize,
        batch_limit: usize,
        batch_open: bool,
    ) -> bool {
        let produced = self.produced(epoch);
        *produced += bytes;
        (*produced >= batch_size.max(1) && !batch_open)
            || *produced >= batch_limit.max(batch_size).max(1).saturating_mul(2)
    }

    /// With batch growth: the partition has no open batch (its last one was sent, by `linger.ms`
    /// or with another's request), so a record would start a new one there. True once
    /// `batch_size` bytes went there: move on first, so that the record starts its batch on the
    /// next partition, and a partition gets what arrives while its batch fills, in one batch.
    pub(crate) fn batch_sent(&mut self, epoch: u32, batch_size: usize) -> bool {
        *self.produced(epoch) >= batch_size.max(1)
    }
}

/// The length of each partition's queue of batches, for one topic, as the sender saw them:
/// what [`Sticky::update_load`] weighs partitions by. Only partitions with a leader are in it,
/// less those `partitioner.availability.timeout.ms` leaves out. Kept and refilled by the
/// sender, so that its look at the queues allocates nothing once the buffers are large enough.
#[derive(Debug, Default)]
pub(crate) struct QueueSizes {
    /// Batches queued, by entry.
    sizes: Vec<u32>,
    /// The partition of each entry.
    partitions: Vec<u32>,
    /// The topic's partitions, in the stats or not.
    all: usize,
}

impl QueueSizes {
    /// Empties the sizes, for a topic of `partition_count` partitions.
    pub(crate) fn start(&mut self, partition_count: usize) {
        self.sizes.clear();
        self.partitions.clear();
        self.all = partition_count;
    }

    /// `partition` has `queued` batches.
    pub(crate) fn push(&mut self, partition: u32, queued: usize) {
        self.sizes.push(u32::try_from(queued).unwrap_or(u32::MAX));
        self.partitions.push(partition);
    }
}

/// The weights of a topic's next sticky choice (Java's `PartitionLoadStats`): a cumulative
/// frequency table where each partition weighs one more than the longest queue less its own
/// queue, so an empty queue weighs most and the longest weighs 1. Empty: choose uniformly.
#[derive(Debug, Default)]
struct LoadStats {
    /// Running sums of the weights; the last is the total.
    cumulative: Vec<u64>,
    /// The partition of each entry.
    partitions: Vec<u32>,
}

impl LoadStats {
    /// The weights from `q`, by Java's rules: none when the topic has fewer than two
    /// partitions or none is in `q`, nor when every partition is there with the same queue
    /// length (uniform is then the same, and cheaper). With partitions left out (no leader, or
    /// not available) weights stay even if equal: only those in `q` may be chosen.
    fn update(&mut self, q: &QueueSizes) {
        self.cumulative.clear();
        self.partitions.clear();
        let Some(&first) = q.sizes.first() else {
            return;
        };
        if q.all < 2 {
            return;
        }
        let max = q.sizes.iter().copied().max().unwrap_or(first);
        if q.sizes.len() == q.all && q.sizes.iter().all(|&s| s == first) {
            return;
        }
        let mut sum = 0u64;
        for &size in &q.sizes {
            sum += u64::from(max) + 1 - u64::from(size);
            self.cumulative.push(sum);
        }
        self.partitions.extend_from_slice(&q.partitions);
    }

    /// The partition for the random number `r`, or `None` without weights: the entry whose
    /// range of the total holds `r % total`.
    fn choose(&self, r: u64) -> Option<u32> {
        let total = *self.cumulative.last()?;
        let at = r % total;
        let index = self.cumulative.partition_point(|&c| c <= at);
        self.partitions.get(index).copied()
    }
}

/// A fast per-thread pseudo-random number (xorshift64*); good enough to spread partitions. The
/// product's high half, its best bits, comes out as the low half, which `%` reads first.
fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).rotate_left(32)
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

    /// One thread's sends with the sticky partitioner, as `append` does them.
    struct Sends {
        sticky: Sticky,
        counts: Vec<StickyCount>,
        available: Vec<u32>,
    }

    impl Sends {
        fn new(available: &[u32], partitions: usize) -> Self {
            Sends {
                sticky: Sticky::default(),
                counts: (0..partitions).map(|_| StickyCount::default()).collect(),
                available: available.to_vec(),
            }
        }

        fn current(&self) -> u32 {
            self.sticky
                .current(&self.available, self.counts.len() as u32)
                .partition
        }

        /// Whether a partition is chosen without choosing one.
        fn chosen(&self) -> Option<u32> {
            let c = StickyChoice::from_bits(self.sticky.state.load(Ordering::Relaxed));
            (c.partition != NO_PARTITION).then_some(c.partition)
        }

        fn append(&mut self, bytes: usize, batch_size: usize, limit: usize, open: bool) {
            let c = self
                .sticky
                .current(&self.available, self.counts.len() as u32);
            if self.counts[c.partition as usize].appended(c.epoch, bytes, batch_size, limit, open) {
                self.sticky.move_on(c);
            }
        }

        fn batch_sent(&mut self, partition: u32, batch_size: usize) {
            let c = self
                .sticky
                .current(&self.available, self.counts.len() as u32);
            if c.partition == partition
                && self.counts[partition as usize].batch_sent(c.epoch, batch_size)
            {
                self.sticky.move_on(c);
            }
        }

        fn batch_full(&mut self, partition: u32) {
            let c = self
                .sticky
                .current(&self.available, self.counts.len() as u32);
            if c.partition == partition {
                self.sticky.move_on(c);
            }
        }
    }

    #[test]
    fn sticky_stays_until_batch_size_then_moves_among_available() {
        let mut s = Sends::new(&[1, 3], 4);
        let first = s.current();
        assert!([1, 3].contains(&first));
        s.append(100, 1000, 1000, true);
        assert_eq!(s.current(), first);
        s.append(900, 1000, 1000, true);
        assert_eq!(s.current(), first, "its batch is still open");
        s.append(10, 1000, 1000, false);
        assert_eq!(s.chosen(), None, "the next record picks a partition anew");
        // A new choice is made, still among the available partitions.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = s.current();
            assert!([1, 3].contains(&p));
            seen.insert(p);
            s.append(1000, 1000, 1000, false);
        }
        assert_eq!(seen.len(), 2, "both available partitions get used");
    }

    #[test]
    fn sticky_with_no_leaders_uses_any_partition() {
        let mut s = Sends::new(&[], 3);
        for _ in 0..50 {
            assert!(s.current() < 3);
            s.append(1, 1, 1, false);
        }
    }

    #[test]
    fn sticky_moves_on_after_twice_batch_size_even_if_batches_never_fill() {
        // Batches sent by linger.ms before they fill: the partition always has an open batch.
        let mut s = Sends::new(&[0, 1, 2, 3], 4);
        let p = s.current();
        for _ in 0..6 {
            s.append(300, 1000, 1000, true);
        }
        assert_eq!(s.current(), p, "1800 bytes: still under 2000");
        s.append(300, 1000, 1000, true);
        assert_eq!(
            s.chosen(),
            None,
            "2100 bytes: the next record picks a partition anew"
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            seen.insert(s.current());
            s.append(1000, 1000, 1000, true);
            s.append(1000, 1000, 1000, true);
        }
        assert_eq!(seen.len(), 4, "every partition gets records");
    }

    #[test]
    fn with_growth_sticky_stays_while_its_batch_grows_and_moves_on_before_the_next_one() {
        let mut s = Sends::new(&[0, 1, 2, 3], 4);
        let p = s.current();
        // batch.size 1000, batch.max.size 8000.
        for _ in 0..31 {
            s.append(100, 1000, 8000, true);
        }
        assert_eq!(
            s.current(),
            p,
            "3100 bytes, past batch.size, in a batch still filling"
        );
        // Another partition's batch was sent: no change.
        s.batch_sent((p + 1) % 4, 1000);
        assert_eq!(s.chosen(), Some(p));
        // This partition's batch was sent: the next record goes elsewhere, not into a new
        // batch here.
        s.batch_sent(p, 1000);
        assert_eq!(s.chosen(), None);
        // Under batch.size, a partition whose batch was sent keeps the next records.
        let q = s.current();
        s.append(100, 1000, 8000, true);
        s.batch_sent(q, 1000);
        assert_eq!(s.chosen(), Some(q));
        // A batch that fills up to batch.max.size closes: move on too.
        s.append(7900, 1000, 8000, false);
        assert_eq!(s.chosen(), None);
        // Never more than twice batch.max.size on one partition.
        let _ = s.current();
        for _ in 0..159 {
            s.append(100, 1000, 8000, true);
        }
        assert!(s.chosen().is_some(), "15,900 bytes");
        s.append(100, 1000, 8000, true);
        assert_eq!(s.chosen(), None, "16,000 bytes");
    }

    #[test]
    fn sticky_moves_on_when_its_batch_has_no_room() {
        let mut s = Sends::new(&[0, 1, 2, 3], 4);
        let p = s.current();
        s.append(10, 1000, 1000, true);
        s.batch_full((p + 1) % 4); // another partition's batch: no change
        assert_eq!(s.current(), p);
        s.batch_full(p);
        assert_eq!(s.chosen(), None);
        // Back on the same partition later, the count starts afresh.
        while s.current() != p {
            s.batch_full(s.current());
        }
        s.append(995, 1000, 1000, false);
        assert_eq!(
            s.chosen(),
            Some(p),
            "995 bytes since it became sticky again"
        );
    }

    #[test]
    fn of_two_moves_from_the_same_choice_only_one_happens() {
        let s = Sticky::default();
        let first = s.current(&[0, 1, 2, 3], 4);
        s.move_on(first);
        let second = s.current(&[0, 1, 2, 3], 4);
        // A send that saw `first` decides to move on after another send already did.
        s.move_on(first);
        assert!(s.is(second), "the later choice stays");
        assert_ne!(first.epoch, second.epoch);
    }

    fn sizes(all: usize, queued: &[(u32, usize)]) -> QueueSizes {
        let mut q = QueueSizes::default();
        q.start(all);
        for &(p, n) in queued {
            q.push(p, n);
        }
        q
    }

    /// The partition chosen for each random number in `0..n`.
    fn choices(s: &Sticky, available: &[u32], count: u32, n: u64) -> Vec<u32> {
        (0..n).map(|r| s.choose(available, count, r)).collect()
    }

    #[test]
    fn weights_are_one_more_than_the_longest_queue_less_each_queue() {
        // Queues of 0, 3 and 1 batches weigh 4, 1 and 3: the table is 4, 5, 8.
        let mut stats = LoadStats::default();
        stats.update(&sizes(3, &[(0, 0), (1, 3), (2, 1)]));
        assert_eq!(stats.cumulative, [4, 5, 8]);
        assert_eq!(stats.partitions, [0, 1, 2]);
        let s = Sticky::default();
        s.update_load(&sizes(3, &[(0, 0), (1, 3), (2, 1)]));
        assert_eq!(choices(&s, &[0, 1, 2], 3, 8), [0, 0, 0, 0, 1, 2, 2, 2]);
        // The random number is taken modulo the total.
        assert_eq!(s.choose(&[0, 1, 2], 3, 8 + 4), 1);
        assert_eq!(s.choose(&[0, 1, 2], 3, u64::MAX), 2, "u64::MAX % 8 is 7");
    }

    #[test]
    fn equal_queues_mean_a_uniform_choice_among_the_available_partitions() {
        let s = Sticky::default();
        s.update_load(&sizes(3, &[(0, 2), (1, 2), (2, 2)]));
        assert!(s.load.lock().unwrap().cumulative.is_empty());
        assert_eq!(choices(&s, &[0, 2], 3, 4), [0, 2, 0, 2]);
        // Without any leader: among all partitions.
        assert_eq!(choices(&s, &[], 3, 4), [0, 1, 2, 0]);
        // Uneven queues, then even ones again: uniform again.
        s.update_load(&sizes(3, &[(0, 0), (1, 5), (2, 0)]));
        assert_eq!(
            choices(&s, &[0, 1, 2], 3, 13),
            [0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2]
        );
        s.update_load(&sizes(3, &[(0, 1), (1, 1), (2, 1)]));
        assert_eq!(choices(&s, &[0, 1, 2], 3, 3), [0, 1, 2]);
    }

    #[test]
    fn partitions_left_out_of_the_sizes_are_never_chosen() {
        // Partition 1 has no leader, or its broker has not been drained for too long: the
        // others' equal queues still make weights, so that 1 is left out.
        let s = Sticky::default();
        s.update_load(&sizes(3, &[(0, 4), (2, 4)]));
        assert_eq!(choices(&s, &[0, 1, 2], 3, 4), [0, 2, 0, 2]);
        // None in the sizes, or a topic of one partition: uniform.
        s.update_load(&sizes(3, &[]));
        assert_eq!(choices(&s, &[0, 1, 2], 3, 3), [0, 1, 2]);
        s.update_load(&sizes(1, &[(0, 7)]));
        assert!(s.load.lock().unwrap().cumulative.is_empty());
        // Weights naming a partition the caller's metadata does not have: uniform.
        s.update_load(&sizes(4, &[(3, 0), (0, 9)]));
        assert_eq!(s.choose(&[0, 1, 2], 3, 0), 0, "weights would pick 3");
        assert_eq!(s.choose(&[0, 1, 2], 4, 0), 3);
    }

    #[test]
    fn a_new_sticky_choice_follows_the_weights() {
        // Partition 0's queue is 9 batches long, partition 1's empty: weights 1 and 10.
        let mut s = Sends::new(&[0, 1], 2);
        s.sticky.update_load(&sizes(2, &[(0, 9), (1, 0)]));
        let mut chosen = [0u32; 2];
        for _ in 0..11_000 {
            chosen[s.current() as usize] += 1;
            s.batch_full(s.current());
        }
        // Expected 1000 and 10,000; a 20-sigma margin.
        assert!(chosen[0] > 400 && chosen[0] < 1600, "{chosen:?}");
    }

    #[test]
    fn threads_share_one_sticky_partition() {
        let s = std::sync::Arc::new(Sticky::default());
        let seen: Vec<StickyChoice> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.current(&[0, 1, 2, 3, 4, 5], 6))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(seen.iter().all(|c| *c == seen[0]), "{seen:?}");
    }
}
