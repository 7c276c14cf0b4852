"""Exceptions, with kafka-python's class names and hierarchy.

``KafkaError`` is the root. Every Kafka protocol error code has its own class, a subclass of
``BrokerResponseError`` (and of ``RetriableError`` or ``InvalidMetadataError`` where a retry can
help, of ``AuthorizationError`` for the authorization failures), found by code with
``for_code``. An exception raised for a record carries what the Rust core said: the topic and
partition, the broker's message, whether the record may have been written
(``possibly_persisted``).

Transactions raise what kafka-python raises: ``IllegalStateError`` for a call the producer's
state does not allow (no ``transactional_id``, a send outside a transaction),
``ProducerFencedError`` when a newer producer with the same ``transactional_id`` took over,
``KafkaTimeoutError`` after ``max_block_ms``. A transaction that failed and must be aborted
raises ``TransactionAbortableError`` (whatever failed is its ``__cause__``), as the Java client
wraps such errors (KIP-1050). An exception with ``fatal`` set means the producer can no longer be
used: close it.
"""

__all__ = [
    "KafkaError", "RetriableError", "InvalidMetadataError", "BrokerResponseError",
    "AuthorizationError", "KafkaTimeoutError", "KafkaConfigurationError", "IllegalStateError",
    "IllegalArgumentError", "KafkaConnectionError", "NoBrokersAvailable",
    "AuthenticationFailedError", "MessageSizeTooLargeError", "DeliveryFailedError",
    "ProducerClosedError", "for_code",
]


class KafkaError(Exception):
    """The root of this package's exceptions."""

    retriable = False
    # Whether the client's metadata may be stale (kafka-python's meaning).
    invalid_metadata = False
    # Whether the broker may have written the record although it failed (the Rust core's
    # ``possibly_persisted``); only set on a record's failure.
    possibly_persisted = False
    # Whether the producer can no longer be used (a fenced transactional producer, failed
    # authentication); kprod's own, set on the instance.
    fatal = False

    def __str__(self):
        if not self.args:
            return self.__class__.__name__
        return "{}: {}".format(self.__class__.__name__, super().__str__())


class RetriableError(KafkaError):
    """Trying again may succeed."""

    retriable = True


class InvalidMetadataError(RetriableError):
    """The client's view of the cluster was out of date."""

    invalid_metadata = True


class Cancelled(RetriableError):
    pass


class CommitFailedError(KafkaError):
    pass


class IllegalArgumentError(KafkaError):
    pass


class IllegalStateError(KafkaError):
    """The producer cannot do this now: it is closed, or used in a child after ``fork``."""


class KafkaConfigurationError(KafkaError, ValueError):
    """A configuration keyword is unknown or its value is not allowed; the message names it.

    Also a ``ValueError``, which kafka-python 3 raises for an unknown keyword.
    """


class KafkaConnectionError(InvalidMetadataError):
    """A broker could not be reached, or the connection failed."""


class NoBrokersAvailable(KafkaError):
    """None of ``bootstrap_servers`` answered."""

    retriable = True
    invalid_metadata = True


class AuthenticationFailedError(KafkaError):
    """TLS or SASL refused (credentials, certificates); not retried."""


class AuthenticationMethodNotSupported(KafkaError):
    pass


class KafkaProtocolError(KafkaError):
    pass


class CorrelationIdError(RetriableError, KafkaProtocolError):
    pass


class InvalidReceiveError(KafkaProtocolError):
    pass


class KafkaTimeoutError(RetriableError):
    """A wait ended: ``max_block_ms`` (metadata, buffer space), ``delivery_timeout_ms``, or the
    timeout given to ``get``, ``flush`` or ``close``."""


class MetadataEmptyBrokerList(RetriableError):
    pass


class NoOffsetForPartitionError(KafkaError):
    pass


class LogTruncationError(KafkaError):
    pass


class NodeNotReadyError(RetriableError):
    pass


class UnknownBrokerIdError(KafkaError):
    pass


class QuotaViolationError(KafkaError):
    pass


