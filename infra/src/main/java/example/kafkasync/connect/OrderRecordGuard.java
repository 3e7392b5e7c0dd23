package example.kafkasync.connect;

import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.Set;

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
    private static final Set<String> STATUSES = Set.of("PENDING", "CONFIRMED", "REJECTED");
    private static final List<String> TEXT_FIELDS = List.of("order_id", "user_id", "product_id", "status");
    private static final List<String> INT_FIELDS = List.of("qty", "unit_price", "total_price");

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value)) {
            throw new DataException("orders record without a struct value (schemas disabled or a tombstone)");
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
        valueOf(value, "created_at", Schema.Type.INT64, Timestamp.LOGICAL_NAME);
        if ((Integer) value.get("qty") == 0) {
            throw new DataException("qty must be positive");
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
