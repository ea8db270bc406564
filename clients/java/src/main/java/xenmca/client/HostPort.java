package xenmca.client;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A coordinator address, HOST:PORT or [v6]:PORT, checked the way the Python tools and Node check it. */
public final class HostPort {
  // JavaScript's \s, spelled out (Java's \s is ASCII only).
  private static final String JS_SPACE = "\\t\\n\\u000B\\f\\r \\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000\\uFEFF";
  private static final Pattern FORM = Pattern.compile("(\\[[0-9A-Fa-f:.]+\\]|[^" + JS_SPACE + ":\\[\\]/]+):(\\d{1,5})");

  /** The host part, with brackets for IPv6. */
  public final String host;

  /** The port, 1 to 65535. */
  public final int port;

  private HostPort(String host, int port) {
    this.host = host;
    this.port = port;
  }

  /**
   * Parse text.
   *
   * @throws CommandError "address 'TEXT' is not HOST:PORT"
   */
  public static HostPort parse(String text) throws CommandError {
    Matcher m = FORM.matcher(text == null ? "" : text);
    if (m.matches()) {
      int port = Integer.parseInt(m.group(2));
      if (port >= 1 && port <= 65535) return new HostPort(m.group(1), port);
    }
    throw new CommandError("address '" + (text == null ? "undefined" : text) + "' is not HOST:PORT");
  }
}
