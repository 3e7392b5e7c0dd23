package example.kafkasync.rest;

import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import jakarta.ws.rs.Priorities;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.rest.ConnectRestExtension;
import org.apache.kafka.connect.rest.ConnectRestExtensionContext;

/**
 * Puts {@link RestRequestGuard} in front of the worker's REST resources, configured from worker.properties:
 *
 * <ul>
 *   <li>{@code kafkasync.rest.guard.secret.fields}: the connector config fields Connect hides as passwords, the only
 *       ones that may reference a secret through a config provider;</li>
 *   <li>{@code kafkasync.rest.guard.plain.env}: the variables any other field may reference as {@code ${env:NAME}}
 *       (hosts, ports, database and user names);</li>
 *   <li>{@code kafkasync.rest.guard.read.only.users}: REST users (of the Basic auth users file) that may only read
 *       connector states.</li>
 * </ul>
 */
public class RestGuardExtension implements ConnectRestExtension {

    static final String SECRET_FIELDS = "kafkasync.rest.guard.secret.fields";
    static final String PLAIN_ENV = "kafkasync.rest.guard.plain.env";
    static final String READ_ONLY_USERS = "kafkasync.rest.guard.read.only.users";
    /**
     * After BasicAuthSecurityRestExtension's filter, which names the user: Kafka annotates that filter with
     * javax.annotation.Priority, which Jersey 3 does not read, so it runs at the default USER priority.
     */
    private static final int PRIORITY = Priorities.USER + 1000;

    private RestRequestGuard guard;

    @Override
    public void configure(Map<String, ?> configs) {
        Set<String> secretFields = listed(configs, SECRET_FIELDS, true);
        Set<String> plainReferences = listed(configs, PLAIN_ENV, true).stream()
                .map(name -> "${env:" + name + "}")
                .collect(Collectors.toUnmodifiableSet());
        guard = new RestRequestGuard(secretFields, plainReferences, listed(configs, READ_ONLY_USERS, false));
    }

    @Override
    public void register(ConnectRestExtensionContext context) {
        context.configurable().register(guard, PRIORITY);
    }

    @Override
    public void close() {
    }

    @Override
    public String version() {
        return "1.0.0";
    }

    /** A comma-separated list; a required one that is missing stops the worker rather than let every field pass. */
    private static Set<String> listed(Map<String, ?> configs, String key, boolean required) {
        Object value = configs.get(key);
        Set<String> items = value == null ? Set.of() : Arrays.stream(value.toString().split(","))
                .map(String::trim)
                .filter(item -> !item.isEmpty())
                .collect(Collectors.toUnmodifiableSet());
        if (required && items.isEmpty()) {
            throw new ConfigException(key, value, "must list at least one name");
        }
        return items;
    }
}
