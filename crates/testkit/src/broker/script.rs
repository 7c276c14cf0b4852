//! Fault scripts: which requests a rule matches, and what it does to them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_protocol::ErrorCode;

/// A scripted fault: which requests ([`Rule::on_produce`], [`Rule::on_api`], narrowed with
/// [`RuleBuilder::nth`], [`RuleBuilder::times`], [`RuleBuilder::partition`], ...) and what
/// happens to them ([`RuleBuilder::respond_error`], [`RuleBuilder::drop_response`], ...).
///
/// ```
/// use std::time::Duration;
/// use kafka_producer_protocol::ErrorCode;
/// use kafka_producer_testkit::Rule;
///
/// // The 2nd produce request after the rule is scripted: every partition gets NOT_LEADER_OR_FOLLOWER.
/// let r = Rule::on_produce().nth(2).respond_error(ErrorCode::NOT_LEADER_OR_FOLLOWER);
/// // The first three produce requests carrying t-1: that partition gets NOT_ENOUGH_REPLICAS.
/// let r = Rule::on_produce().partition("t", 1).times(3).respond_error(ErrorCode::NOT_ENOUGH_REPLICAS);
/// // Every produce request is answered half a second late.
/// let r = Rule::on_produce().delay(Duration::from_millis(500));
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    when: RuleBuilder,
    fault: Fault,
}

/// The "which requests" half of a [`Rule`]; one of its action methods finishes it.
///
/// Without [`nth`](Self::nth), [`times`](Self::times) or [`from_nth`](Self::from_nth) a rule applies to
/// every request it matches, for as long as it is scripted. Requests are counted per rule, from
/// the moment it is scripted, and only those it matches (its API and, if given, its partition).
#[derive(Debug, Clone)]
#[must_use = "a rule needs an action, e.g. .respond_error(..)"]
pub struct RuleBuilder {
    api: ApiKey,
    partition: Option<(String, i32)>,
    window: Window,
}

/// Which of a rule's matching requests it fires on (1-based).
#[derive(Debug, Clone, Copy)]
enum Window {
    Every,
    Nth(usize),
    First(usize),
    From(usize),
}

impl Window {
    fn contains(self, n: usize) -> bool {
        match self {
            Window::Every => true,
            Window::Nth(k) => n == k,
            Window::First(k) => n <= k,
            Window::From(k) => n >= k,
        }
    }
}

/// What a rule does to a request it fires on.
///
/// When several rules fire on one request: each partition's error applies to its partition, the
/// first whole-request error wins over later ones, delays add up, and of the other faults the
/// one scripted first wins.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this error code instead of processing: for Produce every partition of the
    /// request (or only the rule's partition) gets it and nothing is stored; for Metadata every
    /// topic (or only the rule's partition, which then has no leader); for ApiVersions,
    /// InitProducerId, AddOffsetsToTxn and EndTxn the top-level error code; for
    /// FindCoordinator the error of every key (v4+) or the top-level one; for
    /// AddPartitionsToTxn every partition (or only the rule's, and the others then get
    /// OPERATION_NOT_ATTEMPTED) and none joins the transaction; for TxnOffsetCommit every
    /// partition (or only the rule's; the others' offsets are taken).
    RespondError(ErrorCode),
    /// Process the request (Produce: store the records) and never answer; the connection then
    /// goes silent (what arrives on it is read and ignored) until the client closes it, as when
    /// the network between them fails. The client sees its `request.timeout.ms` pass.
    DropResponse,
    /// Process the request and never answer it, but go on serving later requests on the
    /// connection. A Kafka broker never does this (it answers each connection's requests in
    /// order); it shows whether a client notices a response that does not match its oldest
    /// request.
    SkipResponse,
    /// Close the connection as soon as the request arrives, before processing it.
    CloseBefore,
    /// Process the request, then close the connection instead of answering ("lost response").
    CloseAfter,
    /// Process the request, then wait this long before answering. Like a Kafka broker, the
    /// connection reads no further request meanwhile.
    Delay(Duration),
    /// Process the request and answer with a damaged response frame.
    Corrupt(Corruption),
    /// As [`Fault::RespondError`] with this error code (NOT_LEADER_OR_FOLLOWER or
    /// FENCED_LEADER_EPOCH, for a client to act on it), and in a Produce answer (v10+) each
    /// refused partition names its new leader (KIP-951): `CurrentLeader` is `leader` at
    /// `epoch`, and `NodeEndpoints` gives the leader's address when it is one of
    /// [`FakeConfig::node_ids`](super::FakeConfig::node_ids) (none otherwise: a client must
    /// know it already). Nothing else changes: Metadata answers still name the old leader at
    /// epoch 0, as from a broker the news has not reached yet.
    RespondNewLeader {
        /// The partitions' error.
        code: ErrorCode,
        /// The new leader's node id.
        leader: i32,
        /// Its leader epoch.
        epoch: i32,
    },
}

