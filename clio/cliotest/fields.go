package cliotest

import (
	"fmt"
	"strings"
)

// field is one entry of a `fields` parameter: a name and, for nested objects,
// the sub-field names (one level only).
type field struct {
	name string
	sub  []string // nil = no braces
}

// parseFields parses "id,name,phone_numbers{number,name}". Deeper nesting, empty
// names and unbalanced braces are errors.
func parseFields(s string) ([]field, error) {
	var out []field
	for s != "" {
		i := strings.IndexAny(s, ",{}")
		if i < 0 {
			out = append(out, field{name: strings.TrimSpace(s)})
			break
		}
		name := strings.TrimSpace(s[:i])
		if name == "" && s[i] != ',' {
			return nil, fmt.Errorf("bad fields syntax near %q", s)
		}
		switch s[i] {
		case ',':
			if name != "" {
				out = append(out, field{name: name})
			}
			s = s[i+1:]
		case '}':
			return nil, fmt.Errorf("unbalanced } in fields")
		case '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unbalanced { in fields")
			}
			inner := s[i+1 : i+1+end]
			if strings.ContainsRune(inner, '{') {
				return nil, fmt.Errorf("fields nest at most one level: %s", name)
			}
			f := field{name: name, sub: []string{}}
			for _, sn := range strings.Split(inner, ",") {
				if sn = strings.TrimSpace(sn); sn != "" {
					f.sub = append(f.sub, sn)
				}
			}
			out = append(out, f)
			s = strings.TrimPrefix(s[i+1+end+1:], ",")
		}
	}
	return out, nil
}

// schema is the readable fields of a resource; nested ones map to their own schema.
type schema struct {
	plain  map[string]bool
	nested map[string]*schema
}

func newSchema(plain string, nested map[string]*schema) *schema {
	s := &schema{plain: map[string]bool{}, nested: nested}
	for _, f := range strings.Split(plain, ",") {
		s.plain[f] = true
	}
	return s
}

var (
	userSchema    = newSchema("id,etag,name,first_name,last_name,email,phone_number,enabled,subscription_type,created_at,updated_at", nil)
	phoneSchema   = newSchema("id,etag,number,name,primary,created_at,updated_at", nil)
	emailSchema   = newSchema("id,etag,address,name,primary,created_at,updated_at", nil)
	addressSchema = newSchema("id,etag,street,city,province,postal_code,country,name,primary,created_at,updated_at", nil)
	refSchema     = newSchema("id,etag,name,type", nil)
	contactSchema = newSchema("id,etag,name,first_name,last_name,title,type,primary_phone_number,primary_email_address,created_at,updated_at",
		map[string]*schema{"phone_numbers": phoneSchema, "email_addresses": emailSchema, "addresses": addressSchema, "company": refSchema})
	matterSchema = newSchema("id,etag,display_number,description,status,open_date,close_date,created_at,updated_at",
		map[string]*schema{"client": refSchema, "responsible_staff": userSchema, "responsible_attorney": userSchema, "originating_attorney": userSchema})
)

// check validates fields against the schema: an unknown name, or braces on a
// plain field, is an InvalidFields error.
func (s *schema) check(fs []field) error {
	for _, f := range fs {
		if s.plain[f.name] {
			if f.sub != nil {
				return fmt.Errorf("field %s has no sub-fields", f.name)
			}
			continue
		}
		ns, ok := s.nested[f.name]
		if !ok {
			return fmt.Errorf("unknown field: %s", f.name)
		}
		for _, sn := range f.sub {
			if !ns.plain[sn] {
				return fmt.Errorf("unknown field: %s{%s}", f.name, sn)
			}
		}
	}
	return nil
}

// project keeps the requested fields of rec; nested objects without braces give
// their id and etag. Without fields only id and etag are returned.
func project(rec map[string]any, fs []field) map[string]any {
	if fs == nil {
		return map[string]any{"id": rec["id"], "etag": rec["etag"]}
	}
	out := make(map[string]any, len(fs))
	for _, f := range fs {
		v := rec[f.name]
		if f.sub == nil {
			if m, ok := v.(map[string]any); ok {
				v = map[string]any{"id": m["id"], "etag": m["etag"]}
			} else if list, ok := v.([]map[string]any); ok {
				short := make([]map[string]any, len(list))
				for i, m := range list {
					short[i] = map[string]any{"id": m["id"], "etag": m["etag"]}
				}
				v = short
			}
			out[f.name] = v
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			out[f.name] = pick(x, f.sub)
		case []map[string]any:
			list := make([]map[string]any, len(x))
			for i, m := range x {
				list[i] = pick(m, f.sub)
			}
			out[f.name] = list
		default:
			out[f.name] = nil
		}
	}
	return out
}

func pick(m map[string]any, keys []string) map[string]any {
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
