package dev.kafkaproducer.harness;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.message.ApiVersionsResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsRequest;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.RequestHeader;

/**
 * Cluster and topic metadata as the Java Admin client sees it, as JSON, plus bounded waits on it for scripts/kafka.
 * A broker counts once it is registered and unfenced: that is what DescribeCluster returns by default.
 */
public final class Inspect {
    private static final String USAGE = String.join("\n",
        "usage: inspect brokers --bootstrap B",
        "       inspect wait-brokers --bootstrap B --ids 1,2,3 [--timeout-ms 120000] [--watch-pid PID]...",
        "       inspect topic --bootstrap B --topic T",
        "       inspect wait-topic --bootstrap B --topic T [--timeout-ms 30000]",
        "       inspect group-offsets --bootstrap B --group G [--require-stable true]",
        "       inspect features --bootstrap B [--feature NAME [--level L]] [--timeout-ms 30000]",
        "brokers:       prints {\"clusterId\",\"controller\",\"brokers\":[{\"id\",\"host\",\"port\"}]}",
        "wait-brokers:  asks each bootstrap address in turn until every one of them reports all the given broker ids",
        "               alive; exits 1 on timeout and 2 as soon as a watched process is gone",
        "topic:         prints {\"topic\",\"partitions\":[{\"partition\",\"leader\",\"replicas\",\"isr\"}]}; exits 3 if the",
        "               topic does not exist",
        "wait-topic:    as topic, after waiting until the topic exists and every partition has a leader",
        "group-offsets: the group's committed offsets (Admin listConsumerGroupOffsets), sorted by topic and partition;",
        "               with --require-stable true, once no transaction holding offsets for the group is pending (KIP-447):",
        "               prints {\"group\",\"offsets\":[{\"topic\",\"partition\",\"offset\"}]}; no offsets for an",
        "               unknown group",
        "features:      sends ApiVersions to each bootstrap address itself (a PLAINTEXT connection of its own, no",
        "               metadata, so each answer is that very broker's) and prints the finalized features it reports,",
        "               which each broker takes from the metadata log:",
        "               {\"nodes\":[{\"address\",\"epoch\",\"finalized\":{NAME:LEVEL}}]} (a feature at level 0 is absent).",
        "               Retries an address that does not answer. With --feature, first waits until every address",
        "               reports the same level of NAME (with --level: level L; absent counts as 0). Exits 1 on timeout,",
        "               with each address's last answer");

    private Inspect() {}

    public static void main(String[] args) throws InterruptedException {
        Cli cli = new Cli(USAGE, args);
        if (cli.positional.size() != 1) {
            cli.fail("expected one command");
        }
        String bootstrap = cli.required("--bootstrap");
        switch (cli.positional.get(0)) {
            case "brokers":
                try (Admin admin = admin(bootstrap)) {
                    System.out.println(brokersJson(admin.describeCluster(new DescribeClusterOptions().timeoutMs(15_000))));
                } catch (ExecutionException e) {
                    Cli.die("inspect", "describeCluster failed: " + e.getCause());
                }
                break;
            case "wait-brokers":
                waitBrokers(bootstrap, ids(cli.required("--ids")), cli.number("--timeout-ms", 120_000), cli.all("--watch-pid"));
                break;
            case "topic":
                try (Admin admin = admin(bootstrap)) {
                    TopicDescription description = describe(admin, cli.required("--topic"));
                    if (description == null) {
                        System.err.println("inspect: topic " + cli.required("--topic") + " does not exist");
                        System.exit(3);
                    }
                    System.out.println(topicJson(description));
                } catch (ExecutionException e) {
                    Cli.die("inspect", "describeTopics failed: " + e.getCause());
                }
                break;
            case "wait-topic":
                waitTopic(bootstrap, cli.required("--topic"), cli.number("--timeout-ms", 30_000));
                break;
            case "group-offsets":
                groupOffsets(bootstrap, cli.required("--group"),
                    Boolean.parseBoolean(cli.all("--require-stable").isEmpty() ? "false" : cli.required("--require-stable")));
                break;
            case "features":
                if (cli.all("--feature").isEmpty() && !cli.all("--level").isEmpty()) {
                    cli.fail("--level needs --feature");
                }
                features(bootstrap, cli.all("--feature").isEmpty() ? null : cli.required("--feature"),
                    cli.all("--level").isEmpty() ? null : (short) cli.number("--level", 0),
                    cli.number("--timeout-ms", 30_000));
                break;
            default:
                cli.fail("unknown command " + cli.positional.get(0));
        }
        System.exit(0);
    }

