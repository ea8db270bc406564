package xenmca.client;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The parsed command line: which command and its options, with the Node client's defaults.
 *
 * <p>Options are read the way Node's {@code util.parseArgs} reads them in strict mode without
 * positionals ({@code --name value}, {@code --name=value}, {@code -h}, the last of a repeated
 * option wins, a value that starts with a dash must be given as {@code --name=-value}), and every
 * problem is a {@link CommandError} worded as the Node client words it.
 */
public final class CommandLine {
  /** Deadline of each unary call unless --timeout says otherwise. */
  public static final long DEFAULT_DEADLINE_MS = 10_000;

  /** The commands and each one's options: name to "string" or "boolean". */
  private static final Map<String, Map<String, String>> OPTIONS = new LinkedHashMap<>();

  static {
    Map<String, String> common = new LinkedHashMap<>();
    common.put("xen", "string");
    common.put("token-file", "string");
    common.put("tls-cert", "string");
    common.put("tls-key", "string");
    common.put("tls-ca", "string");
    common.put("timeout", "string");
    common.put("help", "boolean");
    Map<String, String> status = new LinkedHashMap<>(common);
    status.put("json", "boolean");
    Map<String, String> dom0 = new LinkedHashMap<>(common);
    dom0.put("max", "string");
    dom0.put("cpe-poll", "string");
    dom0.put("out", "string");
    dom0.put("raw", "boolean");
    dom0.put("instance", "string");
    dom0.put("connect-timeout", "string");
    OPTIONS.put("status", status);
    OPTIONS.put("dom0", dom0);
  }

  private static final Pattern WHOLE_NUMBER = Pattern.compile("[0-9]+");
  private static final long MAX_SAFE_INTEGER = 9007199254740991L;

  /** The three PEM files of mutual TLS. */
  public static final class TlsPaths {
    /** --tls-cert: this client's certificate. */
    public final String cert;
    /** --tls-key: its private key. */
    public final String key;
    /** --tls-ca: the CA that signed the coordinator's certificate. */
    public final String ca;

    TlsPaths(String cert, String key, String ca) {
      this.cert = cert;
      this.key = key;
      this.ca = ca;
    }
  }

  /** "status", "dom0" or "help". */
  public final String command;
  /** --xen HOST:PORT. */
  public String xen;
  /** --token-file, or null. */
  public String tokenFile;
  /** Mutual TLS files, or null. */
  public TlsPaths tls;
  /** --timeout: deadline of each unary call. */
  public long timeoutMs = DEFAULT_DEADLINE_MS;
  /** status --json. */
  public boolean json;
  /** dom0 --max (0: no limit). */
  public long max;
  /** dom0 --cpe-poll (0: off). */
  public long cpePollMs = 1000;
  /** dom0 --connect-timeout. */
  public long connectTimeoutMs = 10_000;
  /** dom0 --out, or null for stdout. */
  public String out;
  /** dom0 --raw. */
  public boolean raw;
  /** dom0 --instance, or null for the default name. */
  public String instance;

  private CommandLine(String command) {
    this.command = command;
  }

  /** True when argv[0] names a command (errors are then prefixed with it). */
  public static boolean isCommand(String word) {
    return word != null && OPTIONS.containsKey(word);
  }

  /**
   * Parse argv (the arguments after the program name).
   *
   * @throws CommandError for anything that is not a valid command line
   */
  public static CommandLine parse(List<String> argv) throws CommandError {
    if (argv.isEmpty()) throw new CommandError("missing command (status or dom0); see --help");
    String command = argv.get(0);
    if (command.equals("-h") || command.equals("--help") || command.equals("help")) return new CommandLine("help");
    if (!OPTIONS.containsKey(command)) {
      throw new CommandError("unknown command '" + command + "' (choose status or dom0)");
    }
    Map<String, Object> values = parseOptions(argv.subList(1, argv.size()), OPTIONS.get(command));
    if (values.containsKey("help")) return new CommandLine("help");
    String xen = (String) values.get("xen");
    if (xen == null) throw new CommandError("--xen HOST:PORT is required");
    try {
      HostPort.parse(xen);
    } catch (CommandError e) {
      throw new CommandError("--xen: " + e.getMessage());
    }
    if (values.containsKey("timeout") && nonNegativeInt("timeout", (String) values.get("timeout"), 0) == 0) {
      throw new CommandError("--timeout must be at least 1 ms");
    }
    List<String> tlsGiven = new ArrayList<>();
    for (String name : List.of("tls-cert", "tls-key", "tls-ca")) {
      if (values.containsKey(name)) tlsGiven.add(name);
    }
    if (!tlsGiven.isEmpty() && tlsGiven.size() != 3) {
      throw new CommandError("--tls-cert, --tls-key and --tls-ca go together (all three or none)");
    }
    CommandLine line = new CommandLine(command);
    line.xen = xen;
    line.tokenFile = (String) values.get("token-file");
    if (tlsGiven.size() == 3) {
      line.tls = new TlsPaths((String) values.get("tls-cert"), (String) values.get("tls-key"), (String) values.get("tls-ca"));
    }
    line.timeoutMs = nonNegativeInt("timeout", (String) values.get("timeout"), DEFAULT_DEADLINE_MS);
    if (command.equals("status")) {
      line.json = values.containsKey("json");
    } else {
      line.max = nonNegativeInt("max", (String) values.get("max"), 0);
      line.cpePollMs = nonNegativeInt("cpe-poll", (String) values.get("cpe-poll"), 1000);
      line.connectTimeoutMs = nonNegativeInt("connect-timeout", (String) values.get("connect-timeout"), 10_000);
      line.out = (String) values.get("out");
      line.raw = values.containsKey("raw");
      line.instance = (String) values.get("instance");
    }
    return line;
  }

