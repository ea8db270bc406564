package xenmca.client;

import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.DescribeHypervisorResponse;

/**
 * The xenmca-java command: {@code status} and {@code dom0}, with the Node client's flags, output,
 * one-line errors and exit statuses (0 ok, 1 failed while running, 2 could not run: bad arguments,
 * an unreadable token file, an unreachable coordinator, a refused identity).
 */
public final class Cli {
  /** The program name in usage and error lines. */
  public static final String PROG = "xenmca-java";

  /** The --help text. */
  public static final String USAGE = String.join("\n",
      "usage: " + PROG + " <command> [options]",
      "",
      "commands:",
      "  status --xen HOST:PORT [--token-file FILE] [TLS] [--json] [--timeout MS]",
      "      print the coordinator's state: pCPUs, dom0, queues, counters, throttling",
      "  dom0 --xen HOST:PORT [--token-file FILE] [TLS] [--max N] [--cpe-poll MS] [--out FILE]",
      "       [--raw] [--instance NAME] [--connect-timeout MS] [--timeout MS]",
      "      act as dom0: attach, and for each virtual interrupt GET the record, print",
      "      it as one JSON line (flushed; with --out, appended and fsync'd), then",
      "      CLEAR that record id; poll CPE every --cpe-poll ms (default 1000, 0: off);",
      "      stop after --max records (default: no limit) or on SIGINT/SIGTERM",
      "",
      "options:",
      "  --token-file FILE   JSON (or flat YAML) {identity: token}; default $XENMCA_TOKEN_FILE.",
      "                      status presents the operator token (else dom0's), dom0 dom0's",
      "  --tls-cert FILE --tls-key FILE --tls-ca FILE   (TLS: all three or none)",
      "                      mutual TLS with this client certificate, its key and the CA",
      "                      that signed the coordinator's; the identity is the",
      "                      certificate's CN (`xenmca certs generate` makes them)",
      "  --timeout MS        deadline of each unary call (default " + CommandLine.DEFAULT_DEADLINE_MS + ")",
      "  -h, --help          this help",
      "",
      "exit status: 0 ok, 1 failed while running, 2 could not run");

  /** Standard streams, the environment, and whether SIGINT/SIGTERM are this command's to handle. */
  public static final class Io {
    final OutputStream stdout;
    final OutputStream stderr;
    final Map<String, String> env;
    final boolean handleSignals;

    /** For the real process, or for tests (handleSignals false). */
    public Io(OutputStream stdout, OutputStream stderr, Map<String, String> env, boolean handleSignals) {
      this.stdout = stdout;
      this.stderr = stderr;
      this.env = env;
      this.handleSignals = handleSignals;
    }
  }

  private final Io io;
  private final String command;

  private Cli(Io io, String command) {
    this.io = io;
    this.command = command;
  }

  /** Run the command line (arguments after the program name); returns the exit status. */
  public static int main(List<String> argv, Io io) {
    String command = !argv.isEmpty() && CommandLine.isCommand(argv.get(0)) ? argv.get(0) : null;
    Cli cli = new Cli(io, command);
    try {
      CommandLine line = CommandLine.parse(argv);
      if (line.command.equals("help")) {
        writeOut(io.stdout, USAGE + "\n");
        return 0;
      }
      return line.command.equals("status") ? cli.runStatus(line) : cli.runDom0(line);
    } catch (CommandError | TokenFileError e) {
      return cli.fail(e.getMessage(), 2);
    } catch (Dom0Error e) {
      return cli.fail(e.getMessage(), e.exitCode);
    } catch (Exception | Error e) {
      StringWriter trace = new StringWriter();
      e.printStackTrace(new PrintWriter(trace));
      return cli.fail(trace.toString(), 1);
    }
  }

  private int fail(String message, int status) {
    String where = command != null ? PROG + " " + command : PROG;
    String text = String.valueOf(message).replaceAll("\\s*\\n\\s*", " ");
    writeErr(where + ": error: " + text + "\n");
    return status;
  }

  private void log(String message) {
    writeErr(PROG + " " + command + ": " + message + "\n");
  }

  private synchronized void writeErr(String text) {
    try {
      io.stderr.write(text.getBytes(StandardCharsets.UTF_8));
      io.stderr.flush();
    } catch (IOException ignored) {
      // Nowhere left to report it.
    }
  }

  private static void writeOut(OutputStream out, String text) throws IOException {
    out.write(text.getBytes(StandardCharsets.UTF_8));
    out.flush();
  }

  private int runStatus(CommandLine line) throws CommandError, TokenFileError, IOException {
    String token = TokenBook.resolve(line.tokenFile, List.of("operator", "dom0", "xen"), io.env);
    TlsFiles tls = TlsFiles.read(line.tls);
    DescribeHypervisorResponse state;
    XenClient client = new XenClient(line.xen, token, line.timeoutMs, tls);
    try {
      state = client.status();
    } catch (StatusRuntimeException e) {
      throw new CommandError(line.xen + ": " + RpcErrors.describe(e));
    } finally {
      client.close();
    }
    Map<String, Object> decoded = ProtoObjects.toObject(state);
    String text = line.json ? JsonText.pretty(decoded) : String.join("\n", StatusText.lines(decoded, line.xen));
    writeOut(io.stdout, text + "\n");
    return 0;
  }

  private int runDom0(CommandLine line) throws CommandError, TokenFileError, Dom0Error, IOException, InterruptedException {
    String token = TokenBook.resolve(line.tokenFile, List.of("dom0"), io.env);
    TlsFiles tls = TlsFiles.read(line.tls);
    LogSink sink = line.out == null ? LogSink.toStdout(io.stdout) : LogSink.toFile(line.out);
    String instance = line.instance != null ? line.instance : PROG + "-" + ProcessHandle.current().pid();
    try (XenClient client = new XenClient(line.xen, token, line.timeoutMs, tls); sink) {
      Dom0 dom0 = new Dom0(client, sink::write, this::log, line.max, line.cpePollMs, line.connectTimeoutMs, instance,
          line.raw, sink.alreadyLogged());
      Runnable restoreSignals = io.handleSignals ? StopSignals.install(dom0::stop) : () -> {};
      try {
        Dom0.Result result = dom0.run();
        log("stopped (" + result.reason + "): " + result.counters.summary());
        return 0;
      } finally {
        restoreSignals.run();
      }
    }
  }
}
