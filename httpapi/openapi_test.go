package httpapi

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/matterline/matterline/routing"
)

type openAPIDocument struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Required             []string                   `json:"required"`
			Properties           map[string]json.RawMessage `json:"properties"`
			AdditionalProperties *bool                      `json:"additionalProperties"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	dec := json.NewDecoder(strings.NewReader(string(OpenAPI())))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

func TestOpenAPIIsJSON31(t *testing.T) {
	if !json.Valid(OpenAPI()) {
		t.Fatal("openapi.json is not valid JSON")
	}
	doc := loadOpenAPI(t)
	if !regexp.MustCompile(`^3\.1\.[0-9]+$`).MatchString(doc.OpenAPI) {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	// every $ref points at something in the document
	var all map[string]any
	_ = json.Unmarshal(OpenAPI(), &all)
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(OpenAPI()), -1) {
		var cur any = all
		for _, part := range strings.Split(ref[1], "/") {
			m, ok := cur.(map[string]any)
			if !ok || m[part] == nil {
				t.Fatalf("$ref #/%s does not resolve", ref[1])
			}
			cur = m[part]
		}
	}
}

// Every route and method the server registers is documented, and every
// documented path and method is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s := New(Options{})
	defer s.Close()
	served := map[string]bool{}
	for _, rt := range s.routeTable() {
		for m := range rt.methods {
			served[strings.ToLower(m)+" "+rt.path] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			switch key {
			case "parameters", "summary", "description", "servers":
				continue
			}
			documented[key+" "+path] = true
		}
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not in openapi.json: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.json but not served: %s", k)
		}
	}
	if len(served) < 20 {
		t.Fatalf("only %d endpoints in the route table", len(served))
	}
}

// jsonFields returns the JSON member names of a struct type (embedded structs
// flattened) and which of them are always present (no omitempty/omitzero).
func jsonFields(t reflect.Type) (all, always []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			a, b := jsonFields(f.Type)
			all, always = append(all, a...), append(always, b...)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The rule schemas agree with routing.RuleJSON's JSON tags: Rule (the output)
// has every member and requires those always printed; the input schemas have
// the same members, refuse others, and require only writable ones.
func TestOpenAPIRuleSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	all, always := jsonFields(reflect.TypeFor[routing.RuleJSON]())
	writable, _ := routing.RuleFields()
	out, ok := doc.Components.Schemas["Rule"]
	if !ok {
		t.Fatal("no Rule schema")
	}
	if got := keys(out.Properties); !slices.Equal(got, all) {
		t.Errorf("Rule properties = %v, want %v", got, all)
	}
	req := slices.Sorted(slices.Values(out.Required))
	if !slices.Equal(req, always) {
		t.Errorf("Rule required = %v, want the always-present members %v", req, always)
	}
	for _, name := range []string{"RuleInput", "RuleCreate", "RulePatch"} {
		in, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("no %s schema", name)
		}
		if got := keys(in.Properties); !slices.Equal(got, all) {
			t.Errorf("%s properties = %v, want %v", name, got, all)
		}
		if in.AdditionalProperties == nil || *in.AdditionalProperties {
			t.Errorf("%s accepts unknown members", name)
		}
		for _, r := range in.Required {
			if !slices.Contains(writable, r) {
				t.Errorf("%s requires %q, which is not writable", name, r)
			}
		}
	}
	if len(doc.Components.Schemas["RulePatch"].Required) != 0 {
		t.Error("RulePatch requires members; a merge patch may omit any")
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.AgentToken = agentToken })
	for _, tok := range []string{testToken, agentToken} {
		r := e.do(t, "GET", "/v1/openapi.json", "", tok)
		if r.code != 200 || r.body != string(OpenAPI()) || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /v1/openapi.json: %d %q", r.code, r.hdr.Get("Content-Type"))
		}
	}
	if r := e.do(t, "GET", "/v1/openapi.json", "", ""); r.code != 401 {
		t.Fatalf("without a token: %d", r.code)
	}
}
