package httpapi

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// checkKeys refuses what encoding/json lets through in a body that already
// decoded into a value of type t: keys that match a field only when case is
// ignored ("ZONES" for "zones") and keys given twice in one object (the last
// would win). Either could silently change a sale. DisallowUnknownFields has
// already refused keys that name no field at their depth, ignoring case; so
// a key that is exactly one of the type's JSON names, at any depth, is exact
// where it stands. The scan is a single pass over the bytes of a body that is
// known to be valid JSON.
func checkKeys(body []byte, t reflect.Type) error {
	names := jsonNames(t)
	// seen holds the keys of each open object; bodies are small and shallow.
	var seen [][]string
	var stack []byte // open '{' and '['
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '{':
			stack = append(stack, c)
			seen = append(seen, nil)
		case '[':
			stack = append(stack, c)
		case '}', ']':
			if c == '}' && len(seen) > 0 {
				seen = seen[:len(seen)-1]
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case '"':
			start := i + 1
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
			s := string(body[start:min(i, len(body))])
			// A key is a string inside an object followed by a colon.
			j := i + 1
			for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
				j++
			}
			if len(stack) == 0 || stack[len(stack)-1] != '{' || j >= len(body) || body[j] != ':' {
				continue
			}
			if !names[s] {
				return fmt.Errorf("unknown field %q (field names are case-sensitive)", s)
			}
			top := &seen[len(seen)-1]
			for _, k := range *top {
				if k == s {
					return fmt.Errorf("field %q is given twice", s)
				}
			}
			*top = append(*top, s)
		}
	}
	return nil
}

// jsonNameSets caches the JSON names of each request type.
var jsonNameSets sync.Map // reflect.Type -> map[string]bool

// jsonNames returns every JSON field name of t and of the structs it
// contains.
func jsonNames(t reflect.Type) map[string]bool {
	if v, ok := jsonNameSets.Load(t); ok {
		return v.(map[string]bool)
	}
	names := make(map[string]bool)
	var walk func(t reflect.Type)
	seen := make(map[reflect.Type]bool)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			names[name] = true
			walk(f.Type)
		}
	}
	walk(t)
	jsonNameSets.Store(t, names)
	return names
}
