#!/usr/bin/env python3
"""kprod against confluent-kafka (librdkafka) and kafka-python, from Python, on the same cluster.

Each client runs in its own process, in alternating order over the rounds, with its natural loop:

  kprod          producer.send(topic, value) per record, then flush()
  confluent      producer.produce(topic, value) then poll(0) per record (serving delivery
                 reports, as its documentation does; on BufferError poll(0.1) and retry),
                 then flush()
  kafka-python   producer.send(topic, value) per record, then flush()

Settings for all: 100 B values (the size can be changed), acks=1, linger_ms=5, no compression,
everything else at each client's defaults. Each run gets a fresh topic (6 partitions, replication
3); with --sink, the testkit's sink broker stands in for the cluster, to measure the clients
alone (on the cluster, three brokers on the same machine often set the pace). Reported: records/s (from the first send to the end of flush) and CPU per record (user+sys of
the whole process, from getrusage at its end, start-up and import included).

    pip install confluent-kafka kafka-python ./python
    python python/bench/compare.py --bootstrap 127.0.0.1:19092 --rounds 2

Prints a Markdown table (and writes it to --out if given).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid

CLIENTS = ("kprod", "confluent", "kafka-python")


def one(client, bootstrap, topic, records, size):
    """Runs in the child: sends `records` values of `size` bytes; prints a JSON result."""
    import resource

    value = b"x" * size
    servers = bootstrap.split(",")
    if client in ("kprod", "kafka-python"):
        # The same code for both: kprod's KafkaProducer is kafka-python's API.
        if client == "kprod":
            from kprod import KafkaProducer
        else:
            from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=servers, acks=1, linger_ms=5)
        send = p.send
        started = time.perf_counter()
        for _ in range(records):
            send(topic, value)
        p.flush()
        elapsed = time.perf_counter() - started
        p.close()
    elif client == "confluent":
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5})
        produce, poll = p.produce, p.poll
        started = time.perf_counter()
        for _ in range(records):
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    poll(0.1)
            poll(0)
        p.flush()
        elapsed = time.perf_counter() - started
    else:
        raise SystemExit("unknown client " + client)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({
        "records_per_s": records / elapsed,
        "cpu_ns_per_record": cpu * 1e9 / records,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }))


def versions():
    out = {"python": platform.python_version()}
    for name, module in (("kprod", "kprod"), ("confluent", "confluent_kafka"),
                         ("kafka-python", "kafka")):
        try:
            m = __import__(module)
            v = getattr(m, "__version__", None)
            if module == "confluent_kafka":
                v = "{} (librdkafka {})".format(m.version()[0], m.libversion()[0])
            out[name] = v
        except ImportError:
            out[name] = None
    return out


def make_topic(bootstrap):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = "pybench-" + uuid.uuid4().hex[:10]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    admin.create_topics([NewTopic(name, 6, 3)])
    admin.close()
    return name


def delete_topic(bootstrap, name):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--records", type=int, default=1_000_000,
                    help="records per run for kprod and confluent (default 1,000,000)")
    ap.add_argument("--records-kafka-python", type=int, default=100_000,
                    help="records per run for kafka-python, which is slower (default 100,000)")
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sink", action="store_true",
                    help="--bootstrap is the testkit's sink broker (acknowledges without storing; "
                         "any topic exists): no topics are made, so the clients alone are measured")
    ap.add_argument("--out", help="also write the table to this file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one, args.bootstrap, args.topic, args.records, args.size)
    if not args.bootstrap:
        raise SystemExit("compare.py: give --bootstrap or set KAFKA_BOOTSTRAP")
    clients = args.clients.split(",")
    installed = versions()
    missing = [c for c in clients if installed.get(c) is None]
    if missing:
        raise SystemExit("compare.py: not installed: {}".format(", ".join(missing)))
    results = {c: [] for c in clients}
    for r in range(args.rounds):
        order = clients if r % 2 == 0 else list(reversed(clients))
        for client in order:
            records = args.records_kafka_python if client == "kafka-python" else args.records
            topic = "pybench" if args.sink else make_topic(args.bootstrap)
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", client, "--bootstrap", args.bootstrap,
                     "--topic", topic, "--records", str(records), "--size", str(args.size)],
                    capture_output=True, text=True, timeout=1800)
            finally:
                if not args.sink:
                    delete_topic(args.bootstrap, topic)
            if done.returncode != 0:
                raise SystemExit("{} failed:\n{}".format(client, done.stderr[-3000:]))
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["records"] = records
            results[client].append(result)
            print("round {} {}: {:,.0f} rec/s, {:,.0f} ns/rec CPU".format(
                r + 1, client, result["records_per_s"], result["cpu_ns_per_record"]),
                file=sys.stderr, flush=True)

    def mean(client, key):
        xs = [x[key] for x in results[client]]
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    lines = [
        "Python clients on {}, {} B values, acks=1, linger_ms=5, {} round(s) alternating "
        "(geometric means); versions: {}".format(
            "the sink broker" if args.sink else "the cluster", args.size, args.rounds, ", ".join(
            "{} {}".format(k, v) for k, v in installed.items() if v)),
        "",
        "| client | records/run | records/s | CPU ns/rec | peak RSS MiB | kprod ÷ client (rec/s) "
        "| kprod ÷ client (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for client in clients:
        rate, cpu = mean(client, "records_per_s"), mean(client, "cpu_ns_per_record")
        rss = max(x["peak_rss_mib"] for x in results[client])
        if client != "kprod" and "kprod" in clients:
            ratios = "{:.2f}× | {:.2f}×".format(mean("kprod", "records_per_s") / rate,
                                               mean("kprod", "cpu_ns_per_record") / cpu)
        else:
            ratios = " | "
        lines.append("| {} | {:,} | {:,.0f} | {:,.0f} | {:.0f} | {} |".format(
            client, results[client][0]["records"], rate, cpu, rss, ratios))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
