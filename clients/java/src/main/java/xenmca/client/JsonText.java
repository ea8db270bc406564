package xenmca.client;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON text as JavaScript's {@code JSON.stringify} writes it and {@code JSON.parse} reads it, so
 * this client prints byte for byte what the Node client prints.
 *
 * <p>Values are {@link Map} (objects, in insertion order), {@link List}, {@link String}, {@link
 * Number}, {@link Boolean} and {@code null}. As in JavaScript, object keys that are array indexes
 * ("0", "17") come first, in ascending order.
 */
public final class JsonText {
  private JsonText() {}

  /** One line, no spaces: {@code JSON.stringify(value)}. */
  public static String compact(Object value) {
    StringBuilder out = new StringBuilder();
    write(out, value, null, "");
    return out.toString();
  }

  /** Indented by two spaces: {@code JSON.stringify(value, null, 2)}. */
  public static String pretty(Object value) {
    StringBuilder out = new StringBuilder();
    write(out, value, "  ", "");
    return out.toString();
  }

  private static void write(StringBuilder out, Object value, String indent, String current) {
    if (value == null) {
      out.append("null");
    } else if (value instanceof String) {
      quote(out, (String) value);
    } else if (value instanceof Boolean) {
      out.append(value);
    } else if (value instanceof Number) {
      out.append(number((Number) value));
    } else if (value instanceof Map) {
      List<Map.Entry<String, Object>> entries = jsKeyOrder((Map<?, ?>) value);
      if (entries.isEmpty()) {
        out.append("{}");
        return;
      }
      String inner = indent == null ? "" : current + indent;
      out.append('{');
      boolean first = true;
      for (Map.Entry<String, Object> entry : entries) {
        if (!first) out.append(',');
        first = false;
        if (indent != null) out.append('\n').append(inner);
        quote(out, entry.getKey());
        out.append(indent == null ? ":" : ": ");
        write(out, entry.getValue(), indent, inner);
      }
      if (indent != null) out.append('\n').append(current);
      out.append('}');
    } else if (value instanceof List) {
      List<?> items = (List<?>) value;
      if (items.isEmpty()) {
        out.append("[]");
        return;
      }
      String inner = indent == null ? "" : current + indent;
      out.append('[');
      boolean first = true;
      for (Object item : items) {
        if (!first) out.append(',');
        first = false;
        if (indent != null) out.append('\n').append(inner);
        write(out, item, indent, inner);
      }
      if (indent != null) out.append('\n').append(current);
      out.append(']');
    } else {
      throw new IllegalArgumentException("not a JSON value: " + value.getClass().getName());
    }
  }

  /** The entries in the order a JavaScript object keeps them: array indexes first, ascending. */
  private static List<Map.Entry<String, Object>> jsKeyOrder(Map<?, ?> map) {
    List<Map.Entry<String, Object>> indexes = new ArrayList<>();
    List<Map.Entry<String, Object>> others = new ArrayList<>();
    for (Map.Entry<?, ?> entry : map.entrySet()) {
      String key = String.valueOf(entry.getKey());
      Map.Entry<String, Object> e = new AbstractMap.SimpleImmutableEntry<>(key, entry.getValue());
      (isArrayIndex(key) ? indexes : others).add(e);
    }
    indexes.sort((a, b) -> Long.compare(Long.parseLong(a.getKey()), Long.parseLong(b.getKey())));
    indexes.addAll(others);
    return indexes;
  }

  private static boolean isArrayIndex(String key) {
    if (key.isEmpty() || key.length() > 10) return false;
    if (key.length() > 1 && key.charAt(0) == '0') return false;
    for (int i = 0; i < key.length(); i++) {
      if (key.charAt(i) < '0' || key.charAt(i) > '9') return false;
    }
    return Long.parseLong(key) < 4294967295L;
  }

