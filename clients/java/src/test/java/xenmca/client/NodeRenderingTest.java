package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.DescribeHypervisorResponse;
import xenmca.hypervisor.v1.HypervisorServiceOuterClass.GetStateInfoResponse;

/**
 * The same message bytes render exactly as the Node client renders them: the dom0 line (with and
 * without --raw), {@code status --json} and the status text. The fixture is made by
 * src/test/node/make-fixtures.mjs with the Node client's own code.
 */
class NodeRenderingTest {
  @SuppressWarnings("unchecked")
  private static Map<String, Object> fixture() throws IOException {
    try (InputStream in = NodeRenderingTest.class.getResourceAsStream("/fixtures/node-rendering.json")) {
      return (Map<String, Object>) JsonText.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
    }
  }

  @SuppressWarnings("unchecked")
  private static List<Map<String, Object>> cases(String kind) throws IOException {
    List<Map<String, Object>> cases = (List<Map<String, Object>>) fixture().get(kind);
    assertFalse(cases.isEmpty());
    return cases;
  }

  @Test
  void recordLinesMatchNode() throws Exception {
    for (Map<String, Object> c : cases("records")) {
      GetStateInfoResponse got = GetStateInfoResponse.parseFrom(Base64.getDecoder().decode((String) c.get("get_state_info_response")));
      assertEquals(c.get("line"), RecordLine.json(got.getRecord(), got.getByIpi(), false), (String) c.get("name"));
      assertEquals(c.get("raw_line"), RecordLine.json(got.getRecord(), got.getByIpi(), true), (String) c.get("name"));
    }
  }

  @Test
  void statusJsonAndTextMatchNode() throws Exception {
    for (Map<String, Object> c : cases("states")) {
      DescribeHypervisorResponse state =
          DescribeHypervisorResponse.parseFrom(Base64.getDecoder().decode((String) c.get("describe_hypervisor_response")));
      Map<String, Object> decoded = ProtoObjects.toObject(state);
      assertEquals(c.get("json"), JsonText.pretty(decoded), (String) c.get("name"));
      if (c.get("text") != null) {
        assertEquals(c.get("text"), String.join("\n", StatusText.lines(decoded, "127.0.0.1:50051")), (String) c.get("name"));
      }
    }
  }

  @Test
  void timestamps() {
    assertEquals(null, RecordLine.timestamp(com.google.protobuf.Timestamp.getDefaultInstance()));
    assertEquals("2023-11-14T22:13:20.123456789Z",
        RecordLine.timestamp(com.google.protobuf.Timestamp.newBuilder().setSeconds(1700000000).setNanos(123456789).build()));
  }
}
