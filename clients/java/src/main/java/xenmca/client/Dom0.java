package xenmca.client;

import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.ClearStateInfoResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoResponse;
import xenmca.record.v1.Record.ErrorRecord;
import xenmca.record.v1.Record.RecordType;

/**
 * A minimal dom0: attached to the coordinator's virtual interrupt line, for each interrupt it
 * runs GET, writes the record to the log, then CLEARs that record id; CPE, which is not injected,
 * is polled (GET until SAL status -5).
 *
 * <p>CLEAR is sent only after the log write is durable, and it names the record that was read, so
 * the coordinator never clears a record this dom0 does not have. A record whose CLEAR fails stays
 * in firmware and is delivered again; the log keeps it once (by pCPU + record id). Passes of one
 * type run one at a time, in order, as vCPU0's handler does; a pass in progress always finishes.
 */
public final class Dom0 {
  /** What one GET, write, CLEAR pass did. */
  public enum Outcome {
    /** A new record, written and cleared. */
    LOGGED,
    /** Already in the log (delivered again), cleared again. */
    DUPLICATE,
    /** GET answered -5. */
    NOTHING,
    /** GET answered -3: the coordinator keeps the entry. */
    UNREACHABLE,
    /** Written, but CLEAR answered -3 or -5. */
    NOT_CLEARED,
    /** A new record past --max: left in firmware for the next dom0. */
    HELD,
    /** An RPC failed, or the log write did. */
    FAILED
  }

  /** How this dom0 stopped, and what it did. */
  public static final class Result {
    /** "SIGINT", "4 records logged", ... */
    public final String reason;
    /** The counters when it stopped. */
    public final Dom0Counters counters;

    Result(String reason, Dom0Counters counters) {
      this.reason = reason;
      this.counters = counters;
    }
  }

  /** The log: write returns once the line is durable. */
  public interface LineWriter {
    /** Writes one JSON line. */
    void write(String line) throws IOException;
  }

  private static final int CPE = RecordType.RECORD_TYPE_CPE_VALUE;
  private static final long BACKOFF_INITIAL_MS = 100;
  private static final long BACKOFF_MAX_MS = 5_000;

  private final XenClient client;
  private final LineWriter writer;
  private final Consumer<String> log;
  private final long max;
  private final long cpePollMs;
  private final long connectTimeoutMs;
  private final String instance;
  private final boolean raw;

  private final Dom0Counters counters = new Dom0Counters();
  private final Set<String> logged = new HashSet<>();
  private final Set<String> uncleared = new HashSet<>();
  private long writing;
  private volatile String stopReason;
  private volatile Dom0Error fatal;
  private volatile int session;
  private volatile XenClient.Attachment attachment;
  private final CountDownLatch stopped = new CountDownLatch(1);
  private final CompletableFuture<Void> stoppedFuture = new CompletableFuture<>();
  private final Map<Integer, ExecutorService> lanes = new LinkedHashMap<>();

  /**
   * A dom0 over client.
   *
   * @param writer the log
   * @param log progress and warnings (one line each, for stderr)
   * @param max stop after this many new records (0: no limit)
   * @param cpePollMs CPE poll interval (0: do not poll)
   * @param alreadyLogged "pcpu:record_id" keys the log holds already
   */
  public Dom0(XenClient client, LineWriter writer, Consumer<String> log, long max, long cpePollMs, long connectTimeoutMs,
      String instance, boolean raw, Iterable<String> alreadyLogged) {
    this.client = client;
    this.writer = writer;
    this.log = log;
    this.max = max;
    this.cpePollMs = cpePollMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.instance = instance;
    this.raw = raw;
    for (String key : alreadyLogged) logged.add(key);
  }

  private boolean stopping() {
    return stopReason != null;
  }

  /** Ask the dom0 to stop: passes in progress finish, no new ones start. Safe from any thread. */
  public void stop(String reason) {
    synchronized (this) {
      if (stopping()) return;
      stopReason = reason;
    }
    XenClient.Attachment current = attachment;
    if (current != null) current.cancel();
    stopped.countDown();
    stoppedFuture.complete(null);
  }

