package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Argument parsing, one-line errors and exit statuses, as the Node client's cli.test.js checks them. */
class CommandLineTest {
  @ParameterizedTest
  @ValueSource(strings = {"127.0.0.1:50051", "localhost:1", "xen-0.example:65535", "[::1]:8080"})
  void acceptsAddresses(String address) throws CommandError {
    assertTrue(HostPort.parse(address).port > 0);
  }

  @ParameterizedTest
  @ValueSource(strings = {"nonsense", "127.0.0.1", ":50051", "127.0.0.1:", "host:0", "host:65536", "host:12a", "a b:1",
      "::1:80", "", "h:1\n"})
  void rejectsAddresses(String address) {
    CommandError e = assertThrows(CommandError.class, () -> HostPort.parse(address));
    assertTrue(e.getMessage().endsWith("is not HOST:PORT"), e.getMessage());
  }

  @Test
  void statusDefaults() throws CommandError {
    CommandLine line = CommandLine.parse(List.of("status", "--xen", "127.0.0.1:5"));
    assertEquals("status", line.command);
    assertEquals("127.0.0.1:5", line.xen);
    assertNull(line.tokenFile);
    assertNull(line.tls);
    assertEquals(10_000, line.timeoutMs);
    assertEquals(false, line.json);
  }

  @Test
  void dom0Options() throws CommandError {
    CommandLine line = CommandLine.parse(List.of("dom0", "--xen", "h:1", "--token-file", "t.json", "--max", "7",
        "--cpe-poll", "0", "--raw", "--instance", "n", "--connect-timeout", "500", "--timeout", "2000", "--out", "log.jsonl"));
    assertEquals("t.json", line.tokenFile);
    assertEquals(7, line.max);
    assertEquals(0, line.cpePollMs);
    assertEquals(true, line.raw);
    assertEquals("n", line.instance);
    assertEquals(500, line.connectTimeoutMs);
    assertEquals(2000, line.timeoutMs);
    assertEquals("log.jsonl", line.out);
  }

  @Test
  void dom0Defaults() throws CommandError {
    CommandLine line = CommandLine.parse(List.of("dom0", "--xen=h:1"));
    assertEquals(0, line.max);
    assertEquals(1000, line.cpePollMs);
    assertEquals(10_000, line.connectTimeoutMs);
    assertNull(line.out);
    assertNull(line.instance);
  }

  @Test
  void lastRepeatWins() throws CommandError {
    assertEquals(3, CommandLine.parse(List.of("dom0", "--xen", "h:1", "--max", "2", "--max=3")).max);
  }

  @Test
  void mutualTlsFiles() throws CommandError {
    CommandLine line = CommandLine.parse(List.of("status", "--xen", "h:1", "--tls-cert", "c.crt", "--tls-key", "c.key",
        "--tls-ca", "ca.crt"));
    assertEquals("c.crt", line.tls.cert);
    assertEquals("c.key", line.tls.key);
    assertEquals("ca.crt", line.tls.ca);
  }

  @Test
  void help() throws CommandError {
    assertEquals("help", CommandLine.parse(List.of("--help")).command);
    assertEquals("help", CommandLine.parse(List.of("help")).command);
    assertEquals("help", CommandLine.parse(List.of("dom0", "-h")).command);
    assertEquals("help", CommandLine.parse(List.of("status", "--xen", "h:1", "--json", "--help")).command);
  }

