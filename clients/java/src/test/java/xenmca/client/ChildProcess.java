package xenmca.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * A child process of a live test, its stdout and stderr collected as they come (and copied to a
 * log file if asked). Every child still running when the test JVM exits is killed.
 */
final class ChildProcess {
  private static final Set<Process> RUNNING = ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(() -> RUNNING.forEach(Process::destroyForcibly)));
  }

  final Process process;
  private final StringBuilder stdout = new StringBuilder();
  private final StringBuilder stderr = new StringBuilder();
  private final List<Thread> readers = new ArrayList<>();

  private ChildProcess(Process process, Path logFile) throws IOException {
    this.process = process;
    RUNNING.add(process);
    process.onExit().thenRun(() -> RUNNING.remove(process));
    OutputStream log = logFile == null ? null : Files.newOutputStream(logFile);
    readers.add(pump(process.getInputStream(), stdout, log));
    readers.add(pump(process.getErrorStream(), stderr, log));
  }

  static ChildProcess start(List<String> command, Map<String, String> env, Path logFile) throws IOException {
    ProcessBuilder builder = new ProcessBuilder(command);
    builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    if (env != null) builder.environment().putAll(env);
    return new ChildProcess(builder.start(), logFile);
  }

  private Thread pump(InputStream in, StringBuilder into, OutputStream log) {
    Thread thread = new Thread(() -> {
      byte[] buffer = new byte[8192];
      try {
        for (int n; (n = in.read(buffer)) > 0;) {
          synchronized (into) {
            into.append(new String(buffer, 0, n, StandardCharsets.UTF_8));
          }
          if (log != null) {
            synchronized (log) {
              log.write(buffer, 0, n);
              log.flush();
            }
          }
        }
      } catch (IOException closed) {
        // the process is gone
      }
    });
    thread.setDaemon(true);
    thread.start();
    return thread;
  }

  String stdout() {
    synchronized (stdout) {
      return stdout.toString();
    }
  }

  String stderr() {
    synchronized (stderr) {
      return stderr.toString();
    }
  }

  /** Complete lines of stdout so far. */
  List<String> lines() {
    String text = stdout();
    List<String> lines = new ArrayList<>(List.of(text.split("\n", -1)));
    lines.remove(lines.size() - 1);
    return lines;
  }

  boolean running() {
    return process.isAlive();
  }

  /** Waits for the exit (and the rest of its output); null if it is still running after timeoutMs. */
  Integer waitFor(long timeoutMs) throws InterruptedException {
    if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) return null;
    for (Thread reader : readers) reader.join(5_000);
    return process.exitValue();
  }

  /** SIGINT, then SIGKILL if it has not exited after graceMs; the exit status. */
  int stop(long graceMs) throws IOException, InterruptedException {
    if (process.isAlive()) {
      new ProcessBuilder("kill", "-INT", Long.toString(process.pid())).inheritIO().start().waitFor();
      Integer code = waitFor(graceMs);
      if (code != null) return code;
      process.destroyForcibly();
    }
    return waitFor(60_000);
  }

  /** The last lines of stderr, for failure messages. */
  String tail() {
    String[] lines = stderr().strip().split("\n");
    return String.join(" | ", List.of(lines).subList(Math.max(0, lines.length - 8), lines.length));
  }

  /** Run command to completion (killed after timeoutMs). */
  static Finished run(List<String> command, long timeoutMs) throws IOException, InterruptedException {
    ChildProcess child = start(command, null, null);
    Integer code = child.waitFor(timeoutMs);
    if (code == null) {
      child.process.destroyForcibly();
      code = child.waitFor(10_000);
    }
    return new Finished(code == null ? -1 : code, child.stdout(), child.stderr());
  }

  /** A finished command: exit status and output. */
  static final class Finished {
    final int code;
    final String stdout;
    final String stderr;

    Finished(int code, String stdout, String stderr) {
      this.code = code;
      this.stdout = stdout;
      this.stderr = stderr;
    }

    @Override
    public String toString() {
      return "exit " + code + "; stdout: " + stdout + "; stderr: " + stderr;
    }
  }
}
