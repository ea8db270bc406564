package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.DescribeHypervisorResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoResponse;

/**
 * The built CLI (bin/xenmca-java) against a real local testbed with bearer tokens: its dom0 logs
 * exactly the records injected, each once, reads locally on vCPU0's pCPU and by IPI elsewhere,
 * leaves nothing pending, and refused identities end in one line and exit 2.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(180)
class LiveTokenIT {
  private Testbed tb;
  private XenClient operator;

  @BeforeAll
  void start() throws Exception {
    tb = Testbed.start(4, false);
    if (tb != null) operator = tb.client("operator");
  }

  @BeforeEach
  void needsTestbed() {
    Testbed.assumeStarted(tb);
  }

  @AfterAll
  void stop() throws Exception {
    if (operator != null) operator.close();
    if (tb != null) tb.close();
  }

  private static String key(Map<String, Object> line) {
    return JsonText.number((Number) line.get("pcpu")) + ":" + line.get("record_id") + ":" + line.get("type");
  }

  @SuppressWarnings("unchecked")
  private static List<Map<String, Object>> parse(List<String> lines) {
    List<Map<String, Object>> out = new ArrayList<>();
    for (String line : lines) out.add((Map<String, Object>) JsonText.parse(line));
    return out;
  }

  private static List<String> keys(List<Map<String, Object>> lines) {
    List<String> keys = new ArrayList<>();
    for (Map<String, Object> line : lines) keys.add(key(line));
    return keys;
  }

  @Test
  @Order(1)
  @SuppressWarnings("unchecked")
  void dom0LogsExactlyTheInjectedRecordsOnceAndNothingStaysPending() throws Exception {
    ChildProcess dom0 = tb.startCli(List.of("dom0", "--xen", tb.xen, "--token-file", tb.tokensPath.toString(), "--cpe-poll", "200"));
    try {
      Waits.until(() -> operator.status().getDom0Attached(), 30_000, "dom0 attached (dom0 stderr: " + dom0.stderr() + ")");

      // vCPU0 runs on pCPU 0, so both of these are read and cleared by IPI.
      List<String> expected = new ArrayList<>();
      for (String id : tb.inject("1", "cmc", 5)) expected.add("1:" + id + ":CMC");
      for (String id : tb.inject("2", "cpe", 2)) expected.add("2:" + id + ":CPE");
      assertEquals(7, expected.size());

      Waits.until(() -> dom0.lines().size() >= 7, 30_000, "7 records from dom0 (stderr: " + dom0.stderr() + "; testbed: " + tb.logs() + ")");
      // Its last CLEAR may still be on its way.
      DescribeHypervisorResponse state = Waits.until(() -> {
        DescribeHypervisorResponse s = operator.status();
        return s.getCounters().getRecordsCleared() >= 7 ? s : null;
      }, 15_000, "records_cleared >= 7");
      assertTrue(state.getDom0Attached());

      // status as JSON and as text, while this dom0 is attached.
      ChildProcess.Finished json = Testbed.runCli(List.of("status", "--xen", tb.xen, "--token-file", tb.tokensPath.toString(), "--json"), 60_000);
      assertEquals(0, json.code, json.toString());
      Map<String, Object> status = (Map<String, Object>) JsonText.parse(json.stdout);
      assertEquals(true, status.get("dom0_attached"));
      assertEquals(4, ((List<Object>) status.get("pcpus")).size());
      Map<String, Object> counters = (Map<String, Object>) status.get("counters");
      assertTrue(counters.get("records_cleared") instanceof String, "uint64 as a string");
      assertTrue(Long.parseLong((String) counters.get("records_cleared")) >= 7, json.stdout);
      assertTrue(Long.parseLong((String) counters.get("ipi_calls")) >= 14, "GET and CLEAR of each record by IPI");
      for (Object q : (List<Object>) status.get("queues")) {
        Map<String, Object> queue = (Map<String, Object>) q;
        assertTrue(((String) queue.get("type")).startsWith("RECORD_TYPE_"), "enums by name");
        assertEquals(0L, queue.get("depth"), "queue " + queue.get("type") + " is empty");
      }
      ChildProcess.Finished text = Testbed.runCli(List.of("status", "--xen", tb.xen, "--token-file", tb.tokensPath.toString()), 60_000);
      assertEquals(0, text.code, text.toString());
      assertTrue(text.stdout.contains("pCPUs: 4 (4 connected)"), text.stdout);
      assertTrue(text.stdout.contains("dom0: attached"), text.stdout);
      assertTrue(text.stdout.matches("(?s).*records_cleared\\s+([7-9]|\\d\\d+)\n.*"), text.stdout);

      for (String pcpu : List.of("0", "1", "2", "3")) {
        for (Map.Entry<String, Long> pending : tb.pcpuPending(pcpu).entrySet()) {
          assertEquals(0L, pending.getValue(), "pCPU " + pcpu + " " + pending.getKey() + " pending");
        }
      }

      // Nothing more arrives; SIGINT stops it cleanly.
      assertEquals(0, dom0.stop(10_000), dom0.stderr());
      assertTrue(dom0.stderr().contains("stopped (SIGINT): 7 records logged, 0 duplicates, 7 cleared"), dom0.stderr());

      List<Map<String, Object>> lines = parse(dom0.lines());
      assertEquals(7, lines.size(), "exactly 7 records logged");
      assertEquals(7, new HashSet<>(keys(lines)).size(), "no duplicates");
      assertEquals(new TreeSet<>(expected), new TreeSet<>(keys(lines)));
      for (Map<String, Object> line : lines) {
        assertEquals(List.of("pcpu", "record_id", "type", "severity", "created_at", "overflow", "sections", "by_ipi"),
            new ArrayList<>(line.keySet()));
        assertEquals("corrected", line.get("severity"));
        assertEquals(true, line.get("by_ipi"));
        assertFalse(((List<Object>) line.get("sections")).isEmpty(), "record has sections");
        assertTrue(((String) line.get("created_at")).matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}Z"));
      }
    } finally {
      dom0.stop(10_000);
    }
  }

  @Test
  @Order(2)
  void dom0MaxPicksUpQueuedRecordsReadsLocallyOnVcpu0sPcpuAndExits() throws Exception {
    long clearedBefore = operator.status().getCounters().getRecordsCleared();
    List<String> expected = new ArrayList<>();
    for (String id : tb.inject("3", "cmc", 3)) expected.add("3:" + id + ":CMC");
    for (String id : tb.inject("0", "cmc", 1)) expected.add("0:" + id + ":CMC");
    Path out = tb.dir.resolve("dom0-max.jsonl");

    ChildProcess.Finished dom0 = Testbed.runCli(List.of("dom0", "--xen", tb.xen, "--token-file", tb.tokensPath.toString(), "--max", "4",
        "--cpe-poll", "0", "--out", out.toString()), 60_000);
    assertEquals(0, dom0.code, dom0.toString());
    assertEquals("", dom0.stdout, "with --out, nothing on stdout");
    assertTrue(dom0.stderr.contains("stopped (4 records logged)"), dom0.stderr);

    List<Map<String, Object>> lines = parse(Files.readAllLines(out));
    assertEquals(new TreeSet<>(expected), new TreeSet<>(keys(lines)));
    assertEquals(4, lines.size());
    for (Map<String, Object> line : lines) {
      boolean local = ((Number) line.get("pcpu")).longValue() == 0;
      assertEquals(!local, line.get("by_ipi"), "by_ipi of pCPU " + line.get("pcpu"));
    }
    DescribeHypervisorResponse state = operator.status();
    assertEquals(clearedBefore + 4, state.getCounters().getRecordsCleared());
    assertTrue(state.getCounters().getLocalCalls() >= 2, "GET and CLEAR on pCPU 0 made locally");
    for (String pcpu : List.of("0", "3")) {
      assertEquals(0L, tb.pcpuPending(pcpu).getOrDefault("RECORD_TYPE_CMC", 0L), "pCPU " + pcpu + " CMC pending");
    }
  }

  @Test
  @Order(3)
  void identityOnlyDom0ReadsAndAWrongTokenIsRefusedInOneLineWithExit2() throws Exception {
    GetStateInfoResponse asOperator = operator.getStateInfo(3);
    assertEquals(Names.SAL_NO_INFORMATION, asOperator.getSalStatus(), "non-dom0 GET answers -5, as Xen does");

    Path badBook = tb.dir.resolve("wrong-tokens.json");
    Files.writeString(badBook, "{\"operator\": \"not-a-valid-token\", \"dom0\": \"" + tb.tokens.get("operator") + "\"}");

    ChildProcess.Finished status = Testbed.runCli(List.of("status", "--xen", tb.xen, "--token-file", badBook.toString()), 60_000);
    assertEquals(2, status.code, status.toString());
    assertEquals("", status.stdout);
    assertTrue(status.stderr.matches("xenmca-java status: error: .*UNAUTHENTICATED \\[INVALID_TOKEN\\]: DescribeHypervisor: .*\n"),
        status.stderr);
    assertEquals(1, status.stderr.split("\n").length, "one line");

    // dom0 presenting the operator's token: AttachDom0 is refused, no retry loop.
    ChildProcess.Finished dom0 = Testbed.runCli(List.of("dom0", "--xen", tb.xen, "--token-file", badBook.toString(), "--cpe-poll", "0"),
        60_000);
    assertEquals(2, dom0.code, dom0.toString());
    assertEquals("", dom0.stdout);
    assertTrue(dom0.stderr.contains("error: AttachDom0 refused: PERMISSION_DENIED [IDENTITY_NOT_ALLOWED]"), dom0.stderr);
    assertNotNull(dom0.stderr);
  }
}
