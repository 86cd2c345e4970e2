package interop

import (
	"bufio"
	"bytes"
	"testing"
)

func FuzzReadNetstring(f *testing.F) {
	f.Add([]byte(`7:{"a":1},`))
	f.Add([]byte("0:,"))
	f.Add([]byte("99999999999:x,"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readNetstring(bufio.NewReader(bytes.NewReader(b)))
		// Lenient about the length's form ("00:", "+1:"), strict about the rest.
		if err == nil && !bytes.Contains(b, append(append([]byte(":"), got...), ',')) {
			t.Errorf("readNetstring(%q) = %q, not framed by ':' and ',' in the input", b, got)
		}
	})
}

func TestNetstring(t *testing.T) {
	var b bytes.Buffer
	b.Write(netstring([]byte(`{"a":1}`)))
	b.Write(netstring(nil))
	b.WriteString("3:abc;")
	r := bufio.NewReader(&b)
	for _, want := range []string{`{"a":1}`, ""} {
		got, err := readNetstring(r)
		if err != nil || string(got) != want {
			t.Fatalf("readNetstring = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readNetstring(r); err == nil {
		t.Error("accepted a netstring without its trailing comma")
	}
}
