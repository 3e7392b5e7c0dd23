package example.kafkasync.admin;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

/**
 * Makes the brokers' logins and ACLs match infra/kafka/acls.txt: one SCRAM-SHA-512 login per principal named there
 * (password from {@code KAFKA_<PRINCIPAL>_PASSWORD}), exactly the ACLs listed for it, nothing else.
 *
 * <p>Run by the launcher on every {@code make up} as the {@code admin} super user ({@code KAFKA_ADMIN_PASSWORD});
 * every step is idempotent. A small Java program because the Python client has no API for SCRAM logins or ACLs,
 * and one JVM does in a second what Kafka's kafka-configs/kafka-acls scripts would need a dozen JVMs for.
 *
 * <p>Usage: {@code KafkaAccessSetup <bootstrap servers> <acl file>}
 */
public final class KafkaAccessSetup {

    /** Above Kafka's minimum of 4096; the login costs this many HMACs once per connection. */
    private static final int SCRAM_ITERATIONS = 8192;

    private KafkaAccessSetup() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: KafkaAccessSetup <bootstrap servers> <acl file>");
            System.exit(2);
        }
        List<AclBinding> wanted = readAcls(Path.of(args[1]));
        Set<String> principals = new LinkedHashSet<>();
        for (AclBinding binding : wanted) {
            principals.add(binding.entry().principal().substring("User:".length()));
        }
        try (Admin admin = Admin.create(adminConfig(args[0]))) {
            List<UserScramCredentialAlteration> logins = new ArrayList<>();
            for (String principal : principals) {
                ScramCredentialInfo info = new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS);
                logins.add(new UserScramCredentialUpsertion(principal, info, requiredEnv(passwordVariable(principal))));
            }
            admin.alterUserScramCredentials(logins).all().get();

            Set<AclBinding> present = new HashSet<>();
            for (String principal : principals) {
                AclBindingFilter filter = new AclBindingFilter(ResourcePatternFilter.ANY,
                        new AccessControlEntryFilter("User:" + principal, null, AclOperation.ANY,
                                AclPermissionType.ANY));
                present.addAll(admin.describeAcls(filter).values().get());
            }
            List<AclBindingFilter> stale = new ArrayList<>();
            for (AclBinding binding : present) {
                if (!wanted.contains(binding)) {
                    stale.add(binding.toFilter());
                }
            }
            if (!stale.isEmpty()) {
                admin.deleteAcls(stale).all().get();
            }
            admin.createAcls(wanted).all().get();
            System.out.printf("kafka access: %d logins, %d ACLs (%d removed)%n", principals.size(), wanted.size(),
                    stale.size());
        }
    }

    /** {@code order-service} -> {@code KAFKA_ORDER_SERVICE_PASSWORD}. */
    static String passwordVariable(String principal) {
        return "KAFKA_" + principal.toUpperCase(Locale.ROOT).replace('-', '_') + "_PASSWORD";
    }

    private static Properties adminConfig(String bootstrapServers) {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        config.put(AdminClientConfig.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        config.put("sasl.mechanism", "SCRAM-SHA-512");
        config.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required "
                + "username=\"admin\" password=\"" + requiredEnv("KAFKA_ADMIN_PASSWORD") + "\";");
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        return config;
    }

    /**
     * One ACL per line: {@code principal operation resource-type pattern-type name}; {@code #} starts a comment.
     * Every line allows, from any host (the listeners are on loopback).
     */
    static List<AclBinding> readAcls(Path file) throws IOException {
        List<AclBinding> bindings = new ArrayList<>();
        int number = 0;
        for (String line : Files.readAllLines(file)) {
            number++;
            String text = line.replaceFirst("#.*", "").trim();
            if (text.isEmpty()) {
                continue;
            }
            String[] parts = text.split("\\s+");
            if (parts.length != 5) {
                throw new IllegalArgumentException(file + ":" + number + ": expected 5 columns, got: " + line);
            }
            ResourcePattern resource = new ResourcePattern(parse(ResourceType.class, parts[2], file, number),
                    parts[4], parse(PatternType.class, parts[3], file, number));
            AccessControlEntry entry = new AccessControlEntry("User:" + parts[0], "*",
                    parse(AclOperation.class, parts[1], file, number), AclPermissionType.ALLOW);
            bindings.add(new AclBinding(resource, entry));
        }
        return bindings;
    }

    private static <E extends Enum<E>> E parse(Class<E> type, String name, Path file, int number) {
        try {
            return Enum.valueOf(type, name.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ":" + number + ": not a " + type.getSimpleName() + ": " + name);
        }
    }

    private static String requiredEnv(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set (the launcher passes it from .env)");
        }
        return value;
    }
}