/// How [`Fault::Corrupt`] damages a response frame. The size prefix always matches what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The header (correlation id intact) and the first half of the body: the decoder runs out
    /// of bytes inside a whole frame.
    TruncatedBody,
    /// The whole response followed by eight 0xFF bytes.
    TrailingBytes,
    /// The whole response with another correlation id (the request's plus 1,000,000).
    WrongCorrelationId,
    /// The response header (correlation id intact), then these bytes as the body.
    Body(Bytes),
    /// These bytes, whatever they are, as the frame's content (after the 4-byte size).
    Raw(Bytes),
}

impl Rule {
    /// Matches Produce requests.
    pub fn on_produce() -> RuleBuilder {
        Rule::on_api(ApiKey::Produce)
    }

    /// Matches Metadata requests.
    pub fn on_metadata() -> RuleBuilder {
        Rule::on_api(ApiKey::Metadata)
    }

    /// Matches requests of this API.
    pub fn on_api(api: ApiKey) -> RuleBuilder {
        RuleBuilder {
            api,
            partition: None,
            window: Window::Every,
        }
    }

    /// The API the rule matches.
    pub fn api(&self) -> ApiKey {
        self.when.api
    }

    /// What the rule does.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }
}

impl RuleBuilder {
    /// Only the `n`-th matching request (1 is the first).
    pub fn nth(mut self, n: usize) -> Self {
        assert!(n >= 1, "nth counts from 1");
        self.window = Window::Nth(n);
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.window = Window::First(n);
        self
    }

    /// The `n`-th matching request and every one after it.
    pub fn from_nth(mut self, n: usize) -> Self {
        assert!(n >= 1, "from_nth counts from 1");
        self.window = Window::From(n);
        self
    }

    /// Only requests that carry this partition (Produce, AddPartitionsToTxn, TxnOffsetCommit)
    /// or ask about its topic (Metadata).
    /// [`respond_error`](Self::respond_error) then concerns that partition alone; the others in
    /// the request are processed as usual. The other actions concern the whole request.
    pub fn partition(mut self, topic: impl Into<String>, partition: i32) -> Self {
        self.partition = Some((topic.into(), partition));
        self
    }

    /// See [`Fault::RespondError`].
    pub fn respond_error(self, code: ErrorCode) -> Rule {
        self.then(Fault::RespondError(code))
    }

    /// See [`Fault::RespondNewLeader`].
    pub fn respond_new_leader(self, code: ErrorCode, leader: i32, epoch: i32) -> Rule {
        self.then(Fault::RespondNewLeader {
            code,
            leader,
            epoch,
        })
    }

    /// See [`Fault::DropResponse`].
    pub fn drop_response(self) -> Rule {
        self.then(Fault::DropResponse)
    }

    /// See [`Fault::SkipResponse`].
    pub fn skip_response(self) -> Rule {
        self.then(Fault::SkipResponse)
    }

    /// See [`Fault::CloseBefore`].
    pub fn close_connection_before(self) -> Rule {
        self.then(Fault::CloseBefore)
    }

    /// See [`Fault::CloseAfter`].
    pub fn close_connection_after(self) -> Rule {
        self.then(Fault::CloseAfter)
    }

    /// See [`Fault::Delay`].
    pub fn delay(self, delay: Duration) -> Rule {
        self.then(Fault::Delay(delay))
    }

    /// A response whose body is cut in half ([`Corruption::TruncatedBody`]): a client must
    /// reject it as undecodable.
    pub fn corrupt_response(self) -> Rule {
        self.then(Fault::Corrupt(Corruption::TruncatedBody))
    }

    /// See [`Fault::Corrupt`].
    pub fn corrupt_response_with(self, corruption: Corruption) -> Rule {
        self.then(Fault::Corrupt(corruption))
    }

