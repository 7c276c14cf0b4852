package dev.kafkaproducer.harness;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

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
        "brokers:      prints {\"clusterId\",\"controller\",\"brokers\":[{\"id\",\"host\",\"port\"}]}",
        "wait-brokers: asks each bootstrap address in turn until every one of them reports all the given broker ids",
        "              alive; exits 1 on timeout and 2 as soon as a watched process is gone",
        "topic:        prints {\"topic\",\"partitions\":[{\"partition\",\"leader\",\"replicas\",\"isr\"}]}; exits 3 if the",
        "              topic does not exist",
        "wait-topic:   as topic, after waiting until the topic exists and every partition has a leader");

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
