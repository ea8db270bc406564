package xenmca.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A real local testbed without dom0, as the Node client's test/testbed.js starts it: {@code xenmca
 * serve pcpu} and {@code xenmca serve xen} as child processes on loopback, free ports, identity
 * checks on with fresh random tokens; with tls, mutual TLS only (certificates from {@code xenmca
 * certs generate}, identities from their CN, no token file). No Python dom0 runs, so the dom0 under
 * test is the one attached.
 */
final class Testbed implements AutoCloseable {
  final String xenmca;
  final Path dir;
  final boolean tls;
  final Map<String, String> tokens = new LinkedHashMap<>();
  final Path tokensPath;
  final Map<String, String> pcpuAddrs = new LinkedHashMap<>();
  String xen;
  private final List<ChildProcess> procs = new ArrayList<>();

  /** Why the live tests are skipped when there is no xenmca. */
  static final String MISSING = "xenmca is not on PATH and $XENMCA_BIN names no executable: the live tests need it "
      + "(put the project's venv bin on PATH); skipped (set XENMCA_CLIENTS=java to make this a failure)";

  /**
   * The xenmca executable: PATH, then $XENMCA_BIN; null without it (the live tests are then
   * skipped), unless $XENMCA_CLIENTS names java (as CI sets it): then the tests fail.
   */
  static String findXenmca() {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
      if (dir.isEmpty()) continue;
      File candidate = new File(dir, "xenmca");
      if (candidate.canExecute()) return candidate.getPath();
    }
    String fromEnv = System.getenv("XENMCA_BIN");
    if (fromEnv != null && new File(fromEnv).canExecute()) return fromEnv;
    if (System.getenv().getOrDefault("XENMCA_CLIENTS", "").contains("java")) fail(MISSING + "; XENMCA_CLIENTS asks for java");
    System.err.println("xenmca-java live tests: " + MISSING);
    return null;
  }

  /** Skips the calling test when there is no testbed (no xenmca). */
  static void assumeStarted(Testbed tb) {
    Assumptions.assumeTrue(tb != null, MISSING);
  }

  /** The Java CLI, bin/xenmca-java (runs target/xenmca-java.jar). */
  static String cli() {
    return System.getProperty("xenmca.java.bin", Path.of("bin", "xenmca-java").toAbsolutePath().toString());
  }

  private Testbed(String xenmca, Path dir, boolean tls) {
    this.xenmca = xenmca;
    this.dir = dir;
    this.tls = tls;
    this.tokensPath = dir.resolve("tokens.json");
  }

  /** A started testbed, or null when there is no xenmca to start it with. */
  static Testbed start(int pcpus, boolean tls) throws Exception {
    String xenmca = findXenmca();
    if (xenmca == null) return null;
    Testbed tb = new Testbed(xenmca, Files.createTempDirectory("xenmca-java-test-"), tls);
    try {
      tb.startComponents(pcpus);
    } catch (Exception | AssertionError e) {
      tb.close();
      throw e;
    }
    return tb;
  }

  private void startComponents(int pcpus) throws Exception {
    SecureRandom random = new SecureRandom();
    for (String identity : List.of("dom0", "operator", "xen")) {
      byte[] bytes = new byte[18];
      random.nextBytes(bytes);
      tokens.put(identity, Base64.getUrlEncoder().withoutPadding().encodeToString(bytes));
    }
    Files.writeString(tokensPath, JsonText.pretty(tokens));
    if (tls) {
      ChildProcess.Finished made = ChildProcess.run(List.of(xenmca, "certs", "generate", "--dir", dir.resolve("certs").toString()), 60_000);
      if (made.code != 0) throw new AssertionError("xenmca certs generate failed: " + made);
    }
    Path pcpuReady = dir.resolve("pcpus.json");
    List<String> pcpu = new ArrayList<>(List.of(xenmca, "serve", "pcpu", "--pcpus", "0-" + (pcpus - 1), "--host", "127.0.0.1",
        "--base-port", "0", "--ready-file", pcpuReady.toString()));
    pcpu.addAll(credentialFlags("pcpu"));
    ChildProcess pcpuProc = ChildProcess.start(pcpu, null, dir.resolve("pcpu.log"));
    procs.add(pcpuProc);
    for (Map.Entry<String, Object> e : readJsonWhenReady(pcpuReady, pcpuProc, "xenmca serve pcpu").entrySet()) {
      pcpuAddrs.put(e.getKey(), (String) e.getValue());
    }
    Path xenReady = dir.resolve("xen.json");
    List<String> xenCommand = new ArrayList<>(List.of(xenmca, "serve", "xen", "--listen", "127.0.0.1:0", "--inventory",
        pcpuReady.toString(), "--ready-file", xenReady.toString(), "--throttle-preset", "fast"));
    xenCommand.addAll(credentialFlags("xen"));
    ChildProcess xenProc = ChildProcess.start(xenCommand, null, dir.resolve("xen.log"));
    procs.add(xenProc);
    xen = (String) readJsonWhenReady(xenReady, xenProc, "xenmca serve xen").get("address");
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> readJsonWhenReady(Path file, ChildProcess proc, String what) throws InterruptedException {
    return Waits.until(() -> {
      if (!proc.running() && !Files.exists(file)) throw new AssertionError(what + " exited before it was ready: " + proc.tail());
      try {
        return (Map<String, Object>) JsonText.parse(Files.readString(file));
      } catch (IOException | IllegalArgumentException notYet) {
        if (!proc.running()) throw new AssertionError(what + " exited before it was ready: " + proc.tail());
        return null;
      }
    }, 60_000, what + " ready (" + file + ")");
  }

  /** --tls-cert/--tls-key/--tls-ca of one identity's certificate. */
  List<String> tlsFlags(String identity) {
    Path certs = dir.resolve("certs");
    return List.of("--tls-cert", certs.resolve(identity + ".crt").toString(), "--tls-key", certs.resolve(identity + ".key").toString(),
        "--tls-ca", certs.resolve("ca.crt").toString());
  }

  /** How a component or a client proves who it is: its certificate, or the token file. */
  List<String> credentialFlags(String identity) {
    return tls ? tlsFlags(identity) : List.of("--token-file", tokensPath.toString());
  }

  /** A client of the coordinator in this JVM, as identity. */
  XenClient client(String identity) throws CommandError {
    if (tls) {
      List<String> f = tlsFlags(identity);
      return new XenClient(xen, null, 10_000, TlsFiles.read(new CommandLine.TlsPaths(f.get(1), f.get(3), f.get(5))));
    }
    return new XenClient(xen, tokens.get(identity), 10_000, null);
  }

  /** The Java CLI with these arguments, as a long-running child. */
  ChildProcess startCli(List<String> args) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(cli());
    command.addAll(args);
    return ChildProcess.start(command, Map.of(), null);
  }

  /** The Java CLI with these arguments, to completion. */
  static ChildProcess.Finished runCli(List<String> args, long timeoutMs) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add(cli());
    command.addAll(args);
    return ChildProcess.run(command, timeoutMs);
  }

  private static final Pattern INJECTED = Pattern.compile("accepted (\\d+), stored (\\d+), overflowed (\\d+), ids (\\d+)-(\\d+)");

  /** {@code xenmca inject} on one pCPU; the record ids it reported ("ids A-B"). */
  List<String> inject(String pcpu, String type, int count) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(xenmca, "inject", "--pcpu", pcpuAddrs.get(pcpu), "--type", type, "--count",
        Integer.toString(count)));
    command.addAll(credentialFlags("operator"));
    ChildProcess.Finished result = ChildProcess.run(command, 60_000);
    Matcher m = INJECTED.matcher(result.stdout);
    if (result.code != 0 || !m.find()) throw new AssertionError("xenmca inject failed: " + result);
    if (Integer.parseInt(m.group(1)) != count || Integer.parseInt(m.group(2)) != count || Integer.parseInt(m.group(3)) != 0) {
      throw new AssertionError("xenmca inject stored fewer than " + count + ": " + result.stdout);
    }
    List<String> ids = new ArrayList<>();
    for (long id = Long.parseLong(m.group(4)); id <= Long.parseLong(m.group(5)); id++) ids.add(Long.toString(id));
    return ids;
  }

  /** {@code xenmca status --pcpu ... --json}: pending records per type name. */
  @SuppressWarnings("unchecked")
  Map<String, Long> pcpuPending(String pcpu) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(xenmca, "status", "--pcpu", pcpuAddrs.get(pcpu), "--json"));
    command.addAll(credentialFlags("operator"));
    ChildProcess.Finished result = ChildProcess.run(command, 60_000);
    if (result.code != 0) throw new AssertionError("xenmca status --pcpu failed: " + result);
    Map<String, Object> state = (Map<String, Object>) JsonText.parse(result.stdout);
    Map<String, Long> pending = new LinkedHashMap<>();
    for (Object t : (List<Object>) state.getOrDefault("types", List.of())) {
      Map<String, Object> type = (Map<String, Object>) t;
      Object count = type.get("pending");
      pending.put((String) type.get("type"),
          count == null ? 0L : count instanceof Number ? ((Number) count).longValue() : Long.parseLong(count.toString()));
    }
    return pending;
  }

  /** The last lines the components logged, for failure messages. */
  String logs() {
    List<String> parts = new ArrayList<>();
    for (ChildProcess p : procs) parts.add(p.tail());
    return String.join(" --- ", parts);
  }

  /** Stops the coordinator, then the pCPUs (SIGINT, SIGKILL after 10 s), and removes the folder. */
  @Override
  public void close() throws Exception {
    List<ChildProcess> reversed = new ArrayList<>(procs);
    Collections.reverse(reversed);
    for (ChildProcess p : reversed) p.stop(10_000);
    if (System.getenv("XENMCA_KEEP_TESTBED") == null) {
      try (Stream<Path> walk = Files.walk(dir)) {
        walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }
}