    /// Any [`Fault`].
    pub fn then(self, fault: Fault) -> Rule {
        Rule { when: self, fault }
    }
}

/// Returned by [`FakeBroker::script`](super::FakeBroker::script): how often the rule has fired.
#[derive(Debug, Clone)]
pub struct RuleHandle {
    fired: Arc<AtomicUsize>,
}

impl RuleHandle {
    /// How many requests the rule has fired on so far.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::Acquire)
    }
}

/// The rules in force, in the order they were scripted.
#[derive(Debug, Default)]
pub(super) struct Script {
    rules: Vec<Armed>,
}

#[derive(Debug)]
struct Armed {
    rule: Rule,
    /// Matching requests seen since it was scripted.
    seen: usize,
    fired: Arc<AtomicUsize>,
}

/// A new leader named with an error: for one partition, or (`None`) for every partition the
/// request's error reaches.
#[derive(Debug)]
pub(super) struct NamedLeader {
    partition: Option<(String, i32)>,
    leader: i32,
    epoch: i32,
}

/// The faults that fire on one request, combined.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// An error for the whole request.
    pub(super) error: Option<ErrorCode>,
    /// Errors for single partitions (Produce, AddPartitionsToTxn, TxnOffsetCommit) or topics'
    /// partitions (Metadata).
    pub(super) partition_errors: Vec<(String, i32, ErrorCode)>,
    /// New leaders named with errors ([`Fault::RespondNewLeader`]).
    pub(super) leaders: Vec<NamedLeader>,
    /// The sum of the delays.
    pub(super) delay: Option<Duration>,
    /// What happens to the connection and the response: the first rule that says wins.
    pub(super) transport: Option<Fault>,
}

impl Faults {
    /// The error `topic`-`partition` gets instead of being processed, if any.
    pub(super) fn error_for(&self, topic: &str, partition: i32) -> Option<ErrorCode> {
        self.partition_errors
            .iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .map(|&(_, _, c)| c)
            .or(self.error)
    }

    /// The new leader (node id, epoch) named with `topic`-`partition`'s error, if any.
    pub(super) fn leader_for(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        let this = |n: &&NamedLeader| {
            n.partition
                .as_ref()
                .is_some_and(|(t, p)| t == topic && *p == partition)
        };
        self.leaders
            .iter()
            .find(this)
            .or_else(|| self.leaders.iter().find(|n| n.partition.is_none()))
            .map(|n| (n.leader, n.epoch))
    }
}

impl Script {
    pub(super) fn add(&mut self, rule: Rule) -> RuleHandle {
        let fired = Arc::new(AtomicUsize::new(0));
        self.rules.push(Armed {
            rule,
            seen: 0,
            fired: fired.clone(),
        });
        RuleHandle { fired }
    }

