package xenmca.client;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;

/** Runs {@link Cli#main} in this JVM with captured streams: the exit status, stdout and stderr. */
final class InProcessCli {
  final int code;
  final String stdout;
  final String stderr;

  private InProcessCli(int code, String stdout, String stderr) {
    this.code = code;
    this.stdout = stdout;
    this.stderr = stderr;
  }

  static InProcessCli run(String... argv) {
    return runWithEnv(Map.of(), argv);
  }

  static InProcessCli runWithEnv(Map<String, String> env, String... argv) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = Cli.main(Arrays.asList(argv), new Cli.Io(out, err, env, false));
    return new InProcessCli(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** True when stderr is exactly one line. */
  boolean oneLineError() {
    return stderr.endsWith("\n") && stderr.indexOf('\n') == stderr.length() - 1;
  }
}