class StaleMetadata(InvalidMetadataError):
    pass


class TooManyInFlightRequests(RetriableError):
    pass


class UnrecognizedBrokerVersion(KafkaError):
    pass


class UnsupportedCodecError(KafkaError):
    pass


class TransactionAbortedError(KafkaError):
    """A record of a transaction that was aborted before the record was sent."""


class KafkaUnavailableError(KafkaError):
    pass


class ProducerClosedError(KafkaError):
    """A record still pending when the producer was closed (or ``close`` timed out); kprod's
    own class, a ``KafkaError``."""


class DeliveryFailedError(KafkaError):
    """Raised by ``flush(raise_on_failure=True)``: records sent before the flush failed.

    ``count`` is how many record batches failed, ``first`` the first failure (a record's
    exception). Each record's future still holds its own exception. kprod's own class.
    """

    def __init__(self, message, count=0, first=None):
        super().__init__(message)
        self.count = count
        self.first = first


class BrokerResponseError(KafkaError):
    """A broker answered with an error code: ``errno`` and Kafka's name, ``message``."""

    errno = None
    message = None
    description = None

    def __str__(self):
        detail = super(KafkaError, self).__str__()
        head = "[Error {}] {}".format(self.errno, self.__class__.__name__)
        return "{}: {}".format(head, detail) if detail else head


class AuthorizationError(BrokerResponseError):
    """The principal lacks an ACL; the message names which."""


