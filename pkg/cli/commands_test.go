package cli

import (
	"bytes"
	"strings"
	"testing"
)

// An unknown sub-command fails with cobra's suggestion at every level; a
// command group without arguments still prints its help.
func TestUnknownCommandsFail(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // in the error; nil for success
	}{
		{[]string{"biuld"}, []string{`unknown command "biuld" for "kiln"`, "Did you mean this?\n\tbuild"}},
		{[]string{"manifest", "pusj"}, []string{`unknown command "pusj" for "kiln manifest"`, "Did you mean this?\n\tpush\n"}},
		{[]string{"manifest", "inspekt", "r.example/app:1"}, []string{`unknown command "inspekt" for "kiln manifest"`, "\tinspect"}},
		{[]string{"manifest", "frobnicate"}, []string{`unknown command "frobnicate" for "kiln manifest"`, "Run 'kiln manifest --help' for usage."}},
		{[]string{"help", "biuld"}, []string{`unknown command "biuld" for "kiln"`}},
		{[]string{"help", "manifest", "pusj"}, []string{`unknown command "pusj" for "kiln manifest"`, "\tpush"}},
		{[]string{"manifest"}, nil},
		{[]string{"help", "manifest", "push"}, nil},
	} {
		root := NewRootCommand()
		rejectUnknownCommands(root)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if tc.want == nil {
			if err != nil || !strings.Contains(out.String(), "Usage:") {
				t.Errorf("kiln %q: %v, output %q; want help", tc.args, err, out.String())
			}
			continue
		}
		if err == nil {
			t.Errorf("kiln %q succeeded; output %q", tc.args, out.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("kiln %q: error %q lacks %q", tc.args, err, w)
			}
		}
	}
}
