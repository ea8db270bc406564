package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The built CLI over mutual TLS against a testbed whose servers accept only clients with a
 * certificate from their CA (keys as {@code xenmca certs generate} writes them): the identity is the
 * certificate's CN, with no token at all.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(180)
class LiveTlsIT {
  private Testbed tb;

  @BeforeAll
  void start() throws Exception {
    tb = Testbed.start(2, true);
  }

  @BeforeEach
  void needsTestbed() {
    Testbed.assumeStarted(tb);
  }

  @AfterAll
  void stop() throws Exception {
    if (tb != null) tb.close();
  }

  private List<String> args(String... first) {
    return new ArrayList<>(List.of(first));
  }

  @Test
  @SuppressWarnings("unchecked")
  void statusAsTheOperatorCertificate() throws Exception {
    List<String> argv = args("status", "--xen", tb.xen, "--json");
    argv.addAll(tb.tlsFlags("operator"));
    ChildProcess.Finished result = Testbed.runCli(argv, 60_000);
    assertEquals(0, result.code, result.toString());
    Map<String, Object> state = (Map<String, Object>) JsonText.parse(result.stdout);
    assertEquals(2, ((List<Object>) state.get("pcpus")).size());
  }

  @Test
  @SuppressWarnings("unchecked")
  void dom0ByItsCertificateLogsAndClearsExactlyTheInjectedRecords() throws Exception {
    List<String> expected = new ArrayList<>();
    for (String id : tb.inject("1", "cmc", 3)) expected.add("1:" + id + ":CMC");
    Path out = tb.dir.resolve("dom0-tls.jsonl");
    List<String> argv = args("dom0", "--xen", tb.xen, "--max", "3", "--cpe-poll", "0", "--out", out.toString());
    argv.addAll(tb.tlsFlags("dom0"));
    ChildProcess.Finished dom0 = Testbed.runCli(argv, 60_000);
    assertEquals(0, dom0.code, dom0.toString());
    List<String> keys = new ArrayList<>();
    for (String text : Files.readAllLines(out)) {
      Map<String, Object> line = (Map<String, Object>) JsonText.parse(text);
      keys.add(JsonText.number((Number) line.get("pcpu")) + ":" + line.get("record_id") + ":" + line.get("type"));
      assertEquals(true, line.get("by_ipi"), "pCPU 1 is not vCPU0's: read by IPI");
    }
    assertEquals(3, keys.size());
    assertEquals(new TreeSet<>(expected), new TreeSet<>(keys));
    assertEquals(0L, tb.pcpuPending("1").getOrDefault("RECORD_TYPE_CMC", 0L));
  }

  @Test
  void theOperatorCertificateCannotActAsDom0() throws Exception {
    List<String> argv = args("dom0", "--xen", tb.xen, "--cpe-poll", "0");
    argv.addAll(tb.tlsFlags("operator"));
    ChildProcess.Finished dom0 = Testbed.runCli(argv, 60_000);
    assertEquals(2, dom0.code, dom0.toString());
    assertEquals("", dom0.stdout);
    assertTrue(dom0.stderr.contains("error: AttachDom0 refused: PERMISSION_DENIED [IDENTITY_NOT_ALLOWED]"), dom0.stderr);
  }

  @Test
  void aPlaintextClientIsNotServed() throws Exception {
    ChildProcess.Finished result = Testbed.runCli(List.of("status", "--xen", tb.xen, "--timeout", "3000"), 60_000);
    assertEquals(2, result.code, result.toString());
    assertEquals("", result.stdout);
    assertTrue(result.stderr.matches("xenmca-java status: error: .*(UNAVAILABLE|DEADLINE_EXCEEDED).*\n"), result.stderr);
  }
}