  /**
   * Run until --max records, stop(), or a fatal error.
   *
   * @throws Dom0Error if the coordinator cannot be reached, refuses this identity, or a log write fails
   */
  public Result run() throws Dom0Error, InterruptedException {
    if (!client.waitForReady(connectTimeoutMs, stopped)) {
      throw new Dom0Error("cannot reach coordinator " + client.address + " within " + connectTimeoutMs
          + " ms: Failed to connect before the deadline", 2);
    }
    Thread attachLoop = new Thread(this::attachLoop, "dom0-attach");
    attachLoop.start();
    Thread pollLoop = null;
    if (cpePollMs > 0) {
      pollLoop = new Thread(this::pollLoop, "dom0-cpe-poll");
      pollLoop.start();
    }
    attachLoop.join();
    if (pollLoop != null) pollLoop.join();
    // Passes in progress finish their GET, write, CLEAR.
    synchronized (lanes) {
      for (ExecutorService lane : lanes.values()) lane.shutdown();
    }
    for (ExecutorService lane : lanesSnapshot()) {
      while (!lane.awaitTermination(1, TimeUnit.MINUTES)) {
        // a GET or CLEAR is bounded by its deadline; keep waiting
      }
    }
    if (fatal != null) throw fatal;
    Dom0Counters snapshot;
    synchronized (this) {
      snapshot = counters.copy();
    }
    return new Result(stopReason, snapshot);
  }

  // -- the virtual interrupt line ------------------------------------------------------------

  private void attachLoop() {
    long backoff = BACKOFF_INITIAL_MS;
    while (!stopping()) {
      int thisSession;
      long attaches;
      synchronized (this) {
        thisSession = ++session;
        attaches = ++counters.attaches;
      }
      AtomicBoolean delivered = new AtomicBoolean();
      if (attaches > 1) client.resetConnectBackoff();
      XenClient.Attachment current = client.attachDom0(instance, interrupt -> {
        delivered.set(true);
        onInterrupt(thisSession, interrupt.getTypeValue());
      });
      attachment = current;
      if (stopping()) current.cancel();
      if (attaches == 1) log.accept("attaching to coordinator " + client.address + " as " + instance);
      CompletableFuture.anyOf(current.ended(), stoppedFuture).join();
      if (stopping()) return;
      Throwable error = current.ended().join();
      if (error != null && RpcErrors.isIdentityRefusal(error)) {
        fatal = new Dom0Error("AttachDom0 refused: " + RpcErrors.describe(error), 2);
        stop("refused");
        return;
      }
      String why = error == null
          ? "stream ended (another dom0 attached, or the coordinator stopped)"
          : RpcErrors.describe(error);
      if (delivered.get()) backoff = BACKOFF_INITIAL_MS;
      log.accept("detached: " + why + "; re-attaching in " + backoff + " ms");
      sleep(backoff);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
    }
  }

  private void onInterrupt(int fromSession, int type) {
    synchronized (this) {
      counters.interrupts += 1;
    }
    serial(type, () -> {
      // An interrupt from a stream that broke: the coordinator re-injects what matters.
      if (fromSession != session) return;
      handleOnce(type);
    });
  }

  // -- polled CPE ----------------------------------------------------------------------------

  private void pollLoop() {
    while (!stopping()) {
      Future<?> pass = serial(CPE, () -> drain(CPE));
      try {
        if (pass != null) pass.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      } catch (ExecutionException e) {
        // serial() already logged it
      }
      synchronized (this) {
        counters.polls += 1;
      }
      sleep(cpePollMs);
    }
  }

  /** Passes until one does not clear a record. */
  private void drain(int type) {
    Outcome outcome;
    do {
      outcome = handleOnce(type);
    } while (!stopping() && (outcome == Outcome.LOGGED || outcome == Outcome.DUPLICATE));
  }

