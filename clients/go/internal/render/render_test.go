package render

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	hypervisorv1 "xenmca.dev/clients/go/gen/xenmca/hypervisor/v1"
)

// fixtures are testdata/fixtures.json: wire bytes and what the Node client's
// renderer made of them (testdata/make_fixtures.mjs).
type fixtures struct {
	Records []struct {
		Name        string `json:"name"`
		Raw         bool   `json:"raw"`
		ReplyBase64 string `json:"reply_base64"`
		Line        string `json:"line"`
	} `json:"records"`
	Statuses []struct {
		Name        string  `json:"name"`
		Address     string  `json:"address"`
		ReplyBase64 string  `json:"reply_base64"`
		JSON        string  `json:"json"`
		Text        *string `json:"text"`
	} `json:"statuses"`
}

func loadFixtures(t *testing.T) fixtures {
	t.Helper()
	data, err := os.ReadFile("../../testdata/fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixtures
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Records) == 0 || len(f.Statuses) == 0 {
		t.Fatal("fixtures.json holds no cases")
	}
	return f
}

func decode(t *testing.T, text string, m proto.Message) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRecordLineMatchesNode(t *testing.T) {
	for _, c := range loadFixtures(t).Records {
		t.Run(c.Name, func(t *testing.T) {
			var reply hypervisorv1.GetStateInfoResponse
			decode(t, c.ReplyBase64, &reply)
			got := RecordLine(reply.GetRecord(), reply.GetByIpi(), c.Raw)
			if got != c.Line {
				t.Errorf("record line differs from the Node client's\n go:   %s\n node: %s", got, c.Line)
			}
		})
	}
}

func TestStatusMatchesNode(t *testing.T) {
	for _, c := range loadFixtures(t).Statuses {
		t.Run(c.Name, func(t *testing.T) {
			var reply hypervisorv1.DescribeHypervisorResponse
			raw := decode(t, c.ReplyBase64, &reply)
			if got := StatusJSON(&reply, raw); got != c.JSON {
				t.Errorf("status --json differs from the Node client's\n go:\n%s\n node:\n%s", got, c.JSON)
			}
			if c.Text == nil {
				return // the Node client cannot render this one as text
			}
			if got := strings.Join(StatusLines(&reply, c.Address), "\n"); got != *c.Text {
				t.Errorf("status text differs from the Node client's\n go:\n%s\n node:\n%s", got, *c.Text)
			}
		})
	}
}

func TestStatusJSONWithoutWireBytesSortsMapKeys(t *testing.T) {
	reply := &hypervisorv1.DescribeHypervisorResponse{Policy: &hypervisorv1.PolicyDescription{
		Choices: map[string]string{"b": "2", "a": "1", "7": "seven"},
	}}
	got := StatusJSON(reply, nil)
	want := "\"choices\": {\n      \"7\": \"seven\",\n      \"a\": \"1\",\n      \"b\": \"2\"\n    }"
	if !strings.Contains(got, want) {
		t.Errorf("map keys not in JavaScript order:\n%s", got)
	}
}
