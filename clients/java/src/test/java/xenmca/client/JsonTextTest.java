package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** JSON text as JavaScript writes and reads it. */
class JsonTextTest {
  @Test
  void writesLikeJsonStringify() {
    Map<String, Object> map = new LinkedHashMap<>();
    map.put("b", 1L);
    map.put("10", "ten");
    map.put("2", List.of());
    map.put("s", "q\"\\\n\u0001\u2028é");
    map.put("n", null);
    map.put("d", 2000.5);
    assertEquals("{\"2\":[],\"10\":\"ten\",\"b\":1,\"s\":\"q\\\"\\\\\\n\\u0001\u2028é\",\"n\":null,\"d\":2000.5}", JsonText.compact(map));
    assertEquals("{\n  \"a\": [\n    1,\n    {}\n  ]\n}", JsonText.pretty(Map.of("a", List.of(1, Map.of()))));
  }

  @Test
  void numbersLikeJavaScript() {
    assertEquals("123.456789", JsonText.number(123.456789));
    assertEquals("2000", JsonText.number(2000.0));
    assertEquals("0.5", JsonText.number(0.5));
    assertEquals("1e+21", JsonText.number(1e21));
    assertEquals("1e-7", JsonText.number(1e-7));
  }

  @Test
  void parsesStrictly() {
    assertEquals(Map.of("pcpu", 1L, "record_id", "3"), JsonText.parse(" {\"pcpu\":1,\"record_id\":\"3\"} "));
    assertEquals(List.of(true, false), JsonText.parse("[true,false]"));
    for (String bad : List.of("", "{", "{pcpu:1}", "[1,]", "{\"a\":1,}", "'x'", "01", "{\"pcpu\":1,\"rec")) {
      assertThrows(IllegalArgumentException.class, () -> JsonText.parse(bad), bad);
    }
  }
}