  static Stream<Arguments> usageErrors() {
    return Stream.of(
        Arguments.of(List.of(), "^xenmca-java: error: missing command \\(status or dom0\\); see --help$"),
        Arguments.of(List.of("frobnicate"), "^xenmca-java: error: unknown command 'frobnicate' \\(choose status or dom0\\)$"),
        Arguments.of(List.of("status"), "^xenmca-java status: error: --xen HOST:PORT is required$"),
        Arguments.of(List.of("status", "--xen"), "^xenmca-java status: error: Option '--xen <value>' argument missing$"),
        Arguments.of(List.of("status", "--xen", "nonsense"),
            "^xenmca-java status: error: --xen: address 'nonsense' is not HOST:PORT$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--bogus"), "^xenmca-java status: error: Unknown option '--bogus'$"),
        Arguments.of(List.of("status", "-x"), "^xenmca-java status: error: Unknown option '-x'$"),
        Arguments.of(List.of("status", "--xen", "h:1", "extra"),
            "^xenmca-java status: error: Unexpected argument 'extra'. This command does not take positional arguments$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--", "extra"), "^xenmca-java status: error: Unexpected argument 'extra'.*"),
        Arguments.of(List.of("status", "--xen", "h:1", "--json=1"),
            "^xenmca-java status: error: Option '--json' does not take an argument$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--help=1"),
            "^xenmca-java status: error: Option '-h, --help' does not take an argument$"),
        Arguments.of(List.of("dom0", "--xen", "h:1", "--max", "many"),
            "^xenmca-java dom0: error: --max must be a whole number >= 0 \\(got 'many'\\)$"),
        Arguments.of(List.of("dom0", "--xen", "h:1", "--max", "99999999999999999"),
            "^xenmca-java dom0: error: --max must be a whole number >= 0 \\(got '99999999999999999'\\)$"),
        Arguments.of(List.of("dom0", "--xen", "h:1", "--cpe-poll=-1"), "^xenmca-java dom0: error: --cpe-poll must be a whole number.*"),
        Arguments.of(List.of("dom0", "--xen", "h:1", "--cpe-poll", "-1"),
            "^xenmca-java dom0: error: Option '--cpe-poll' argument is ambiguous\\. Did you forget to specify the option argument"
                + " for '--cpe-poll'\\? To specify an option argument starting with a dash use '--cpe-poll=-XYZ'\\.$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--timeout", "0"), "^xenmca-java status: error: --timeout must be at least 1 ms$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--token-file", "/nonexistent/tokens.json"),
            "^xenmca-java status: error: /nonexistent/tokens.json: cannot read token file: ENOENT$"),
        Arguments.of(List.of("status", "--xen", "h:1", "--tls-cert", "c.crt"),
            "^xenmca-java status: error: --tls-cert, --tls-key and --tls-ca go together \\(all three or none\\)$"),
        Arguments.of(List.of("dom0", "--xen", "h:1", "--tls-cert", "c", "--tls-key", "k"),
            "^xenmca-java dom0: error: --tls-cert, --tls-key and --tls-ca go together.*"),
        Arguments.of(List.of("status", "--xen", "h:1", "--tls-cert", "/nonexistent/c.crt", "--tls-key", "k", "--tls-ca", "ca"),
            "^xenmca-java status: error: --tls-cert: cannot read /nonexistent/c\\.crt: ENOENT$"));
  }

  @ParameterizedTest
  @MethodSource("usageErrors")
  void usageErrorsAreOneLineWithExit2(List<String> argv, String pattern) {
    InProcessCli result = InProcessCli.run(argv.toArray(new String[0]));
    assertEquals(2, result.code, result.stderr);
    assertEquals("", result.stdout);
    assertTrue(result.oneLineError(), "one line: " + result.stderr);
    assertTrue(Pattern.compile(pattern).matcher(result.stderr.stripTrailing()).matches(), result.stderr);
  }

  @Test
  void tokenFileWithoutDom0(@TempDir Path dir) throws IOException {
    Path book = dir.resolve("tokens.json");
    Files.writeString(book, "{\"operator\": \"operator-token\"}");
    InProcessCli result = InProcessCli.run("dom0", "--xen", "127.0.0.1:1", "--token-file", book.toString());
    assertEquals(2, result.code);
    assertTrue(result.oneLineError());
    assertEquals("xenmca-java dom0: error: " + book + ": no 'dom0' entry\n", result.stderr);
  }

  @Test
  void tokenFileFromEnvironment(@TempDir Path dir) throws IOException {
    Path book = dir.resolve("tokens.json");
    Files.writeString(book, "{\"operator\": \"operator-token\"}");
    InProcessCli result = InProcessCli.runWithEnv(java.util.Map.of("XENMCA_TOKEN_FILE", book.toString()),
        "dom0", "--xen", "127.0.0.1:1");
    assertEquals(2, result.code);
    assertTrue(result.stderr.contains("no 'dom0' entry"), result.stderr);
  }

  @Test
  void tlsFileThatIsNotPem(@TempDir Path dir) throws IOException {
    Path junk = dir.resolve("junk.pem");
    Files.writeString(junk, "not a certificate");
    InProcessCli result = InProcessCli.run("status", "--xen", "127.0.0.1:1", "--tls-cert", junk.toString(), "--tls-key",
        junk.toString(), "--tls-ca", junk.toString());
    assertEquals(2, result.code);
    assertEquals("", result.stdout);
    assertTrue(result.oneLineError(), result.stderr);
    assertTrue(result.stderr.matches("(?s).*--tls-cert: .*junk\\.pem holds no PEM certificate\n"), result.stderr);
  }

  @Test
  void aKeyThatIsNotValidInsideItsPemMarkers(@TempDir Path dir) throws Exception {
    Path cert = dir.resolve("c.crt");
    Files.writeString(cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    Path key = dir.resolve("c.key");
    Files.writeString(key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    InProcessCli result = InProcessCli.run("status", "--xen", "127.0.0.1:1", "--tls-cert", cert.toString(), "--tls-key",
        key.toString(), "--tls-ca", cert.toString());
    assertEquals(2, result.code, result.stderr);
    assertEquals("", result.stdout);
    assertTrue(result.oneLineError(), result.stderr);
    assertTrue(result.stderr.startsWith("xenmca-java status: error: TLS: cannot use the certificate, key or CA: "), result.stderr);
  }

  @Test
  void statusWhereNothingListens() {
    InProcessCli result = InProcessCli.run("status", "--xen", "127.0.0.1:1", "--timeout", "3000");
    assertEquals(2, result.code);
    assertEquals("", result.stdout);
    assertTrue(result.oneLineError(), result.stderr);
    assertTrue(result.stderr.matches("xenmca-java status: error: 127\\.0\\.0\\.1:1: (UNAVAILABLE|DEADLINE_EXCEEDED).*\n"), result.stderr);
  }

  @Test
  void dom0ThatCannotReachItsCoordinator() {
    InProcessCli result = InProcessCli.run("dom0", "--xen", "127.0.0.1:1", "--connect-timeout", "300");
    assertEquals(2, result.code);
    String[] lines = result.stderr.split("\n");
    assertTrue(lines[lines.length - 1].startsWith("xenmca-java dom0: error: cannot reach coordinator 127.0.0.1:1 within 300 ms"),
        result.stderr);
  }

  @Test
  void helpOnStdout() {
    InProcessCli result = InProcessCli.run("--help");
    assertEquals(0, result.code);
    assertTrue(result.stdout.startsWith("usage: xenmca-java <command>"));
    assertTrue(result.stdout.contains("status --xen HOST:PORT"));
    assertTrue(result.stdout.contains("dom0 --xen HOST:PORT"));
    assertEquals("", result.stderr);
  }
}
