package xenmca.client;

import com.google.protobuf.Timestamp;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import xenmca.record.v1.Record.ErrorRecord;
import xenmca.record.v1.Record.Section;

/**
 * One record of the dom0 log as one JSON line, the same fields and value formats as the Node
 * client's: pcpu, record_id (string), type ("CMC"), severity ("corrected"), created_at (RFC 3339
 * UTC with nanoseconds, or null), overflow, sections (error_recovery_info and the set body member,
 * with proto field names), by_ipi, and raw (base64) when asked for.
 */
public final class RecordLine {
  private RecordLine() {}

  private static final DateTimeFormatter SECONDS =
      DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC);

  /** The line's fields, in order. */
  public static Map<String, Object> fields(ErrorRecord record, boolean byIpi, boolean raw) {
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("pcpu", Integer.toUnsignedLong(record.getPcpu()));
    line.put("record_id", Long.toUnsignedString(record.getRecordId()));
    line.put("type", Names.typeLabel(Names.enumName(record.getType(), record.getTypeValue())));
    line.put("severity", Names.severityLabel(Names.enumName(record.getSeverity(), record.getSeverityValue())));
    line.put("created_at", record.hasCreatedAt() ? timestamp(record.getCreatedAt()) : null);
    line.put("overflow", record.getOverflow());
    List<Object> sections = new ArrayList<>();
    for (Section section : record.getSectionsList()) sections.add(section(section));
    line.put("sections", sections);
    line.put("by_ipi", byIpi);
    if (raw) line.put("raw", Base64.getEncoder().encodeToString(record.getRaw().toByteArray()));
    return line;
  }

  /** The JSON line (without its newline). */
  public static String json(ErrorRecord record, boolean byIpi, boolean raw) {
    return JsonText.compact(fields(record, byIpi, raw));
  }

  /** error_recovery_info, then the set body member (none when no body is set). */
  static Map<String, Object> section(Section section) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("error_recovery_info", Integer.toUnsignedLong(section.getErrorRecoveryInfo()));
    switch (section.getBodyCase()) {
      case PROCESSOR:
        out.put("processor", ProtoObjects.toObject(section.getProcessor()));
        break;
      case PLATFORM_MEMORY:
        out.put("platform_memory", ProtoObjects.toObject(section.getPlatformMemory()));
        break;
      case PCI_BUS:
        out.put("pci_bus", ProtoObjects.toObject(section.getPciBus()));
        break;
      case PLATFORM_SPECIFIC:
        out.put("platform_specific", ProtoObjects.toObject(section.getPlatformSpecific()));
        break;
      default:
        break;
    }
    return out;
  }

  /**
   * RFC 3339 UTC with nine fraction digits, e.g. 2026-11-26T00:53:46.763290145Z; null for the zero
   * timestamp, as the Node client does.
   */
  public static String timestamp(Timestamp ts) {
    if (ts.getSeconds() == 0 && ts.getNanos() == 0) return null;
    String whole = SECONDS.format(Instant.ofEpochSecond(ts.getSeconds()));
    return whole + "." + String.format("%09d", ts.getNanos()) + "Z";
  }
}
