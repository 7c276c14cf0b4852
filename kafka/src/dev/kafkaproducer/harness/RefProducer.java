package dev.kafkaproducer.harness;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java reference producer: sends one record per stdin line, with the line as key and as value, using the Java
 * client's default partitioner (no partitioner.class set) and acks=all, then prints where each record landed. Interop
 * tests compare this client's key-to-partition mapping with ours.
 *
 * <p>With {@code --transactional-id} it sends all the lines in one transaction and ends it as {@code --end} says:
 * {@code commit} (the default); {@code abort} (after a flush, so the aborted records are in the log); or {@code open}:
 * neither, it flushes and closes without waiting, so the transaction stays open until the coordinator aborts it once
 * {@code --transaction-timeout-ms} has passed.
 */
public final class RefProducer {
    private static final String USAGE = "usage: ref-producer --bootstrap HOST:PORT[,...] --topic TOPIC"
        + " [--transactional-id ID [--end commit|abort|open] [--transaction-timeout-ms 60000]] < keys\n"
        + "Reads one key per line; prints {\"key\":K,\"partition\":P,\"offset\":O} per record after flush.\n"
        + "--transactional-id: all records in one transaction, committed (--end commit, the default), aborted after a"
        + " flush (--end abort), or left open (--end open) until the coordinator aborts it when"
        + " --transaction-timeout-ms has passed.";

    private RefProducer() {}

    public static void main(String[] args) throws IOException {
        Cli cli = new Cli(USAGE, args);
        String bootstrap = cli.required("--bootstrap");
        String topic = cli.required("--topic");
        String transactionalId = cli.all("--transactional-id").isEmpty() ? null : cli.required("--transactional-id");
        String end = cli.all("--end").isEmpty() ? "commit" : cli.required("--end");
        if (!List.of("commit", "abort", "open").contains(end)) {
            cli.fail("--end must be commit, abort or open, not " + end);
        }
        if (transactionalId == null && !cli.all("--end").isEmpty()) {
            cli.fail("--end needs --transactional-id");
        }
        boolean abort = end.equals("abort");
        boolean leaveOpen = end.equals("open");

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "kprod-ref-producer");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        if (transactionalId != null) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
            props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG,
                Long.toString(cli.number("--transaction-timeout-ms", 60_000)));
        }

        List<String> keys = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            keys.add(line);
        }

        StringBuilder out = new StringBuilder();
        KafkaProducer<String, String> producer = null;
        try {
            producer = new KafkaProducer<>(props);
            if (transactionalId != null) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (String key : keys) {
                sent.add(producer.send(new ProducerRecord<>(topic, key, key)));
            }
            producer.flush();
            if (transactionalId != null && abort) {
                producer.abortTransaction();
            } else if (transactionalId != null && !leaveOpen) {
                producer.commitTransaction();
            }
            for (int i = 0; i < keys.size(); i++) {
                RecordMetadata metadata = sent.get(i).get();
                out.append("{\"key\":");
                Json.string(out, keys.get(i))
                    .append(",\"partition\":").append(metadata.partition())
                    .append(",\"offset\":").append(metadata.offset())
                    .append("}\n");
            }
        } catch (ExecutionException e) {
            Cli.die("ref-producer", "send failed: " + e.getCause());
        } catch (InterruptedException | RuntimeException e) {
            Cli.die("ref-producer", e.toString());
        } finally {
            // A graceful close aborts an open transaction; closing without waiting sends no EndTxn at all.
            if (producer != null) {
                producer.close(leaveOpen ? Duration.ZERO : Duration.ofSeconds(30));
            }
        }
        PrintWriter writer = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8)));
        writer.print(out);
        writer.flush();
        System.exit(writer.checkError() ? 1 : 0);
    }
}
