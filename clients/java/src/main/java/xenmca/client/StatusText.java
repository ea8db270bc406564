package xenmca.client;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The coordinator's state (DescribeHypervisorResponse) as the plain text {@code status} prints:
 * pCPUs, vCPU0, dom0, injected types, the queues, the counters, and the throttle lines that poll or
 * have changed mode. It reads the same decoded shape as {@code status --json} ({@link
 * ProtoObjects}), so its lines are the Node client's.
 */
public final class StatusText {
  private StatusText() {}

  /** The lines, without newlines. */
  public static List<String> lines(Map<String, Object> state, String address) {
    List<Object> pcpus = list(state.get("pcpus"));
    long connected = pcpus.stream().filter(p -> Boolean.TRUE.equals(map(p).get("connected"))).count();
    List<String> injectedNames = new ArrayList<>();
    for (Object type : list(state.get("injected_types"))) injectedNames.add(typeLabel(type));
    String injected = injectedNames.isEmpty() ? "-" : String.join(", ", injectedNames);

    List<String> lines = new ArrayList<>();
    lines.add("coordinator " + address);
    lines.add("pCPUs: " + pcpus.size() + " (" + connected + " connected)   vCPU0 on pCPU " + text(state.get("vcpu0_pcpu"))
        + "   dom0: " + (Boolean.TRUE.equals(state.get("dom0_attached")) ? "attached" : "not attached")
        + "   injected: " + injected);
    lines.add("");
    lines.add("queues");
    List<List<String>> queues = new ArrayList<>();
    queues.add(List.of("type", "depth", "in flight"));
    for (Object q : list(state.get("queues"))) {
      Map<String, Object> queue = map(q);
      queues.add(List.of(typeLabel(queue.get("type")), text(queue.get("depth")), inFlight(queue.get("in_flight"))));
    }
    lines.addAll(table(queues));
    lines.add("");
    lines.add("counters");
    List<List<String>> counters = new ArrayList<>();
    Object counterObject = state.get("counters");
    if (counterObject != null) {
      for (Map.Entry<String, Object> entry : map(counterObject).entrySet()) {
        counters.add(List.of(entry.getKey(), text(entry.getValue())));
      }
    }
    lines.addAll(table(counters));

    List<Map<String, Object>> throttle = new ArrayList<>();
    for (Object t : list(state.get("throttle"))) throttle.add(map(t));
    long polling = throttle.stream().filter(t -> "THROTTLE_MODE_POLLING".equals(t.get("mode"))).count();
    lines.add("");
    lines.add("throttle: " + polling + " of " + throttle.size() + " lines polling");
    List<List<String>> notable = new ArrayList<>();
    for (Map<String, Object> t : throttle) {
      boolean isPolling = "THROTTLE_MODE_POLLING".equals(t.get("mode"));
      if (!isPolling && !(Double.parseDouble(text(t.get("transitions"))) > 0)) continue;
      Double ms = durationMs(t.get("poll_interval"));
      notable.add(List.of(
          text(t.get("pcpu")),
          typeLabel(t.get("type")),
          text(t.get("mode")).replaceFirst("^THROTTLE_MODE_", "").toLowerCase(Locale.ROOT),
          isPolling && ms != null && ms != 0 && !ms.isNaN() ? JsonText.number(ms) + " ms" : "-",
          text(t.get("transitions"))));
    }
    if (!notable.isEmpty()) {
      List<List<String>> rows = new ArrayList<>();
      rows.add(List.of("pCPU", "line", "mode", "interval", "transitions"));
      rows.addAll(notable);
      lines.addAll(table(rows));
    }
    return lines;
  }

  /** Milliseconds of a decoded google.protobuf.Duration, or null when unset. */
  static Double durationMs(Object duration) {
    if (duration == null) return null;
    Map<String, Object> d = map(duration);
    return Double.parseDouble(text(d.get("seconds"))) * 1000 + Double.parseDouble(text(d.get("nanos"))) / 1e6;
  }

  private static String inFlight(Object entryObject) {
    if (entryObject == null) return "-";
    Map<String, Object> entry = map(entryObject);
    String state = text(entry.get("state"));
    if (state.equals("ENTRY_STATE_UNSPECIFIED")) return "-";
    String short_ = state.replaceFirst("^ENTRY_STATE_", "").toLowerCase(Locale.ROOT);
    return state.equals("ENTRY_STATE_READ")
        ? "pCPU " + text(entry.get("pcpu")) + " " + short_ + " (record " + text(entry.get("record_id")) + ")"
        : "pCPU " + text(entry.get("pcpu")) + " " + short_;
  }

  /** Rows padded to their columns' widths, two spaces apart, indented by two. */
  private static List<String> table(List<List<String>> rows) {
    List<String> out = new ArrayList<>();
    if (rows.isEmpty()) return out;
    int[] widths = new int[rows.get(0).size()];
    for (List<String> row : rows) {
      for (int i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i], row.get(i).length());
    }
    for (List<String> row : rows) {
      StringBuilder line = new StringBuilder();
      for (int i = 0; i < widths.length; i++) {
        if (i > 0) line.append("  ");
        line.append(row.get(i));
        for (int pad = row.get(i).length(); pad < widths[i]; pad++) line.append(' ');
      }
      out.add("  " + line.toString().stripTrailing());
    }
    return out;
  }

  private static String typeLabel(Object type) {
    return Names.typeLabel(text(type));
  }

  private static String text(Object value) {
    if (value == null) return "null";
    if (value instanceof Number) return JsonText.number((Number) value);
    return value.toString();
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> map(Object value) {
    return (Map<String, Object>) value;
  }

  @SuppressWarnings("unchecked")
  private static List<Object> list(Object value) {
    return value == null ? List.of() : (List<Object>) value;
  }
}
