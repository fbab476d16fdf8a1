package seats

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps name what must never reach the seat rules, directly or not:
// the actor library, HTTP, and the packages built around this one.
var forbiddenDeps = []string{
	"github.com/asynkron/protoactor-go",
	"github.com/valyala/fasthttp",
	"onsale/actors",
	"onsale/httpapi",
	"onsale/bench",
}

// TestDependencies: seats imports the standard library and onsale/wal only,
// and its import graph holds nothing that onsale/wal does not bring, so the
// seat rules stay a pure core that any shell (the zone actor, recovery, a
// test) can drive.
func TestDependencies(t *testing.T) {
	type pkg struct {
		ImportPath string
		Standard   bool
		Imports    []string
	}
	list := func(args ...string) []pkg {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-json=ImportPath,Standard,Imports"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		var ps []pkg
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var p pkg
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("decode go list output: %v", err)
			}
			ps = append(ps, p)
		}
		return ps
	}

	self := list(".")
	if len(self) != 1 || self[0].ImportPath != "onsale/actors/seats" {
		t.Fatalf("go list .: %+v", self)
	}
	std := map[string]bool{}
	for _, p := range list("-deps", ".") {
		std[p.ImportPath] = p.Standard
	}
	for _, imp := range self[0].Imports {
		if !std[imp] && imp != "onsale/wal" {
			t.Errorf("seats imports %s; it may import the standard library and onsale/wal only", imp)
		}
	}

	viaWal := map[string]bool{}
	for _, p := range list("-deps", "onsale/wal") {
		viaWal[p.ImportPath] = true
	}
	for path, isStd := range std {
		if path == "onsale/actors/seats" {
			continue
		}
		for _, f := range forbiddenDeps {
			if path == f || strings.HasPrefix(path, f+"/") {
				t.Errorf("seats depends on %s", path)
			}
		}
		if !isStd && !viaWal[path] {
			t.Errorf("seats depends on %s, which onsale/wal does not bring", path)
		}
	}
}
