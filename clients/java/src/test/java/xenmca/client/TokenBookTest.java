package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Token files as the Node client's tokens.js reads them: JSON or flat YAML, checked. */
class TokenBookTest {
  @TempDir Path dir;

  private String file(String name, String text) throws IOException {
    Path path = dir.resolve(name);
    Files.writeString(path, text);
    return path.toString();
  }

  @Test
  void jsonAndFlatYaml() throws Exception {
    Map<String, Object> expected = Map.of("dom0", "dom0-token", "operator", "op-token-1");
    assertEquals(expected, TokenBook.load(file("t.json", "{\"dom0\": \"dom0-token\", \"operator\": \"op-token-1\"}")).entries());
    assertEquals(expected, TokenBook.load(file("t.yaml", "# tokens\ndom0: \"dom0-token\"\noperator: op-token-1\n")).entries());
    assertEquals(expected,
        TokenBook.load(file("t2.yaml", "---\r\ndom0: 'dom0-token'   # the dom0\r\n\r\n  # note\r\noperator:op-token-1\r\n")).entries());
  }

  @Test
  void refusesShortTokensNonMappingsAndMissingIdentities() throws Exception {
    String shortToken = file("short.json", "{\"dom0\": \"x\"}");
    TokenFileError e = assertThrows(TokenFileError.class, () -> TokenBook.load(shortToken));
    assertEquals(shortToken + ": entry 'dom0' must map a name to a token of 8+ characters", e.getMessage());
    String list = file("list.json", "[\"a\"]");
    assertTrue(assertThrows(TokenFileError.class, () -> TokenBook.load(list)).getMessage().endsWith("expected a mapping of identity: token"));
    String notYaml = file("bad.yaml", "dom0 = token\n");
    assertThrows(TokenFileError.class, () -> TokenBook.load(notYaml));
    String empty = file("empty.json", "{}");
    assertThrows(TokenFileError.class, () -> TokenBook.load(empty));
    String number = file("number.json", "{\"dom0\": 123456789}");
    assertThrows(TokenFileError.class, () -> TokenBook.load(number));
    String op = file("op.json", "{\"operator\": \"op-token-1\"}");
    e = assertThrows(TokenFileError.class, () -> TokenBook.resolve(op, List.of("dom0"), Map.of()));
    assertEquals(op + ": no 'dom0' entry", e.getMessage());
    e = assertThrows(TokenFileError.class, () -> TokenBook.resolve(op, List.of("dom0", "xen"), Map.of()));
    assertEquals(op + ": no 'dom0' or 'xen' entry", e.getMessage());
  }

  @Test
  void identitiesInOrderOfPreference() throws Exception {
    String both = file("both.json", "{\"dom0\": \"dom0-token\", \"operator\": \"op-token-1\"}");
    assertEquals("op-token-1", TokenBook.resolve(both, List.of("operator", "dom0"), Map.of()));
    assertEquals("dom0-token", TokenBook.resolve(both, List.of("dom0"), Map.of()));
    String dom0Only = file("dom0.yaml", "dom0: dom0-token\n");
    assertEquals("dom0-token", TokenBook.resolve(dom0Only, List.of("operator", "dom0", "xen"), Map.of()));
  }

  @Test
  void environmentDefaultAndNoFileNoToken() throws Exception {
    String both = file("env.json", "{\"dom0\": \"dom0-token\"}");
    assertEquals("dom0-token", TokenBook.resolve(null, List.of("dom0"), Map.of("XENMCA_TOKEN_FILE", both)));
    assertNull(TokenBook.resolve(null, List.of("dom0"), Map.of()));
    assertNull(TokenBook.resolve("", List.of("dom0"), Map.of("XENMCA_TOKEN_FILE", "")));
  }

  @Test
  void unreadable() {
    String missing = dir.resolve("missing.json").toString();
    TokenFileError e = assertThrows(TokenFileError.class, () -> TokenBook.load(missing));
    assertEquals(missing + ": cannot read token file: ENOENT", e.getMessage());
    e = assertThrows(TokenFileError.class, () -> TokenBook.load(dir.toString()));
    assertEquals(dir + ": cannot read token file: EISDIR", e.getMessage());
  }
}
