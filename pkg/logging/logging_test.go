package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	if err := Configure(l, &buf, "debug", "json", false); err != nil {
		t.Fatal(err)
	}
	l.WithField("step", 1).Debug("hello")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "hello" || rec["level"] != "debug" || rec["step"] != float64(1) {
		t.Fatalf("record %v", rec)
	}
	if _, ok := rec["time"]; ok {
		t.Fatalf("timestamp present without --log-timestamp: %v", rec)
	}
}

func TestTextFormatTimestamps(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.New()
	if err := Configure(l, &buf, "info", "text", true); err != nil {
		t.Fatal(err)
	}
	l.Info("hi")
	if !strings.Contains(buf.String(), "time=") || strings.Contains(buf.String(), "\x1b[") {
		t.Fatalf("text output %q", buf.String())
	}
	buf.Reset()
	l.Debug("hidden")
	if buf.Len() != 0 {
		t.Fatalf("debug line at info level: %q", buf.String())
	}
}

func TestRejectsUnknownValues(t *testing.T) {
	l := logrus.New()
	if err := Configure(l, &bytes.Buffer{}, "loud", "text", false); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Fatalf("bad level: %v", err)
	}
	if err := Configure(l, &bytes.Buffer{}, "info", "xml", false); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("bad format: %v", err)
	}
}