  private static long nonNegativeInt(String name, String text, long fallback) throws CommandError {
    if (text == null) return fallback;
    if (!WHOLE_NUMBER.matcher(text).matches() || !isSafeInteger(text)) {
      throw new CommandError("--" + name + " must be a whole number >= 0 (got '" + text + "')");
    }
    return Long.parseLong(text);
  }

  private static boolean isSafeInteger(String digits) {
    String trimmed = digits.replaceFirst("^0+(?=.)", "");
    if (trimmed.length() > 16) return false;
    return Long.parseLong(trimmed) <= MAX_SAFE_INTEGER;
  }

  /** One option or positional as Node's parseArgs splits argv. */
  private static final class Token {
    final boolean positional;
    final String name;
    final String rawName;
    final String value;
    final boolean inlineValue;

    Token(boolean positional, String name, String rawName, String value, boolean inlineValue) {
      this.positional = positional;
      this.name = name;
      this.rawName = rawName;
      this.value = value;
      this.inlineValue = inlineValue;
    }
  }

  /** Option values by name: String for string options, Boolean.TRUE for flags given. */
  private static Map<String, Object> parseOptions(List<String> args, Map<String, String> spec) throws CommandError {
    Map<String, String> shorts = new HashMap<>();
    shorts.put("h", "help");
    List<Token> tokens = new ArrayList<>();
    Deque<String> remaining = new ArrayDeque<>(args);
    while (!remaining.isEmpty()) {
      String arg = remaining.removeFirst();
      String next = remaining.peekFirst();
      if (arg.equals("--")) {
        while (!remaining.isEmpty()) tokens.add(new Token(true, null, null, remaining.removeFirst(), false));
        break;
      }
      if (arg.length() == 2 && arg.charAt(0) == '-' && arg.charAt(1) != '-') {
        String name = shorts.getOrDefault(arg.substring(1), arg.substring(1));
        String value = null;
        if ("string".equals(spec.get(name)) && next != null) value = remaining.removeFirst();
        tokens.add(new Token(false, name, arg, value, false));
        continue;
      }
      if (arg.length() > 2 && arg.charAt(0) == '-' && arg.charAt(1) != '-') {
        // A group of short flags, -hx: one at a time (none of them takes a value here).
        List<String> expanded = new ArrayList<>();
        for (int i = 1; i < arg.length(); i++) {
          String name = shorts.getOrDefault(String.valueOf(arg.charAt(i)), String.valueOf(arg.charAt(i)));
          if (!"string".equals(spec.get(name)) || i == arg.length() - 1) {
            expanded.add("-" + arg.charAt(i));
          } else {
            expanded.add("-" + arg.substring(i));
            break;
          }
        }
        for (int i = expanded.size() - 1; i >= 0; i--) remaining.addFirst(expanded.get(i));
        continue;
      }
      if (arg.length() > 2 && arg.startsWith("--")) {
        int equals = arg.indexOf('=', 3);
        if (equals < 0) {
          String name = arg.substring(2);
          String value = null;
          if ("string".equals(spec.get(name)) && next != null) value = remaining.removeFirst();
          tokens.add(new Token(false, name, arg, value, false));
        } else {
          String name = arg.substring(2, equals);
          tokens.add(new Token(false, name, "--" + name, arg.substring(equals + 1), true));
        }
        continue;
      }
      tokens.add(new Token(true, null, null, arg, false));
    }

    Map<String, Object> values = new LinkedHashMap<>();
    for (Token token : tokens) {
      if (token.positional) {
        throw new CommandError("Unexpected argument '" + token.value + "'. This command does not take positional arguments");
      }
      String type = spec.get(token.name);
      if (type == null) throw new CommandError("Unknown option '" + token.rawName + "'");
      String shortAndLong = (token.name.equals("help") ? "-h, " : "") + "--" + token.name;
      if (type.equals("string") && token.value == null) {
        throw new CommandError("Option '" + shortAndLong + " <value>' argument missing");
      }
      if (type.equals("boolean") && token.value != null) {
        throw new CommandError("Option '" + shortAndLong + "' does not take an argument");
      }
      if (!token.inlineValue && token.value != null && token.value.length() > 1 && token.value.charAt(0) == '-') {
        String example = token.rawName.startsWith("--")
            ? "'" + token.rawName + "=-XYZ'"
            : "'--" + token.name + "=-XYZ' or '" + token.rawName + "-XYZ'";
        throw new CommandError("Option '" + token.rawName + "' argument is ambiguous.\nDid you forget to specify the option argument for '"
            + token.rawName + "'?\nTo specify an option argument starting with a dash use " + example + ".");
      }
      values.put(token.name, type.equals("string") ? token.value : Boolean.TRUE);
    }
    return values;
  }
}
