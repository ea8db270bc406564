package xenmca.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The token book: {@code {identity: token}} as JSON (what the testbed writes) or as a flat YAML
 * mapping of {@code identity: token} lines, read as the Node client and the Python tools read it.
 */
public final class TokenBook {
  /** The environment variable naming the default token file. */
  public static final String TOKEN_FILE_ENV = "XENMCA_TOKEN_FILE";

  private static final Pattern YAML_LINE = Pattern.compile("([A-Za-z0-9_.-]+)[\\s]*:[\\s]*(.+)");
  private static final Pattern COMMENT = Pattern.compile("\\s+#.*$");
  private static final Pattern QUOTED = Pattern.compile("(['\"])(.*)\\1", Pattern.DOTALL);

  private final Map<String, Object> entries;

  private TokenBook(Map<String, Object> entries) {
    this.entries = entries;
  }

  /** identity to token, in file order. */
  public Map<String, Object> entries() {
    return entries;
  }

  /** Read and check a token book. */
  public static TokenBook load(String path) throws TokenFileError {
    String text;
    try {
      text = new String(Files.readAllBytes(Path.of(path)), StandardCharsets.UTF_8);
    } catch (IOException | RuntimeException e) {
      throw new TokenFileError(path + ": cannot read token file: " + IoErrors.code(e));
    }
    Object parsed;
    try {
      parsed = JsonText.parse(text);
    } catch (IllegalArgumentException notJson) {
      parsed = parseFlatYaml(text);
    }
    if (!(parsed instanceof Map) || ((Map<?, ?>) parsed).isEmpty()) {
      throw new TokenFileError(path + ": expected a mapping of identity: token");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> book = (Map<String, Object>) parsed;
    for (Map.Entry<String, Object> entry : book.entrySet()) {
      if (!(entry.getValue() instanceof String) || ((String) entry.getValue()).length() < 8) {
        throw new TokenFileError(path + ": entry '" + entry.getKey() + "' must map a name to a token of 8+ characters");
      }
    }
    return new TokenBook(book);
  }

  /** The identity: token lines of a flat YAML mapping, or null if the text is not one. */
  static Map<String, Object> parseFlatYaml(String text) {
    Map<String, Object> book = new LinkedHashMap<>();
    for (String raw : text.split("\r?\n", -1)) {
      String line = COMMENT.matcher(raw).replaceFirst("").stripTrailing();
      if (line.isBlank() || line.stripLeading().startsWith("#") || line.equals("---")) continue;
      Matcher m = YAML_LINE.matcher(line);
      if (!m.matches()) return null;
      String value = m.group(2).strip();
      Matcher q = QUOTED.matcher(value);
      book.put(m.group(1), q.matches() ? q.group(2) : value);
    }
    return book;
  }

  /**
   * The token to present: the first of identities in the book at path (or $XENMCA_TOKEN_FILE). No
   * file at all means no token (null); a file without any of the identities is an error.
   */
  public static String resolve(String path, List<String> identities, Map<String, String> env) throws TokenFileError {
    String chosen = path != null && !path.isEmpty() ? path : env.get(TOKEN_FILE_ENV);
    if (chosen == null || chosen.isEmpty()) return null;
    TokenBook book = load(chosen);
    for (String identity : identities) {
      Object token = book.entries.get(identity);
      if (token instanceof String && !((String) token).isEmpty()) return (String) token;
    }
    throw new TokenFileError(chosen + ": no '" + String.join("' or '", identities) + "' entry");
  }
}
