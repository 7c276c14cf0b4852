"""Bad input fails the one call or record it concerns, with kafka-python's exception, and
harms no other record."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import make_topic, read_back
from kprod import KafkaProducer, errors


def test_unknown_or_bad_keywords_name_themselves(bootstrap):
    with pytest.raises(errors.KafkaConfigurationError, match="lingerms"):
        KafkaProducer(bootstrap_servers=bootstrap, lingerms=5)
    with pytest.raises(ValueError, match="lingerms"):  # kafka-python 3 raises ValueError
        KafkaProducer(bootstrap_servers=bootstrap, lingerms=5)
    with pytest.raises(errors.KafkaConfigurationError, match="acks"):
        KafkaProducer(bootstrap_servers=bootstrap, acks=2)
    with pytest.raises(errors.KafkaConfigurationError, match="linger.ms"):
        KafkaProducer(bootstrap_servers=bootstrap, linger_ms=-1)
    with pytest.raises(errors.KafkaConfigurationError, match="transactional"):
        KafkaProducer(bootstrap_servers=bootstrap, transactional_id="t", enable_idempotence=False)
    with pytest.raises(errors.KafkaConfigurationError, match="ssl_context"):
        KafkaProducer(bootstrap_servers=bootstrap, ssl_context=object())


def test_no_broker_is_no_brokers_available():
    with pytest.raises(errors.NoBrokersAvailable, match="127.0.0.1:1"):
        KafkaProducer(bootstrap_servers="127.0.0.1:1", max_block_ms=2000,
                      request_timeout_ms=2000)


def test_a_failing_serializer_fails_its_send_only(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap,
                       value_serializer=lambda v: json.dumps(v).encode()) as p:
        before = p.send(topic, value={"n": 1})
        with pytest.raises(TypeError, match="not JSON serializable"):
            p.send(topic, value={"n": object()})
        after = p.send(topic, value={"n": 2})
        p.flush()
        assert before.get().offset >= 0 and after.get().offset >= 0
    assert sorted(json.loads(r.value)["n"] for r in read_back(bootstrap, topic, 2)) == [1, 2]


def test_bad_arguments_raise_what_kafka_python_raises(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        with pytest.raises(ValueError, match="key or value"):
            p.send(topic)
        with pytest.raises(TypeError, match="Unsupported type for serialized value"):
            p.send(topic, value=12)
        with pytest.raises(TypeError, match="headers"):
            p.send(topic, value=b"x", headers=[("h", "not bytes")])
        with pytest.raises(TypeError, match="headers must be list"):
            p.send(topic, value=b"x", headers={"h": b"x"})
        with pytest.raises(ValueError, match="partition"):
            p.send(topic, value=b"x", partition=-1)
        with pytest.raises(errors.IllegalArgumentError, match="partition 7"):
            p.send(topic, value=b"x", partition=7)
        assert p.send(topic, value=b"ok").get(timeout=30).offset >= 0


def test_an_oversized_record_is_message_size_too_large(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap, max_request_size=1000) as p:
        with pytest.raises(errors.MessageSizeTooLargeError, match="max.request.size"):
            p.send(topic, value=b"x" * 2000)
        assert p.send(topic, value=b"small").get(timeout=30).offset >= 0


def test_a_missing_topic_is_a_timeout_after_max_block_ms(bootstrap):
    with KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=1500) as p:
        started = time.monotonic()
        with pytest.raises(errors.KafkaTimeoutError, match="py-never-made"):
            p.send("py-never-made", value=b"x")
        assert time.monotonic() - started >= 1.4


def test_a_record_the_broker_refuses_fails_in_its_future_and_in_flush(bootstrap, admin):
    topic = make_topic(admin, configs={"max.message.bytes": "2000"})
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        bad = p.send(topic, value=b"x" * 5000)
        good = p.send(topic, key=b"other", value=b"fine")
        errs = []
        bad.add_errback(errs.append)
        with pytest.raises(errors.DeliveryFailedError) as failed:
            p.flush(raise_on_failure=True)
        assert failed.value.count >= 1
        assert isinstance(failed.value.first, errors.MessageSizeTooLargeError)
        assert bad.failed() and isinstance(bad.exception, errors.MessageSizeTooLargeError)
        with pytest.raises(errors.MessageSizeTooLargeError):
            bad.get()
        assert errs == [bad.exception]
        assert good.get().offset >= 0


def test_send_after_close_raises(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap)
    p.close()
    p.close()  # idempotent
    with pytest.raises(errors.IllegalStateError, match="closed"):
        p.send(topic, value=b"x")


EXIT_SCRIPT = '''
import sys
from kprod import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1].split(","), linger_ms=2000)
for i in range(1000):
    p.send(sys.argv[2], value=b"exit-%d" % i)
# No flush, no close: the interpreter exits with 1000 records pending.
'''


def test_records_pending_at_exit_are_sent(bootstrap, topic):
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, ",".join(bootstrap), topic],
                          timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = read_back(bootstrap, topic, 1000)
    assert sorted(r.value for r in got) == sorted(b"exit-%d" % i for i in range(1000))


def test_close_with_no_time_leaves_every_record_an_outcome(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10000)
    pending = [p.send(topic, value=b"%d" % i) for i in range(10)]
    p.close(timeout=0)
    # Acknowledged if the close's flush got them out in no time, else failed as closed:
    # never left pending.
    for f in pending:
        assert f.is_done
        assert f.succeeded() or isinstance(f.exception, errors.ProducerClosedError), f


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_producer_used_after_fork_raises(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        p.send(topic, value=b"parent").get(timeout=30)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            try:
                p.send(topic, value=b"child")
                os.write(w, b"no error")
            except errors.IllegalStateError as e:
                os.write(w, str(e).encode()[:500])
            finally:
                os._exit(0)
        os.close(w)
        message = os.read(r, 1000).decode()
        os.waitpid(pid, 0)
        assert "fork" in message, message
        # The parent goes on.
        assert p.send(topic, value=b"after").get(timeout=30).offset >= 0
