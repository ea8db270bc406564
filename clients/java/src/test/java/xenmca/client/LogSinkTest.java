package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** dom0's --out file: the records it holds already, appending after a torn last line. */
class LogSinkTest {
  @TempDir Path dir;

  @Test
  void existingLinesAreLoggedRecordsAndATornLineIsNot() throws Exception {
    Path out = dir.resolve("log.jsonl");
    Files.writeString(out, "{\"pcpu\":1,\"record_id\":\"3\",\"type\":\"CMC\"}\nnot json\n{\"pcpu\":2}\n{\"pcpu\":0,\"record_id\":\"9\"}\n{\"pcpu\":4,\"rec");
    try (LogSink sink = LogSink.toFile(out.toString())) {
      assertEquals(List.of("1:3", "0:9"), sink.alreadyLogged());
      sink.write("{\"pcpu\":4,\"record_id\":\"1\"}");
      sink.write("{\"pcpu\":4,\"record_id\":\"2\"}");
    }
    List<String> lines = Files.readAllLines(out);
    assertEquals("{\"pcpu\":4,\"rec", lines.get(4));
    assertEquals("{\"pcpu\":4,\"record_id\":\"1\"}", lines.get(5));
    assertEquals("{\"pcpu\":4,\"record_id\":\"2\"}", lines.get(6));
    assertEquals(7, lines.size());
  }

  @Test
  void aNewFileAndAFolder() throws Exception {
    Path out = dir.resolve("new.jsonl");
    try (LogSink sink = LogSink.toFile(out.toString())) {
      assertEquals(List.of(), sink.alreadyLogged());
      sink.write("{}");
    }
    assertEquals("{}\n", Files.readString(out));
    CommandError e = assertThrows(CommandError.class, () -> LogSink.toFile(dir.toString()));
    assertEquals("--out: cannot read " + dir + ": EISDIR", e.getMessage());
  }
}