  // -- one record ------------------------------------------------------------------------------

  /** One GET, write, CLEAR pass for type. Never throws. */
  Outcome handleOnce(int type) {
    if (stopping()) return Outcome.NOTHING;
    String label = Names.typeLabel(type);
    GetStateInfoResponse got;
    try {
      got = client.getStateInfo(type);
    } catch (StatusRuntimeException e) {
      return callFailed(label + " GET", e);
    }
    if (got.getSalStatus() == Names.SAL_NO_INFORMATION) return Outcome.NOTHING;
    if (got.getSalStatus() == Names.SAL_CALL_ERROR) return Outcome.UNREACHABLE;
    if (got.getSalStatus() != Names.SAL_OK) {
      log.accept(label + " GET: unexpected SAL status " + got.getSalStatus());
      return Outcome.NOTHING;
    }
    ErrorRecord record = got.getRecord();
    String key = Integer.toUnsignedString(record.getPcpu()) + ":" + Long.toUnsignedString(record.getRecordId());
    boolean isNew;
    synchronized (this) {
      isNew = !logged.contains(key);
      if (isNew) {
        // Writes of other types may be in progress: count them against --max too.
        if (max > 0 && counters.logged + writing >= max) return Outcome.HELD;
        writing += 1;
      } else {
        counters.duplicates += 1;
      }
    }
    if (isNew) {
      try {
        writer.write(RecordLine.json(record, got.getByIpi(), raw));
      } catch (IOException | RuntimeException e) {
        // Not durable, so not cleared: the record stays in firmware.
        fatal = new Dom0Error("cannot write record " + key + " to the log: " + IoErrors.code(e), 1);
        stop("log write failed");
        return Outcome.FAILED;
      } finally {
        synchronized (this) {
          writing -= 1;
        }
      }
      synchronized (this) {
        logged.add(key);
        uncleared.add(key);
        counters.logged += 1;
      }
    }

    ClearStateInfoResponse cleared;
    try {
      cleared = client.clearStateInfo(type, record.getRecordId());
    } catch (StatusRuntimeException e) {
      return callFailed(label + " CLEAR " + key, e);
    }
    if (cleared.getSalStatus() != Names.SAL_OK) {
      log.accept(label + " CLEAR " + key + ": SAL status " + cleared.getSalStatus() + "; it will be delivered again");
      return Outcome.NOT_CLEARED;
    }
    boolean done;
    synchronized (this) {
      counters.cleared += 1;
      uncleared.remove(key);
      done = max > 0 && counters.logged >= max && uncleared.isEmpty();
    }
    if (done) stop(max + " records logged");
    return isNew ? Outcome.LOGGED : Outcome.DUPLICATE;
  }

  private Outcome callFailed(String what, Throwable error) {
    synchronized (this) {
      counters.callErrors += 1;
    }
    log.accept(what + " failed: " + RpcErrors.describe(error));
    return Outcome.FAILED;
  }

  // -- helpers -------------------------------------------------------------------------------

  /** Run task after the previous pass of the same type (vCPU0 handles one at a time). */
  private Future<?> serial(int type, Runnable task) {
    ExecutorService lane;
    synchronized (lanes) {
      lane = lanes.computeIfAbsent(type, t -> Executors.newSingleThreadExecutor(r -> {
        Thread thread = new Thread(r, "dom0-" + Names.typeLabel(t));
        thread.setDaemon(true);
        return thread;
      }));
      if (lane.isShutdown()) return null;
      return lane.submit(() -> {
        try {
          task.run();
        } catch (RuntimeException e) {
          log.accept(Names.typeLabel(type) + " handler failed: " + e);
        }
      });
    }
  }

  private Iterable<ExecutorService> lanesSnapshot() {
    synchronized (lanes) {
      return new java.util.ArrayList<>(lanes.values());
    }
  }

  /** A sleep that stop() cuts short. */
  private void sleep(long ms) {
    try {
      stopped.await(ms, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
