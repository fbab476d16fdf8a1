package line

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsPure holds the package to its rule (doc.go): it imports the
// standard library and onsale/wal's record types, nothing else. The waiting
// room is then a state machine that can be read, tested and replayed without
// an actor system, a network server or the engine around it.
func TestImportsPure(t *testing.T) {
	out := goList(t, "-f", `{{join .Imports "\n"}}
{{join .TestImports "\n"}}
{{join .XTestImports "\n"}}`, ".")
	imports := strings.Fields(out)
	args := append([]string{"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, imports...)
	for _, p := range strings.Fields(goList(t, args...)) {
		if p != "onsale/wal" {
			t.Errorf("package line imports %q; only the standard library and onsale/wal may be imported", p)
		}
	}
	// Through onsale/wal it reaches the log library, and that is all: none
	// of the actor system, the HTTP server or the rest of onsale.
	forbidden := []string{"github.com/asynkron/protoactor-go", "github.com/valyala/fasthttp",
		"onsale/actors", "onsale/httpapi", "onsale/bench"}
	for _, p := range strings.Fields(goList(t, "-deps", "-test", "-f", "{{.ImportPath}}", ".")) {
		p = strings.Fields(strings.TrimSuffix(p, "]"))[0] // "x [x.test]" -> "x"
		if p == "onsale/actors/line" || strings.HasPrefix(p, "onsale/actors/line.") {
			continue
		}
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				t.Errorf("package line depends on %q", p)
			}
		}
	}
}

func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}
