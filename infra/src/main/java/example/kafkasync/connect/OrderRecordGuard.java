package example.kafkasync.connect;

import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Lets through only order records that the orders table can hold, and fails the others with a DataException.
 *
 * <p>The Debezium JDBC sink has no dead-letter path for rows the database refuses: one such row fails the whole
 * task. Failing bad records here, in the transformation stage, hands them to Connect's own error handling instead
 * ({@code errors.tolerance=all} plus a dead-letter topic), and the sink only ever sees writable rows.
 */
public class OrderRecordGuard<R extends ConnectRecord<R>> implements Transformation<R> {

    private static final int MAX_TEXT = 64;
    private static final Set<String> STATUSES = Set.of("PENDING", "CONFIRMED", "REJECTED", "EXPIRED");
    private static final List<String> TEXT_FIELDS = List.of("order_id", "user_id", "product_id", "status");
    private static final List<String> INT_FIELDS = List.of("qty", "unit_price", "total_price");
    /** The contract's fields, exactly: an extra one (even the table's own {@code id}) would change the upsert. */
    private static final Set<String> FIELDS = Set.of("order_id", "user_id", "product_id", "qty", "unit_price",
            "total_price", "status", "created_at");
    /** MariaDB DATETIME's range; a value outside it fails the whole batch in the database. */
    private static final Instant EARLIEST = Instant.parse("1000-01-01T00:00:00Z");
    private static final Instant LATEST = Instant.parse("9999-12-31T23:59:59Z");

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value)) {
            throw new DataException("orders record without a struct value (schemas disabled or a tombstone)");
        }
        Set<String> names = value.schema().fields().stream().map(Field::name).collect(Collectors.toSet());
        if (!names.equals(FIELDS)) {
            Set<String> extra = new TreeSet<>(names);
            extra.removeAll(FIELDS);
            Set<String> missing = new TreeSet<>(FIELDS);
            missing.removeAll(names);
            throw new DataException("fields must be exactly " + new TreeSet<>(FIELDS) + "; extra " + extra
                    + ", missing " + missing);
        }
        for (String name : TEXT_FIELDS) {
            String text = (String) valueOf(value, name, Schema.Type.STRING, null);
            if (text.isEmpty() || text.length() > MAX_TEXT) {
                throw new DataException(name + " must have 1 to " + MAX_TEXT + " characters");
            }
        }
        for (String name : INT_FIELDS) {
            int number = (Integer) valueOf(value, name, Schema.Type.INT32, null);
            if (number < 0) {
                throw new DataException(name + " must not be negative, got " + number);
            }
        }
        Instant createdAt = ((Date) valueOf(value, "created_at", Schema.Type.INT64, Timestamp.LOGICAL_NAME)).toInstant();
        if (createdAt.isBefore(EARLIEST) || createdAt.isAfter(LATEST)) {
            throw new DataException("created_at must be within 1000-01-01..9999-12-31, got " + createdAt);
        }
        int qty = (Integer) value.get("qty");
        if (qty == 0) {
            throw new DataException("qty must be positive");
        }
        long total = (long) qty * (Integer) value.get("unit_price");
        if (total != (Integer) value.get("total_price")) {
            throw new DataException("total_price must be qty x unit_price = " + total + ", got "
                    + value.get("total_price"));
        }
        if (!STATUSES.contains(value.getString("status"))) {
            throw new DataException("status must be one of " + STATUSES + ", got " + value.getString("status"));
        }
        return record;
    }

    private static Object valueOf(Struct value, String name, Schema.Type type, String logicalName) {
        Field field = value.schema().field(name);
        if (field == null) {
            throw new DataException("missing field " + name);
        }
        Schema schema = field.schema();
        if (schema.type() != type || (logicalName != null && !logicalName.equals(schema.name()))) {
            String expected = logicalName == null ? type.toString() : type + " named " + logicalName;
            throw new DataException("field " + name + " must be " + expected + ", got " + schema.type());
        }
        Object fieldValue = value.get(field);
        if (fieldValue == null) {
            throw new DataException("field " + name + " must not be null");
        }
        if (logicalName != null && !(fieldValue instanceof Date)) {
            throw new DataException("field " + name + " is not a timestamp");
        }
        return fieldValue;
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }
}