# (code, class name, kind, Kafka's name for the code). Kind: '' a BrokerResponseError,
# 'R' retriable, 'M' invalid metadata, 'A' an AuthorizationError, '=' another name for the class
# of the same code. Class names are kafka-python's, so code written against it catches the same
# classes here.
_BROKER_ERRORS = (
    (-1, 'UnknownError', '', 'UNKNOWN'),
    (0, 'NoError', '', 'NO_ERROR'),
    (1, 'OffsetOutOfRangeError', '', 'OFFSET_OUT_OF_RANGE'),
    (2, 'CorruptRecordError', '', 'CORRUPT_MESSAGE'),
    (2, 'CorruptRecordException', '', 'CORRUPT_MESSAGE'),
    (3, 'UnknownTopicOrPartitionError', 'M', 'UNKNOWN_TOPIC_OR_PARTITION'),
    (4, 'InvalidFetchRequestError', '', 'INVALID_FETCH_SIZE'),
    (5, 'LeaderNotAvailableError', 'M', 'LEADER_NOT_AVAILABLE'),
    (6, 'NotLeaderForPartitionError', 'M', 'NOT_LEADER_FOR_PARTITION'),
    (7, 'RequestTimedOutError', 'R', 'REQUEST_TIMED_OUT'),
    (8, 'BrokerNotAvailableError', '', 'BROKER_NOT_AVAILABLE'),
    (9, 'ReplicaNotAvailableError', 'M', 'REPLICA_NOT_AVAILABLE'),
    (10, 'MessageSizeTooLargeError', '', 'MESSAGE_SIZE_TOO_LARGE'),
    (11, 'StaleControllerEpochError', '', 'STALE_CONTROLLER_EPOCH'),
    (12, 'OffsetMetadataTooLargeError', '', 'OFFSET_METADATA_TOO_LARGE'),
    (13, 'NetworkExceptionError', 'M', 'NETWORK_EXCEPTION'),
    (14, 'CoordinatorLoadInProgressError', 'R', 'COORDINATOR_LOAD_IN_PROGRESS'),
    (15, 'CoordinatorNotAvailableError', 'R', 'COORDINATOR_NOT_AVAILABLE'),
    (16, 'NotCoordinatorError', 'R', 'NOT_COORDINATOR'),
    (17, 'InvalidTopicError', '', 'INVALID_TOPIC'),
    (18, 'RecordListTooLargeError', '', 'RECORD_LIST_TOO_LARGE'),
    (19, 'NotEnoughReplicasError', 'R', 'NOT_ENOUGH_REPLICAS'),
    (20, 'NotEnoughReplicasAfterAppendError', 'R', 'NOT_ENOUGH_REPLICAS_AFTER_APPEND'),
    (21, 'InvalidRequiredAcksError', '', 'INVALID_REQUIRED_ACKS'),
    (22, 'IllegalGenerationError', '', 'ILLEGAL_GENERATION'),
    (23, 'InconsistentGroupProtocolError', '', 'INCONSISTENT_GROUP_PROTOCOL'),
    (24, 'InvalidGroupIdError', '', 'INVALID_GROUP_ID'),
    (25, 'UnknownMemberIdError', '', 'UNKNOWN_MEMBER_ID'),
    (26, 'InvalidSessionTimeoutError', '', 'INVALID_SESSION_TIMEOUT'),
    (27, 'RebalanceInProgressError', '', 'REBALANCE_IN_PROGRESS'),
    (28, 'InvalidCommitOffsetSizeError', '', 'INVALID_COMMIT_OFFSET_SIZE'),
    (29, 'TopicAuthorizationFailedError', 'A', 'TOPIC_AUTHORIZATION_FAILED'),
    (30, 'GroupAuthorizationFailedError', 'A', 'GROUP_AUTHORIZATION_FAILED'),
    (31, 'ClusterAuthorizationFailedError', 'A', 'CLUSTER_AUTHORIZATION_FAILED'),
    (32, 'InvalidTimestampError', '', 'INVALID_TIMESTAMP'),
    (33, 'UnsupportedSaslMechanismError', '', 'UNSUPPORTED_SASL_MECHANISM'),
    (34, 'IllegalSaslStateError', '', 'ILLEGAL_SASL_STATE'),
    (35, 'UnsupportedVersionError', '', 'UNSUPPORTED_VERSION'),
    (35, 'IncompatibleBrokerVersion', '=', 'UNSUPPORTED_VERSION'),
    (36, 'TopicAlreadyExistsError', '', 'TOPIC_ALREADY_EXISTS'),
    (37, 'InvalidPartitionsError', '', 'INVALID_PARTITIONS'),
    (38, 'InvalidReplicationFactorError', '', 'INVALID_REPLICATION_FACTOR'),
    (39, 'InvalidReplicationAssignmentError', '', 'INVALID_REPLICATION_ASSIGNMENT'),
    (40, 'InvalidConfigurationError', '', 'INVALID_CONFIG'),
    (41, 'NotControllerError', 'R', 'NOT_CONTROLLER'),
    (42, 'InvalidRequestError', '', 'INVALID_REQUEST'),
    (43, 'UnsupportedForMessageFormatError', '', 'UNSUPPORTED_FOR_MESSAGE_FORMAT'),
    (44, 'PolicyViolationError', '', 'POLICY_VIOLATION'),
    (45, 'OutOfOrderSequenceNumberError', '', 'OUT_OF_ORDER_SEQUENCE_NUMBER'),
    (46, 'DuplicateSequenceNumberError', '', 'DUPLICATE_SEQUENCE_NUMBER'),
    (47, 'InvalidProducerEpochError', '', 'INVALID_PRODUCER_EPOCH'),
    (48, 'InvalidTxnStateError', '', 'INVALID_TXN_STATE'),
    (49, 'InvalidProducerIdMappingError', '', 'INVALID_PRODUCER_ID_MAPPING'),
    (50, 'InvalidTransactionTimeoutError', '', 'INVALID_TRANSACTION_TIMEOUT'),
    (51, 'ConcurrentTransactionsError', 'R', 'CONCURRENT_TRANSACTIONS'),
    (52, 'TransactionCoordinatorFencedError', '', 'TRANSACTION_COORDINATOR_FENCED'),
    (53, 'TransactionalIdAuthorizationFailedError', 'A', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'),
    (54, 'SecurityDisabledError', '', 'SECURITY_DISABLED'),
    (55, 'OperationNotAttemptedError', '', 'OPERATION_NOT_ATTEMPTED'),
    (56, 'KafkaStorageError', 'M', 'KAFKA_STORAGE_ERROR'),
    (57, 'LogDirNotFoundError', '', 'LOG_DIR_NOT_FOUND'),
    (58, 'SaslAuthenticationFailedError', '', 'SASL_AUTHENTICATION_FAILED'),
    (59, 'UnknownProducerIdError', '', 'UNKNOWN_PRODUCER_ID'),
    (60, 'ReassignmentInProgressError', '', 'REASSIGNMENT_IN_PROGRESS'),
    (61, 'DelegationTokenAuthDisabledError', '', 'DELEGATION_TOKEN_AUTH_DISABLED'),
    (62, 'DelegationTokenNotFoundError', '', 'DELEGATION_TOKEN_NOT_FOUND'),
    (63, 'DelegationTokenOwnerMismatchError', '', 'DELEGATION_TOKEN_OWNER_MISMATCH'),
    (64, 'DelegationTokenRequestNotAllowedError', '', 'DELEGATION_TOKEN_REQUEST_NOT_ALLOWED'),
    (65, 'DelegationTokenAuthorizationFailedError', 'A', 'DELEGATION_TOKEN_AUTHORIZATION_FAILED'),
    (66, 'DelegationTokenExpiredError', '', 'DELEGATION_TOKEN_EXPIRED'),
    (67, 'InvalidPrincipalTypeError', '', 'INVALID_PRINCIPAL_TYPE'),
    (68, 'NonEmptyGroupError', '', 'NON_EMPTY_GROUP'),
    (69, 'GroupIdNotFoundError', '', 'GROUP_ID_NOT_FOUND'),
    (70, 'FetchSessionIdNotFoundError', 'R', 'FETCH_SESSION_ID_NOT_FOUND'),
    (71, 'InvalidFetchSessionEpochError', 'R', 'INVALID_FETCH_SESSION_EPOCH'),
    (72, 'ListenerNotFoundError', 'M', 'LISTENER_NOT_FOUND'),
    (73, 'TopicDeletionDisabledError', '', 'TOPIC_DELETION_DISABLED'),
    (74, 'FencedLeaderEpochError', 'M', 'FENCED_LEADER_EPOCH'),
    (75, 'UnknownLeaderEpochError', 'M', 'UNKNOWN_LEADER_EPOCH'),
    (76, 'UnsupportedCompressionTypeError', '', 'UNSUPPORTED_COMPRESSION_TYPE'),
    (77, 'StaleBrokerEpochError', '', 'STALE_BROKER_EPOCH'),
    (78, 'OffsetNotAvailableError', 'R', 'OFFSET_NOT_AVAILABLE'),
    (79, 'MemberIdRequiredError', '', 'MEMBER_ID_REQUIRED'),
    (80, 'PreferredLeaderNotAvailableError', 'M', 'PREFERRED_LEADER_NOT_AVAILABLE'),
    (81, 'GroupMaxSizeReachedError', '', 'GROUP_MAX_SIZE_REACHED'),
    (82, 'FencedInstanceIdError', '', 'FENCED_INSTANCE_ID'),
    (83, 'EligibleLeadersNotAvailableError', 'M', 'ELIGIBLE_LEADERS_NOT_AVAILABLE'),
    (84, 'ElectionNotNeededError', 'M', 'ELECTION_NOT_NEEDED'),
    (85, 'NoReassignmentInProgressError', '', 'NO_REASSIGNMENT_IN_PROGRESS'),
    (86, 'GroupSubscribedToTopicError', '', 'GROUP_SUBSCRIBED_TO_TOPIC'),
    (87, 'InvalidRecordError', '', 'INVALID_RECORD'),
    (88, 'UnstableOffsetCommitError', 'R', 'UNSTABLE_OFFSET_COMMIT'),
    (89, 'ThrottlingQuotaExceededError', 'R', 'THROTTLING_QUOTA_EXCEEDED'),
    (90, 'ProducerFencedError', '', 'PRODUCER_FENCED'),
    (91, 'ResourceNotFoundError', '', 'RESOURCE_NOT_FOUND'),
    (92, 'DuplicateResourceError', '', 'DUPLICATE_RESOURCE'),
    (93, 'UnacceptableCredentialError', '', 'UNACCEPTABLE_CREDENTIAL'),
    (94, 'InconsistentVoterSetError', '', 'INCONSISTENT_VOTER_SET'),
    (95, 'InvalidUpdateVersionError', '', 'INVALID_UPDATE_VERSION'),
    (96, 'FeatureUpdateFailedError', '', 'FEATURE_UPDATE_FAILED'),
    (97, 'PrincipalDeserializationFailureError', '', 'PRINCIPAL_DESERIALIZATION_FAILURE'),
    (98, 'SnapshotNotFoundError', '', 'SNAPSHOT_NOT_FOUND'),
    (99, 'PositionOutOfRangeError', '', 'POSITION_OUT_OF_RANGE'),
    (100, 'UnknownTopicIdError', 'M', 'UNKNOWN_TOPIC_ID'),
    (101, 'DuplicateBrokerRegistrationError', '', 'DUPLICATE_BROKER_REGISTRATION'),
    (102, 'BrokerIdNotRegisteredError', '', 'BROKER_ID_NOT_REGISTERED'),
    (103, 'InconsistentTopicIdError', 'M', 'INCONSISTENT_TOPIC_ID'),
    (104, 'InconsistentClusterIdError', '', 'INCONSISTENT_CLUSTER_ID'),
    (105, 'TransactionalIdNotFoundError', '', 'TRANSACTIONAL_ID_NOT_FOUND'),
    (106, 'FetchSessionTopicIdError', 'R', 'FETCH_SESSION_TOPIC_ID_ERROR'),
    (107, 'IneligibleReplicaError', '', 'INELIGIBLE_REPLICA'),
    (108, 'NewLeaderElectedError', '', 'NEW_LEADER_ELECTED'),
    (109, 'OffsetMovedToTieredStorageError', '', 'OFFSET_MOVED_TO_TIERED_STORAGE'),
    (110, 'FencedMemberEpochError', '', 'FENCED_MEMBER_EPOCH'),
    (111, 'UnreleasedInstanceIdError', '', 'UNRELEASED_INSTANCE_ID'),
    (112, 'UnsupportedAssignorError', '', 'UNSUPPORTED_ASSIGNOR'),
    (113, 'StaleMemberEpochError', '', 'STALE_MEMBER_EPOCH'),
    (114, 'MismatchedEndpointTypeError', '', 'MISMATCHED_ENDPOINT_TYPE'),
    (115, 'UnsupportedEndpointTypeError', '', 'UNSUPPORTED_ENDPOINT_TYPE'),
    (116, 'UnknownControllerIdError', '', 'UNKNOWN_CONTROLLER_ID'),
    (117, 'UnknownSubscriptionIdError', '', 'UNKNOWN_SUBSCRIPTION_ID'),
    (118, 'TelemetryTooLargeError', '', 'TELEMETRY_TOO_LARGE'),
    (119, 'InvalidRegistrationError', '', 'INVALID_REGISTRATION'),
    (120, 'TransactionAbortableError', '', 'TRANSACTION_ABORTABLE'),
    (121, 'InvalidRecordStateError', '', 'INVALID_RECORD_STATE'),
    (122, 'ShareSessionNotFoundError', 'R', 'SHARE_SESSION_NOT_FOUND'),
    (123, 'InvalidShareSessionEpochError', 'R', 'INVALID_SHARE_SESSION_EPOCH'),
    (124, 'FencedStateEpochError', '', 'FENCED_STATE_EPOCH'),
    (125, 'InvalidVoterKeyError', '', 'INVALID_VOTER_KEY'),
    (126, 'DuplicateVoterError', '', 'DUPLICATE_VOTER'),
    (127, 'VoterNotFoundError', '', 'VOTER_NOT_FOUND'),
)

_KINDS = {
    "": (BrokerResponseError,),
    "R": (RetriableError, BrokerResponseError),
    "M": (InvalidMetadataError, BrokerResponseError),
    "A": (AuthorizationError,),
}

_BY_CODE = {}


def _define():
    module = globals()
    for code, name, kind, kafka_name in _BROKER_ERRORS:
        if kind == "=" or code in _BY_CODE:
            module[name] = _BY_CODE[code]
            continue
        cls = type(name, _KINDS[kind], {
            "errno": code,
            "message": kafka_name,
            "description": "Kafka error code {} ({}).".format(code, kafka_name),
            "__doc__": "Kafka error code {} ({}).".format(code, kafka_name),
            "__module__": __name__,
        })
        module[name] = cls
        _BY_CODE[code] = cls
        __all__.append(name)


_define()

# kafka-python 2.x names for codes whose class was renamed later.
GroupLoadInProgressError = _BY_CODE[14]
GroupCoordinatorNotAvailableError = _BY_CODE[15]
NotCoordinatorForGroupError = _BY_CODE[16]


# TransactionAbortableError
_BY_CODE[120].__doc__ = """Kafka error code 120 (TRANSACTION_ABORTABLE), and what kprod raises for
any transaction that failed and must be aborted (a record of it failed, the brokers refused it):
call ``abort_transaction``, then go on with the next one. ``__cause__`` is what failed."""


def for_code(code):
    """The class for a Kafka error code (``UnknownError`` for a code this table lacks)."""
    return _BY_CODE.get(code, _BY_CODE[-1])


# Everything `_from_core` may build, by the Rust core's kind of error.
_CORE_KINDS = {
    "config": KafkaConfigurationError,
    "bootstrap": NoBrokersAvailable,
    "serialization": KafkaError,
    "record_too_large": None,  # MessageSizeTooLargeError, defined by the table
    "unknown_topic": KafkaTimeoutError,
    "invalid_partition": IllegalArgumentError,
    "buffer_exhausted": KafkaTimeoutError,
    "delivery_timeout": KafkaTimeoutError,
    "network": KafkaConnectionError,
    "producer_id": KafkaError,
    "authentication": AuthenticationFailedError,
    "protocol": KafkaProtocolError,
    "closed": ProducerClosedError,
    "close_timed_out": KafkaTimeoutError,
    "task_panicked": KafkaError,
    "runtime": KafkaError,
    "flush_failed": DeliveryFailedError,
    "timeout": KafkaTimeoutError,
    "fork": IllegalStateError,
    "state": IllegalStateError,
    "coordinator": KafkaError,
    "transaction_state": IllegalStateError,
    "transaction_fatal": KafkaError,
    "transaction_timeout": KafkaTimeoutError,
    "transaction_aborted": TransactionAbortedError,
}

# Kinds after which the producer can no longer be used (the core's ``is_fatal``).
_FATAL_KINDS = frozenset(["transaction_fatal", "task_panicked", "authentication"])

# A transactional producer fenced by a newer one with its id: kafka-python raises
# ProducerFencedError for both codes (older request versions get INVALID_PRODUCER_EPOCH, KIP-588).
_FENCED_CODES = frozenset([47, 90])


def _from_core(kind, code, message, possibly_persisted=False, cause=None):
    """The exception for an error of the Rust core: its kind, the Kafka error code if a broker
    sent one, its message, the exception for its reason (called from the extension module)."""
    if kind == "transaction_abortable":
        cls = TransactionAbortableError  # noqa: F821 (defined by _define)
    elif kind == "transaction_fatal" and code in _FENCED_CODES:
        cls = ProducerFencedError  # noqa: F821 (defined by _define)
    elif code is not None:
        cls = for_code(code)
    elif kind == "record_too_large":
        cls = MessageSizeTooLargeError  # noqa: F821 (defined by _define)
    elif kind == "unsupported_version":
        cls = UnsupportedVersionError  # noqa: F821 (defined by _define)
    else:
        cls = _CORE_KINDS.get(kind, KafkaError)
    e = cls(message)
    if possibly_persisted:
        e.possibly_persisted = True
    if kind in _FATAL_KINDS:
        e.fatal = True
    if cause is not None:
        e.__cause__ = cause
    return e
