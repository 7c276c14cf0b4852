package dev.kafkaproducer.harness;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The independent reader used by the tests: reads every partition of a topic from the beginning up to the end offsets
 * taken when it starts, with the Java reference consumer, and prints one JSON object per record, sorted by partition
 * and offset. It uses no consumer group (assign, not subscribe), so it commits nothing and needs no group coordinator.
 *
 * <p>By default it reads as read_uncommitted: every record in the log, including those of aborted and still open
 * transactions (never the control records, which the consumer does not return). With {@code --isolation
 * read_committed} the consumer drops aborted records, and its end offsets are the last stable offsets: a partition is
 * read only up to the first record of its oldest still open transaction, so neither that transaction's records nor
 * any later ones (even committed ones) are printed until it ends.
 */
public final class Reader {
    private static final String USAGE = "usage: reader [--bootstrap HOST:PORT[,...]] [--consumer.config FILE] --topic TOPIC"
        + " [--isolation read_uncommitted|read_committed] [--timeout-ms 60000]\n"
        + "--consumer.config: Java client properties (security.protocol, sasl.*, ssl.*, ...) applied first; --bootstrap"
        + " overrides its bootstrap.servers, and one of the two must name the brokers.\n"
        + "--isolation: the consumer's isolation.level (default read_uncommitted: every record). read_committed leaves out"
        + " aborted records and reads each partition only up to its last stable offset, i.e. not the records of open"
        + " transactions, nor anything after the first of them.\n"
        + "Prints {\"partition\",\"offset\",\"timestamp\",\"timestampType\",\"key\",\"keyB64\",\"value\",\"valueB64\",\"headers\"}"
        + " per record, one per line.";

    private Reader() {}

    public static void main(String[] args) {
        Cli cli = new Cli(USAGE, args);
        String topic = cli.required("--topic");
        String isolation = cli.all("--isolation").isEmpty() ? "read_uncommitted" : cli.required("--isolation");
        if (!isolation.equals("read_uncommitted") && !isolation.equals("read_committed")) {
            cli.fail("--isolation must be read_uncommitted or read_committed, not " + isolation);
        }
        long deadline = System.currentTimeMillis() + cli.number("--timeout-ms", 60_000);

        Properties props = new Properties();
        for (String file : cli.all("--consumer.config")) {
            try (InputStream in = Files.newInputStream(Path.of(file))) {
                props.load(in);
            } catch (IOException e) {
                Cli.die("reader", "cannot read " + file + ": " + e);
            }
        }
        for (String bootstrap : cli.all("--bootstrap")) {
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        }
        if (props.getProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, "").isBlank()) {
            cli.fail("missing --bootstrap (or bootstrap.servers in --consumer.config)");
        }
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "kprod-test-reader");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // With read_committed, endOffsets below answers the last stable offsets.
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);

        List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = partitions(consumer, topic, deadline);
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            // The log end offsets, or with read_committed the last stable offsets.
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, remaining(deadline));

            Set<TopicPartition> pending = new HashSet<>(partitions);
            pending.removeIf(tp -> consumer.position(tp, remaining(deadline)) >= end.get(tp));
            while (!pending.isEmpty()) {
                if (System.currentTimeMillis() > deadline) {
                    StringBuilder where = new StringBuilder();
                    for (TopicPartition tp : pending) {
                        where.append(' ').append(tp).append(" at ").append(consumer.position(tp))
                            .append(" of ").append(end.get(tp));
                    }
                    Cli.die("reader", "timed out before reaching the end offsets:" + where);
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    // Records appended after the end offsets were taken are not part of this read.
                    if (record.offset() < end.get(new TopicPartition(record.topic(), record.partition()))) {
                        records.add(record);
                    }
                }
                pending.removeIf(tp -> consumer.position(tp) >= end.get(tp));
            }
        } catch (RuntimeException e) {
            Cli.die("reader", e.toString());
        }

        records.sort(Comparator.<ConsumerRecord<byte[], byte[]>>comparingInt(ConsumerRecord::partition)
            .thenComparingLong(ConsumerRecord::offset));
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8)));
        for (ConsumerRecord<byte[], byte[]> record : records) {
            out.println(toJson(record));
        }
        out.flush();
        System.exit(out.checkError() ? 1 : 0);
    }

    private static List<TopicPartition> partitions(KafkaConsumer<?, ?> consumer, String topic, long deadline) {
        while (true) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, remaining(deadline));
            if (infos != null && !infos.isEmpty()) {
                List<TopicPartition> partitions = new ArrayList<>();
                for (PartitionInfo info : infos) {
                    partitions.add(new TopicPartition(topic, info.partition()));
                }
                return partitions;
            }
            if (System.currentTimeMillis() > deadline) {
                Cli.die("reader", "topic " + topic + " does not exist");
            }
            sleep(200);
        }
    }

    static String toJson(ConsumerRecord<byte[], byte[]> record) {
        StringBuilder out = new StringBuilder(256);
        out.append("{\"partition\":").append(record.partition())
            .append(",\"offset\":").append(record.offset())
            .append(",\"timestamp\":").append(record.timestamp())
            .append(",\"timestampType\":");
        Json.string(out, record.timestampType().name).append(',');
        Json.bytes(out, "key", record.key()).append(',');
        Json.bytes(out, "value", record.value()).append(",\"headers\":[");
        boolean first = true;
        for (Header header : record.headers()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            out.append("{\"key\":");
            Json.string(out, header.key()).append(',');
            Json.bytes(out, "value", header.value()).append('}');
        }
        return out.append("]}").toString();
    }

    static Duration remaining(long deadline) {
        return Duration.ofMillis(Math.max(1, deadline - System.currentTimeMillis()));
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
