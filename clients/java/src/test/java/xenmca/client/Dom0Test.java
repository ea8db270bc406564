package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The dom0 loop against a fake coordinator (as the Node client's dom0.test.js): write before
 * CLEAR, CLEAR by the record id read, once per record, --max, and failures that must not clear.
 */
@Timeout(60)
class Dom0Test {
  private FakeCoordinator xen;
  private XenClient client;
  private final List<String> messages = Collections.synchronizedList(new ArrayList<>());

  @BeforeEach
  void start() throws Exception {
    xen = new FakeCoordinator().start();
    client = new XenClient(xen.address(), null, 5_000, null);
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    xen.close();
  }

  /** A log that notes when each line became durable, in the coordinator's event list. */
  private final class RecordingLog implements Dom0.LineWriter {
    final List<Map<String, Object>> lines = Collections.synchronizedList(new ArrayList<>());
    final String failOn;

    RecordingLog(String failOn) {
      this.failOn = failOn;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void write(String text) throws IOException {
      Map<String, Object> line = (Map<String, Object>) JsonText.parse(text);
      String key = line.get("pcpu") + ":" + line.get("record_id");
      if (key.equals(failOn)) throw new IOException("No space left on device");
      lines.add(line);
      xen.event("durable " + key);
    }
  }

  private Dom0 dom0(RecordingLog log, long max, long cpePollMs, List<String> alreadyLogged) {
    return new Dom0(client, log, messages::add, max, cpePollMs, 5_000, "test", false, alreadyLogged);
  }

  @Test
  void writesEachRecordDurablyBeforeClearingExactlyThatRecordIdAndStopsAtMax() throws Exception {
    xen.queues.get(FakeCoordinator.CMC).addAll(List.of(FakeCoordinator.record(1, 1, 3), FakeCoordinator.record(1, 2, 3),
        FakeCoordinator.record(0, 1, 3)));
    xen.queues.get(FakeCoordinator.CPE).addAll(List.of(FakeCoordinator.record(2, 7, 4), FakeCoordinator.record(2, 8, 4)));
    RecordingLog log = new RecordingLog(null);
    Dom0.Result result = dom0(log, 5, 5, List.of()).run();

    assertEquals("5 records logged", result.reason);
    assertEquals(5, result.counters.logged);
    assertEquals(5, result.counters.cleared);
    List<String> keys = new ArrayList<>();
    for (Map<String, Object> line : log.lines) keys.add(line.get("pcpu") + ":" + line.get("record_id") + ":" + line.get("type"));
    assertEquals(new TreeSet<>(List.of("0:1:CMC", "1:1:CMC", "1:2:CMC", "2:7:CPE", "2:8:CPE")), new TreeSet<>(keys));
    assertEquals(5, keys.size());
    List<String> events = xen.eventsSnapshot();
    for (Map<String, Object> line : log.lines) {
      String key = line.get("pcpu") + ":" + line.get("record_id");
      int durable = events.indexOf("durable " + key);
      int clear = -1;
      for (int i = 0; i < events.size(); i++) {
        if (events.get(i).startsWith("clear") && events.get(i).endsWith(" " + key)) {
          clear = i;
          break;
        }
      }
      assertTrue(durable >= 0 && clear > durable, key + " durable (" + durable + ") before clear (" + clear + "): " + events);
    }
    assertEquals(0, xen.pending(FakeCoordinator.CMC));
    assertEquals(0, xen.pending(FakeCoordinator.CPE));
  }

  @Test
  void aRecordWhoseWriteFailsIsNotClearedAndDom0FailsWithExit1() {
    xen.queues.get(FakeCoordinator.CMC).addAll(List.of(FakeCoordinator.record(1, 1, 3), FakeCoordinator.record(1, 2, 3)));
    RecordingLog log = new RecordingLog("1:1");
    Dom0Error e = assertThrows(Dom0Error.class, () -> dom0(log, 0, 0, List.of()).run());
    assertEquals(1, e.exitCode);
    assertTrue(e.getMessage().startsWith("cannot write record 1:1 to the log: ENOSPC"), e.getMessage());
    assertTrue(xen.eventsSnapshot().stream().noneMatch(ev -> ev.startsWith("clear")), xen.eventsSnapshot().toString());
    assertEquals(2, xen.pending(FakeCoordinator.CMC));
  }

  @Test
  void aFailedClearIsDeliveredAgainLoggedOnceAndClearedBeforeMaxStopsIt() throws Exception {
    xen.queues.get(FakeCoordinator.CMC).addAll(List.of(FakeCoordinator.record(1, 1, 3), FakeCoordinator.record(1, 2, 3)));
    xen.clearFailures.put("1:1", 2);
    RecordingLog log = new RecordingLog(null);
    Dom0.Result result = dom0(log, 2, 0, List.of()).run();
    assertEquals(2, result.counters.logged);
    assertEquals(2, result.counters.duplicates);
    assertEquals(2, log.lines.size());
    assertEquals(0, xen.pending(FakeCoordinator.CMC));
    assertTrue(messages.stream().anyMatch(m -> m.contains("CMC CLEAR 1:1: SAL status -3; it will be delivered again")), messages.toString());
  }

  @Test
  void recordsAlreadyInTheLogAreClearedWithoutWritingThemAgain() throws Exception {
    xen.queues.get(FakeCoordinator.CMC).addAll(List.of(FakeCoordinator.record(1, 1, 3), FakeCoordinator.record(1, 2, 3)));
    RecordingLog log = new RecordingLog(null);
    Dom0.Result result = dom0(log, 1, 0, List.of("1:1")).run();
    assertEquals(1, log.lines.size());
    assertEquals("2", log.lines.get(0).get("record_id"));
    assertEquals(1, result.counters.duplicates);
    assertEquals(0, xen.pending(FakeCoordinator.CMC));
  }

  @Test
  void pastMaxANewRecordIsLeftInFirmware() throws Exception {
    xen.queues.get(FakeCoordinator.CMC).add(FakeCoordinator.record(1, 1, 3));
    xen.queues.get(FakeCoordinator.CPE).add(FakeCoordinator.record(2, 1, 4));
    RecordingLog log = new RecordingLog(null);
    dom0(log, 1, 1, List.of()).run();
    assertEquals(1, log.lines.size());
    assertEquals(1, xen.pending(FakeCoordinator.CMC) + xen.pending(FakeCoordinator.CPE));
  }

  @Test
  void anAttachRefusedForIdentityEndsTheRunWithExit2() {
    xen.attachError = Status.PERMISSION_DENIED.withDescription("needs dom0");
    Dom0Error e = assertThrows(Dom0Error.class, () -> dom0(new RecordingLog(null), 0, 0, List.of()).run());
    assertEquals(2, e.exitCode);
    assertEquals("AttachDom0 refused: PERMISSION_DENIED: needs dom0", e.getMessage());
  }

  @Test
  void reattachesToARestartedCoordinator() throws Exception {
    xen.queues.get(FakeCoordinator.CMC).add(FakeCoordinator.record(1, 1, 3));
    RecordingLog log = new RecordingLog(null);
    Dom0 dom0 = dom0(log, 2, 0, List.of());
    CompletableFuture<Dom0.Result> running = CompletableFuture.supplyAsync(() -> {
      try {
        return dom0.run();
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
    Waits.until(() -> xen.eventsSnapshot().stream().anyMatch(e -> e.startsWith("clear 3 1:1")), 10_000, "the first record cleared");
    int port = xen.port();
    xen.close();
    Waits.until(() -> messages.stream().anyMatch(m -> m.startsWith("detached: ")), 10_000, "dom0 detached");
    FakeCoordinator restarted = new FakeCoordinator();
    restarted.queues.get(FakeCoordinator.CMC).add(FakeCoordinator.record(1, 2, 3));
    xen = restarted.start(port);
    Dom0.Result result = running.get(20, java.util.concurrent.TimeUnit.SECONDS);
    assertEquals("2 records logged", result.reason);
    assertEquals(List.of("1", "2"), List.of(log.lines.get(0).get("record_id"), log.lines.get(1).get("record_id")));
    assertEquals(0, xen.pending(FakeCoordinator.CMC));
    assertTrue(result.counters.attaches >= 2, "attached again");
  }

  @Test
  void stopEndsARunThatHasNothingToDo() throws Exception {
    Dom0 dom0 = dom0(new RecordingLog(null), 0, 10, List.of());
    CompletableFuture<Dom0.Result> running = CompletableFuture.supplyAsync(() -> {
      try {
        return dom0.run();
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
    Waits.until(() -> xen.eventsSnapshot().contains("get 4 -"), 10_000, "a CPE poll");
    dom0.stop("SIGINT");
    Dom0.Result result = running.get();
    assertEquals("SIGINT", result.reason);
    assertTrue(result.counters.polls >= 1);
  }
}