    pub(super) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts the request against every rule that matches it and combines the faults of those
    /// that fire. `carries(topic, partition)` says whether the request concerns a partition.
    pub(super) fn check(&mut self, api: i16, carries: impl Fn(&str, i32) -> bool) -> Faults {
        let mut faults = Faults::default();
        for armed in &mut self.rules {
            let when = &armed.rule.when;
            if when.api as i16 != api {
                continue;
            }
            if let Some((t, p)) = &when.partition {
                if !carries(t, *p) {
                    continue;
                }
            }
            armed.seen += 1;
            if !when.window.contains(armed.seen) {
                continue;
            }
            armed.fired.fetch_add(1, Ordering::AcqRel);
            match (&armed.rule.fault, &when.partition) {
                (Fault::RespondError(code), Some((t, p))) => {
                    faults.partition_errors.push((t.clone(), *p, *code))
                }
                (Fault::RespondError(code), None) => {
                    faults.error.get_or_insert(*code);
                }
                (
                    Fault::RespondNewLeader {
                        code,
                        leader,
                        epoch,
                    },
                    partition,
                ) => {
                    match partition {
                        Some((t, p)) => faults.partition_errors.push((t.clone(), *p, *code)),
                        // Only with the error it goes with: the first whole-request one wins.
                        None if faults.error.is_some() => continue,
                        None => faults.error = Some(*code),
                    }
                    faults.leaders.push(NamedLeader {
                        partition: partition.clone(),
                        leader: *leader,
                        epoch: *epoch,
                    });
                }
                (Fault::Delay(d), _) => {
                    *faults.delay.get_or_insert(Duration::ZERO) += *d;
                }
                (other, _) => {
                    faults.transport.get_or_insert_with(|| other.clone());
                }
            }
        }
        faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCE: i16 = ApiKey::Produce as i16;
    const METADATA: i16 = ApiKey::Metadata as i16;

    fn any(_: &str, _: i32) -> bool {
        true
    }

    #[test]
    fn windows_count_matching_requests_from_when_the_rule_is_scripted() {
        let mut s = Script::default();
        let nth = s.add(Rule::on_produce().nth(2).drop_response());
        let times = s.add(Rule::on_produce().times(2).respond_error(ErrorCode(6)));
        let from = s.add(
            Rule::on_produce()
                .from_nth(3)
                .delay(Duration::from_millis(5)),
        );
        let metadata = s.add(Rule::on_metadata().close_connection_before());

        let f = s.check(PRODUCE, any);
        assert_eq!(f.error, Some(ErrorCode(6)));
        assert!(f.transport.is_none() && f.delay.is_none());
        let f = s.check(PRODUCE, any);
        assert!(matches!(f.transport, Some(Fault::DropResponse)));
        assert_eq!(f.error, Some(ErrorCode(6)));
        let f = s.check(PRODUCE, any);
        assert!(f.error.is_none() && f.transport.is_none());
        assert_eq!(f.delay, Some(Duration::from_millis(5)));
        assert!(matches!(
            s.check(METADATA, any).transport,
            Some(Fault::CloseBefore)
        ));
        assert_eq!(
            (nth.fired(), times.fired(), from.fired(), metadata.fired()),
            (1, 2, 1, 1)
        );
    }

    #[test]
    fn a_partition_rule_counts_only_requests_carrying_its_partition() {
        let mut s = Script::default();
        let r = s.add(
            Rule::on_produce()
                .partition("t", 1)
                .nth(2)
                .respond_error(ErrorCode(19)),
        );
        let only_p0 = |t: &str, p: i32| t == "t" && p == 0;
        let with_p1 = |t: &str, p: i32| t == "t" && p <= 1;
        assert!(s.check(PRODUCE, only_p0).error_for("t", 1).is_none());
        assert!(s.check(PRODUCE, with_p1).error_for("t", 1).is_none());
        let f = s.check(PRODUCE, with_p1);
        assert_eq!(f.error_for("t", 1), Some(ErrorCode(19)));
        assert_eq!(f.error_for("t", 0), None, "the other partitions are served");
        assert_eq!(r.fired(), 1);
    }

    #[test]
    fn a_new_leader_goes_with_its_error() {
        let mut s = Script::default();
        s.add(
            Rule::on_produce()
                .partition("t", 1)
                .respond_new_leader(ErrorCode(6), 2, 5),
        );
        s.add(Rule::on_produce().respond_new_leader(ErrorCode(74), 3, 9));
        let f = s.check(PRODUCE, any);
        assert_eq!(f.error_for("t", 1), Some(ErrorCode(6)));
        assert_eq!(f.leader_for("t", 1), Some((2, 5)));
        assert_eq!(f.error_for("t", 0), Some(ErrorCode(74)));
        assert_eq!(f.leader_for("t", 0), Some((3, 9)));
        // A whole-request error scripted first wins, and names no leader.
        let mut s = Script::default();
        s.add(Rule::on_produce().respond_error(ErrorCode(7)));
        s.add(Rule::on_produce().respond_new_leader(ErrorCode(6), 2, 5));
        let f = s.check(PRODUCE, any);
        assert_eq!(f.error_for("t", 0), Some(ErrorCode(7)));
        assert_eq!(f.leader_for("t", 0), None);
    }

    #[test]
    fn delays_add_up_and_the_first_transport_fault_wins() {
        let mut s = Script::default();
        s.add(Rule::on_produce().delay(Duration::from_millis(1)));
        s.add(Rule::on_produce().delay(Duration::from_millis(2)));
        s.add(Rule::on_produce().close_connection_after());
        s.add(Rule::on_produce().corrupt_response());
        let f = s.check(PRODUCE, any);
        assert_eq!(f.delay, Some(Duration::from_millis(3)));
        assert!(matches!(f.transport, Some(Fault::CloseAfter)));
        s.clear();
        assert!(s.is_empty());
        assert!(s.check(PRODUCE, any).transport.is_none());
    }
}