    private static void waitBrokers(String bootstrap, Set<Integer> ids, long timeoutMs, List<String> watched)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        List<String> pending = new ArrayList<>(List.of(bootstrap.split(",")));
        String last = "no answer yet";
        // One client per address, so that each address must answer (its first metadata request goes to it).
        List<Admin> admins = new ArrayList<>();
        try {
            for (String address : pending) {
                admins.add(admin(address));
            }
            while (true) {
                for (String pid : watched) {
                    if (!ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::isAlive).orElse(false)) {
                        System.err.println("inspect: process " + pid + " exited");
                        System.exit(2);
                    }
                }
                for (int i = 0; i < pending.size(); i++) {
                    try {
                        DescribeClusterResult result = admins.get(i).describeCluster(new DescribeClusterOptions().timeoutMs(2_000));
                        Set<Integer> alive = new TreeSet<>();
                        for (Node node : result.nodes().get()) {
                            alive.add(node.id());
                        }
                        last = pending.get(i) + " reports brokers " + alive;
                        if (alive.containsAll(ids)) {
                            admins.remove(i).close();
                            pending.remove(i);
                            i--;
                            if (pending.isEmpty()) {
                                System.out.println(brokersJson(result));
                                return;
                            }
                        }
                    } catch (ExecutionException e) {
                        last = pending.get(i) + ": " + e.getCause();
                    }
                }
                if (System.currentTimeMillis() > deadline) {
                    Cli.die("inspect", "brokers " + ids + " not all serving after " + timeoutMs + " ms; last: " + last);
                }
                Thread.sleep(250);
            }
        } finally {
            for (Admin admin : admins) {
                admin.close();
            }
        }
    }

    private static void waitTopic(String bootstrap, String topic, long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        String last = "topic not found";
        try (Admin admin = admin(bootstrap)) {
            while (true) {
                try {
                    TopicDescription description = describe(admin, topic);
                    if (description != null) {
                        boolean led = description.partitions().stream()
                            .allMatch(p -> p.leader() != null && !p.leader().isEmpty() && p.leader().id() >= 0);
                        if (led) {
                            System.out.println(topicJson(description));
                            return;
                        }
                        last = "some partitions have no leader: " + topicJson(description);
                    }
                } catch (ExecutionException e) {
                    last = e.getCause().toString();
                }
                if (System.currentTimeMillis() > deadline) {
                    Cli.die("inspect", "topic " + topic + " not ready after " + timeoutMs + " ms: " + last);
                }
                Thread.sleep(200);
            }
        }
    }

    private static void groupOffsets(String bootstrap, String group, boolean requireStable) {
        try (Admin admin = admin(bootstrap)) {
            Map<TopicPartition, OffsetAndMetadata> offsets = admin
                .listConsumerGroupOffsets(group, new ListConsumerGroupOffsetsOptions().requireStable(requireStable).timeoutMs(30_000))
                .partitionsToOffsetAndMetadata().get();
            List<TopicPartition> partitions = new ArrayList<>(offsets.keySet());
            partitions.sort(Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition));
            StringBuilder out = new StringBuilder("{\"group\":");
            Json.string(out, group).append(",\"offsets\":[");
            boolean first = true;
            for (TopicPartition tp : partitions) {
                OffsetAndMetadata committed = offsets.get(tp);
                if (committed == null) {
                    continue;
                }
                out.append(first ? "" : ",").append("{\"topic\":");
                Json.string(out, tp.topic()).append(",\"partition\":").append(tp.partition())
                    .append(",\"offset\":").append(committed.offset()).append('}');
                first = false;
            }
            System.out.println(out.append("]}"));
        } catch (ExecutionException e) {
            Cli.die("inspect", "listConsumerGroupOffsets(" + group + ") failed: " + e.getCause());
        } catch (InterruptedException e) {
            Cli.die("inspect", e.toString());
        }
    }

    /**
     * Each address's finalized features, from an ApiVersions request sent to it alone; with a feature name, first
     * waits until all addresses agree on its level (and, given one, on that level).
     */
    private static void features(String bootstrap, String feature, Short level, long timeoutMs)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        List<String> addresses = new ArrayList<>();
        for (String address : bootstrap.split(",")) {
            if (!address.isBlank()) {
                addresses.add(address.trim());
            }
        }
        while (true) {
            Map<String, Object> answers = new LinkedHashMap<>();
            Set<Short> levels = new TreeSet<>();
            for (String address : addresses) {
                try {
                    ApiVersionsResponseData data = apiVersions(address);
                    answers.put(address, data);
                    if (feature != null) {
                        ApiVersionsResponseData.FinalizedFeatureKey key = data.finalizedFeatures().find(feature);
                        levels.add(key == null ? 0 : key.maxVersionLevel());
                    }
                } catch (IOException | RuntimeException e) {
                    answers.put(address, e.toString());
                }
            }
            boolean answered = answers.values().stream().allMatch(a -> a instanceof ApiVersionsResponseData);
            boolean agreed = answered
                && (feature == null || levels.size() == 1 && (level == null || levels.contains(level)));
            if (agreed) {
                System.out.println(featuresJson(answers));
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                StringBuilder said = new StringBuilder();
                for (Map.Entry<String, Object> answer : answers.entrySet()) {
                    said.append("\n  ").append(answer.getKey()).append(": ");
                    if (answer.getValue() instanceof ApiVersionsResponseData data && feature != null) {
                        ApiVersionsResponseData.FinalizedFeatureKey key = data.finalizedFeatures().find(feature);
                        said.append(feature).append('=').append(key == null ? 0 : key.maxVersionLevel())
                            .append(" (finalized features epoch ").append(data.finalizedFeaturesEpoch()).append(')');
                    } else {
                        said.append(answer.getValue());
                    }
                }
                String wanted = feature == null ? "their features"
                    : level == null ? "the same level of " + feature : feature + "=" + level;
                Cli.die("inspect", "after " + timeoutMs + " ms the brokers do not all report " + wanted + ":" + said);
            }
            Thread.sleep(200);
        }
    }

    /**
     * One ApiVersions request on a PLAINTEXT connection of its own to `address`, and its answer. The newest version:
     * the harness's brokers are the Kafka of this client.
     */
    private static ApiVersionsResponseData apiVersions(String address) throws IOException {
        int colon = address.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("address " + address + " is not HOST:PORT");
        }
        short version = ApiKeys.API_VERSIONS.latestVersion();
        RequestHeader header = new RequestHeader(ApiKeys.API_VERSIONS, version, "kprod-test-inspect", 1);
        ByteBuffer request = new ApiVersionsRequest.Builder().build(version).serializeWithHeader(header);
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(address.substring(0, colon),
                Integer.parseInt(address.substring(colon + 1))), 5_000);
            socket.setSoTimeout(5_000);
            OutputStream out = socket.getOutputStream();
            byte[] frame = new byte[4 + request.remaining()];
            ByteBuffer.wrap(frame).putInt(request.remaining()).put(request);
            out.write(frame);
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] body = new byte[in.readInt()];
            in.readFully(body);
            AbstractResponse response = AbstractResponse.parseResponse(ByteBuffer.wrap(body), header);
            ApiVersionsResponseData data = ((ApiVersionsResponse) response).data();
            if (data.errorCode() != Errors.NONE.code()) {
                throw new IOException("ApiVersions v" + version + " answered " + Errors.forCode(data.errorCode()));
            }
            return data;
        }
    }

    private static String featuresJson(Map<String, Object> answers) {
        StringBuilder out = new StringBuilder("{\"nodes\":[");
        boolean first = true;
        for (Map.Entry<String, Object> answer : answers.entrySet()) {
            ApiVersionsResponseData data = (ApiVersionsResponseData) answer.getValue();
            out.append(first ? "" : ",").append("{\"address\":");
            Json.string(out, answer.getKey()).append(",\"epoch\":").append(data.finalizedFeaturesEpoch())
                .append(",\"finalized\":{");
            Map<String, Short> finalized = new TreeMap<>();
            for (ApiVersionsResponseData.FinalizedFeatureKey key : data.finalizedFeatures()) {
                finalized.put(key.name(), key.maxVersionLevel());
            }
            boolean firstFeature = true;
            for (Map.Entry<String, Short> f : finalized.entrySet()) {
                out.append(firstFeature ? "" : ",");
                Json.string(out, f.getKey()).append(':').append(f.getValue());
                firstFeature = false;
            }
            out.append("}}");
            first = false;
        }
        return out.append("]}").toString();
    }

    /** The topic's description, or null when it does not exist. */
    private static TopicDescription describe(Admin admin, String topic) throws ExecutionException, InterruptedException {
        try {
            return admin.describeTopics(List.of(topic), new DescribeTopicsOptions().timeoutMs(10_000))
                .allTopicNames().get().get(topic);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof UnknownTopicOrPartitionException) {
                return null;
            }
            throw e;
        }
    }

    private static Admin admin(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "kprod-test-inspect");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        return Admin.create(props);
    }

    private static String brokersJson(DescribeClusterResult result) throws ExecutionException, InterruptedException {
        List<Node> nodes = new ArrayList<>(result.nodes().get());
        nodes.sort(Comparator.comparingInt(Node::id));
        Node controller = result.controller().get();
        StringBuilder out = new StringBuilder("{\"clusterId\":");
        Json.string(out, result.clusterId().get())
            .append(",\"controller\":").append(controller == null ? -1 : controller.id())
            .append(",\"brokers\":[");
        for (int i = 0; i < nodes.size(); i++) {
            Node node = nodes.get(i);
            out.append(i == 0 ? "" : ",").append("{\"id\":").append(node.id()).append(",\"host\":");
            Json.string(out, node.host()).append(",\"port\":").append(node.port()).append('}');
        }
        return out.append("]}").toString();
    }

    private static String topicJson(TopicDescription description) {
        StringBuilder out = new StringBuilder("{\"topic\":");
        Json.string(out, description.name()).append(",\"partitions\":[");
        List<TopicPartitionInfo> partitions = new ArrayList<>(description.partitions());
        partitions.sort(Comparator.comparingInt(TopicPartitionInfo::partition));
        for (int i = 0; i < partitions.size(); i++) {
            TopicPartitionInfo p = partitions.get(i);
            Node leader = p.leader();
            out.append(i == 0 ? "" : ",")
                .append("{\"partition\":").append(p.partition())
                .append(",\"leader\":").append(leader == null || leader.isEmpty() ? -1 : leader.id())
                .append(",\"replicas\":").append(nodeIds(p.replicas()))
                .append(",\"isr\":").append(nodeIds(p.isr()))
                .append('}');
        }
        return out.append("]}").toString();
    }

    private static String nodeIds(Collection<Node> nodes) {
        StringBuilder out = new StringBuilder("[");
        for (Node node : nodes) {
            out.append(out.length() == 1 ? "" : ",").append(node.id());
        }
        return out.append(']').toString();
    }

    private static Set<Integer> ids(String list) {
        Set<Integer> ids = new TreeSet<>();
        for (String id : list.split(",")) {
            ids.add(Integer.parseInt(id.trim()));
        }
        return ids;
    }
}
