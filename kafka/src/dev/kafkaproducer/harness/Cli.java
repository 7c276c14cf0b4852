package dev.kafkaproducer.harness;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Minimal `--name value` argument parsing shared by the harness programs; a bad command line exits with status 2. */
final class Cli {
    private final String usage;
    private final Map<String, List<String>> options = new HashMap<>();
    final List<String> positional = new ArrayList<>();

    Cli(String usage, String[] args) {
        this.usage = usage;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("-h") || arg.equals("--help")) {
                System.out.println(usage);
                System.exit(0);
            }
            if (arg.startsWith("--")) {
                if (i + 1 >= args.length) {
                    fail("option " + arg + " needs a value");
                }
                options.computeIfAbsent(arg, k -> new ArrayList<>()).add(args[++i]);
            } else {
                positional.add(arg);
            }
        }
    }

    String required(String name) {
        List<String> values = options.get(name);
        if (values == null) {
            fail("missing " + name);
        }
        return values.get(values.size() - 1);
    }

    long number(String name, long fallback) {
        List<String> values = options.get(name);
        if (values == null) {
            return fallback;
        }
        try {
            return Long.parseLong(values.get(values.size() - 1));
        } catch (NumberFormatException e) {
            fail(name + " must be a number");
            return fallback;
        }
    }

    List<String> all(String name) {
        return options.getOrDefault(name, List.of());
    }

    void fail(String message) {
        System.err.println("error: " + message);
        System.err.println(usage);
        System.exit(2);
    }

    /** Prints `program: message` on stderr and exits with status 1. */
    static void die(String program, String message) {
        System.err.println(program + ": " + message);
        System.exit(1);
    }
}
