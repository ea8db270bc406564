package xenmca.client;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Where dom0 logs records: standard output (each line written through at once), or a file opened
 * for appending whose every line is fsync'd before it counts as written. A file's existing lines
 * say which records are logged already (pCPU + record id).
 */
public final class LogSink implements AutoCloseable {
  private final OutputStream stdout;
  private final FileChannel file;
  private final List<String> alreadyLogged;
  private String prefix;

  private LogSink(OutputStream stdout, FileChannel file, List<String> alreadyLogged, String prefix) {
    this.stdout = stdout;
    this.file = file;
    this.alreadyLogged = alreadyLogged;
    this.prefix = prefix;
  }

  /** Standard output (unbuffered: a write returns once the bytes are handed to the OS). */
  public static LogSink toStdout(OutputStream stdout) {
    return new LogSink(stdout, null, List.of(), "");
  }

  /**
   * The file at path, appended to; it need not exist.
   *
   * @throws CommandError if it cannot be read or opened
   */
  public static LogSink toFile(String path) throws CommandError {
    String existing = "";
    try {
      existing = new String(Files.readAllBytes(Path.of(path)), StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      existing = "";
    } catch (IOException | RuntimeException e) {
      throw new CommandError("--out: cannot read " + path + ": " + IoErrors.code(e));
    }
    List<String> logged = new ArrayList<>();
    for (String text : existing.split("\n", -1)) {
      Object line;
      try {
        line = JsonText.parse(text);
      } catch (IllegalArgumentException torn) {
        continue; // A torn last line (a crash mid-write) is not a record: it will be delivered again.
      }
      if (line instanceof Map) {
        Map<?, ?> fields = (Map<?, ?>) line;
        if (fields.containsKey("pcpu") && fields.containsKey("record_id")) {
          logged.add(jsString(fields.get("pcpu")) + ":" + jsString(fields.get("record_id")));
        }
      }
    }
    FileChannel channel;
    try {
      channel = FileChannel.open(Path.of(path), StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
    } catch (IOException | RuntimeException e) {
      throw new CommandError("--out: cannot open " + path + ": " + IoErrors.code(e));
    }
    String prefix = !existing.isEmpty() && !existing.endsWith("\n") ? "\n" : "";
    return new LogSink(null, channel, logged, prefix);
  }

  /** "pcpu:record_id" keys of the records the file already holds. */
  public List<String> alreadyLogged() {
    return alreadyLogged;
  }

  /** Write one line; returns once it is durable (flushed; fsync'd for a file). */
  public synchronized void write(String line) throws IOException {
    byte[] bytes = (prefix + line + "\n").getBytes(StandardCharsets.UTF_8);
    if (file == null) {
      stdout.write(bytes);
      stdout.flush();
      return;
    }
    ByteBuffer buffer = ByteBuffer.wrap(bytes);
    while (buffer.hasRemaining()) file.write(buffer);
    prefix = "";
    file.force(false);
  }

  @Override
  public void close() throws IOException {
    if (file != null) file.close();
  }

  /** A JSON value as JavaScript's String() shows it. */
  private static String jsString(Object value) {
    if (value == null) return "null";
    if (value instanceof Number) return JsonText.number((Number) value);
    if (value instanceof List) {
      List<String> parts = new ArrayList<>();
      for (Object item : (List<?>) value) parts.add(item == null ? "" : jsString(item));
      return String.join(",", parts);
    }
    if (value instanceof Map) return "[object Object]";
    return value.toString();
  }
}