  private static void quote(StringBuilder out, String text) {
    out.append('"');
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      switch (c) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        default:
          boolean loneSurrogate =
              (Character.isHighSurrogate(c) && (i + 1 >= text.length() || !Character.isLowSurrogate(text.charAt(i + 1))))
                  || (Character.isLowSurrogate(c) && (i == 0 || !Character.isHighSurrogate(text.charAt(i - 1))));
          if (c < 0x20 || loneSurrogate) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
      }
    }
    out.append('"');
  }

  /** A number as JavaScript prints it (integers in full, no trailing ".0"). */
  public static String number(Number n) {
    if (n instanceof Integer || n instanceof Long || n instanceof Short || n instanceof Byte || n instanceof BigInteger) {
      return n.toString();
    }
    double d = n.doubleValue();
    if (Double.isNaN(d) || Double.isInfinite(d)) return "null";
    if (d == 0) return "0";
    double abs = Math.abs(d);
    BigDecimal exact = new BigDecimal(Double.toString(d)).stripTrailingZeros();
    if (abs >= 1e-6 && abs < 1e21) return exact.toPlainString();
    String digits = exact.unscaledValue().abs().toString();
    int exponent = digits.length() - 1 - exact.scale();
    String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
    return (d < 0 ? "-" : "") + mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.abs(exponent);
  }

  /**
   * Parse JSON text as {@code JSON.parse} does (strict: no comments, no trailing commas).
   *
   * @throws IllegalArgumentException if the text is not JSON
   */
  public static Object parse(String text) {
    Parser parser = new Parser(text);
    parser.skipSpace();
    Object value = parser.value();
    parser.skipSpace();
    if (parser.pos != text.length()) throw parser.error("unexpected text after JSON");
    return value;
  }

  /** A recursive-descent reader of one JSON text. */
  private static final class Parser {
    private final String text;
    private int pos;

    Parser(String text) {
      this.text = text;
    }

    IllegalArgumentException error(String what) {
      return new IllegalArgumentException(what + " at position " + pos);
    }

    void skipSpace() {
      while (pos < text.length()) {
        char c = text.charAt(pos);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        pos++;
      }
    }

    Object value() {
      if (pos >= text.length()) throw error("unexpected end of JSON");
      char c = text.charAt(pos);
      switch (c) {
        case '{': return object();
        case '[': return array();
        case '"': return string();
        case 't': return literal("true", Boolean.TRUE);
        case 'f': return literal("false", Boolean.FALSE);
        case 'n': return literal("null", null);
        default:
          if (c == '-' || (c >= '0' && c <= '9')) return number();
          throw error("unexpected character '" + c + "'");
      }
    }

    private Object literal(String word, Object value) {
      if (!text.startsWith(word, pos)) throw error("unexpected token");
      pos += word.length();
      return value;
    }

    private Map<String, Object> object() {
      Map<String, Object> map = new LinkedHashMap<>();
      pos++;
      skipSpace();
      if (pos < text.length() && text.charAt(pos) == '}') {
        pos++;
        return map;
      }
      for (;;) {
        skipSpace();
        if (pos >= text.length() || text.charAt(pos) != '"') throw error("expected a property name");
        String key = string();
        skipSpace();
        expect(':');
        skipSpace();
        map.put(key, value());
        skipSpace();
        if (pos < text.length() && text.charAt(pos) == ',') {
          pos++;
          continue;
        }
        expect('}');
        return map;
      }
    }

    private List<Object> array() {
      List<Object> list = new ArrayList<>();
      pos++;
      skipSpace();
      if (pos < text.length() && text.charAt(pos) == ']') {
        pos++;
        return list;
      }
      for (;;) {
        skipSpace();
        list.add(value());
        skipSpace();
        if (pos < text.length() && text.charAt(pos) == ',') {
          pos++;
          continue;
        }
        expect(']');
        return list;
      }
    }

    private void expect(char c) {
      if (pos >= text.length() || text.charAt(pos) != c) throw error("expected '" + c + "'");
      pos++;
    }

    private String string() {
      StringBuilder out = new StringBuilder();
      pos++;
      for (;;) {
        if (pos >= text.length()) throw error("unterminated string");
        char c = text.charAt(pos++);
        if (c == '"') return out.toString();
        if (c < 0x20) throw error("control character in string");
        if (c != '\\') {
          out.append(c);
          continue;
        }
        if (pos >= text.length()) throw error("unterminated string");
        char e = text.charAt(pos++);
        switch (e) {
          case '"': out.append('"'); break;
          case '\\': out.append('\\'); break;
          case '/': out.append('/'); break;
          case 'b': out.append('\b'); break;
          case 'f': out.append('\f'); break;
          case 'n': out.append('\n'); break;
          case 'r': out.append('\r'); break;
          case 't': out.append('\t'); break;
          case 'u':
            if (pos + 4 > text.length()) throw error("bad \\u escape");
            try {
              out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
            } catch (NumberFormatException ex) {
              throw error("bad \\u escape");
            }
            pos += 4;
            break;
          default:
            throw error("bad escape");
        }
      }
    }

    private Number number() {
      int start = pos;
      if (text.charAt(pos) == '-') pos++;
      if (pos < text.length() && text.charAt(pos) == '0') {
        pos++;
      } else {
        if (!digits()) throw error("bad number");
      }
      boolean integral = true;
      if (pos < text.length() && text.charAt(pos) == '.') {
        pos++;
        integral = false;
        if (!digits()) throw error("bad number");
      }
      if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
        pos++;
        integral = false;
        if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-')) pos++;
        if (!digits()) throw error("bad number");
      }
      String literal = text.substring(start, pos);
      double d = Double.parseDouble(literal);
      if (integral && Math.abs(d) < 9007199254740992.0) return (long) d;
      return d;
    }

    private boolean digits() {
      int start = pos;
      while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') pos++;
      return pos > start;
    }
  }
}
