package example.kafkasync.rest;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.security.Principal;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.PathSegment;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.SecurityContext;

/**
 * Two checks on the worker's REST API, after Basic auth has named the user.
 *
 * <p><b>No secret in a field Connect echoes.</b> Validation, creation and update resolve a connector config's
 * {@code ${provider:...}} references, and answer with the resolved values of every field that is not of type
 * PASSWORD (in {@code value} and in error messages). So a config sent to {@code POST /connectors},
 * {@code PUT|PATCH /connectors/{name}/config} or {@code PUT /connector-plugins/{plugin}/config/validate} may hold a
 * reference outside the password fields only when it names a plain setting ({@code ${env:DB_HOST}}); anything else
 * is answered 400 with the field's name, before Connect resolves it.
 *
 * <p><b>Read-only users.</b> They may only {@code GET} the connector list and connector and task states; anything
 * else is 403.
 */
public class RestRequestGuard implements ContainerRequestFilter {

    /** Every {@code ${...}}: a superset of what Kafka's ConfigTransformer resolves ({@code ${provider:[path:]key}}). */
    private static final Pattern REFERENCE = Pattern.compile("\\$\\{[^}]*}");
    /** What a read-only user may GET: /, /connectors, its states. */
    private static final List<List<String>> READABLE = List.of(
            List.of(), List.of("connectors"), List.of("connectors", "*", "status"),
            List.of("connectors", "*", "tasks", "*", "status"));
    /** Bodies parsed stricter than Connect does (a duplicate key or trailing content is refused, never guessed at). */
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Set<String> secretFields;
    private final Set<String> plainReferences;
    private final Set<String> readOnlyUsers;

    public RestRequestGuard(Set<String> secretFields, Set<String> plainReferences, Set<String> readOnlyUsers) {
        this.secretFields = Set.copyOf(secretFields);
        this.plainReferences = Set.copyOf(plainReferences);
        this.readOnlyUsers = Set.copyOf(readOnlyUsers);
    }

    @Override
    public void filter(ContainerRequestContext request) throws IOException {
        List<String> path = request.getUriInfo().getPathSegments(true).stream()
                .map(PathSegment::getPath)
                .filter(segment -> !segment.isEmpty())
                .toList();
        String user = userOf(request.getSecurityContext());
        if (user != null && readOnlyUsers.contains(user)
                && !(request.getMethod().equals("GET") && READABLE.stream().anyMatch(shape -> matches(shape, path)))) {
            request.abortWith(refusal(Response.Status.FORBIDDEN, "the REST user " + user
                    + " may only read connector states (GET /connectors, /connectors/{name}/status)"));
            return;
        }
        if (!carriesConfig(path) || !request.hasEntity()) {
            return;
        }
        byte[] body = request.getEntityStream().readAllBytes();
        request.setEntityStream(new ByteArrayInputStream(body));
        if (body.length == 0) {
            return;
        }
        JsonNode config;
        try {
            JsonNode parsed = JSON.readTree(body);
            config = path.size() == 1 ? parsed.path("config") : parsed;
        } catch (JacksonException unreadable) {
            request.abortWith(refusal(Response.Status.BAD_REQUEST,
                    "the body is not one JSON object without duplicate keys: " + unreadable.getOriginalMessage()));
            return;
        }
        Set<String> misplaced = misplacedReferences(config);
        if (!misplaced.isEmpty()) {
            request.abortWith(refusal(Response.Status.BAD_REQUEST, "config provider reference ${...} in "
                    + misplaced + ": only the password fields " + new TreeSet<>(secretFields)
                    + " may reference a secret; other fields only " + new TreeSet<>(plainReferences)));
        }
    }

    /** The fields outside the password fields that hold a reference other than a plain setting's. */
    Set<String> misplacedReferences(JsonNode config) {
        Set<String> misplaced = new TreeSet<>();
        for (Map.Entry<String, JsonNode> field : config.properties()) {
            if (secretFields.contains(field.getKey())) {
                continue;
            }
            JsonNode value = field.getValue();
            Matcher references = REFERENCE.matcher(value.isTextual() ? value.textValue() : value.toString());
            while (references.find()) {
                if (!plainReferences.contains(references.group())) {
                    misplaced.add(field.getKey());
                }
            }
        }
        return misplaced;
    }

    /** POST /connectors ({"name", "config"}), PUT|PATCH /connectors/{name}/config, PUT .../config/validate. */
    private static boolean carriesConfig(List<String> path) {
        return matches(List.of("connectors"), path)
                || matches(List.of("connectors", "*", "config"), path)
                || matches(List.of("connector-plugins", "*", "config", "validate"), path);
    }

    private static boolean matches(List<String> shape, List<String> path) {
        if (shape.size() != path.size()) {
            return false;
        }
        for (int i = 0; i < shape.size(); i++) {
            if (!shape.get(i).equals("*") && !shape.get(i).equals(path.get(i))) {
                return false;
            }
        }
        return true;
    }

    private static String userOf(SecurityContext security) {
        Principal principal = security == null ? null : security.getUserPrincipal();
        return principal == null ? null : principal.getName();
    }

    /** Connect's own error shape. */
    private static Response refusal(Response.Status status, String message) {
        String body = JSON.createObjectNode().put("error_code", status.getStatusCode()).put("message", message)
                .toString();
        return Response.status(status).type(MediaType.APPLICATION_JSON_TYPE).entity(body).build();
    }
}
