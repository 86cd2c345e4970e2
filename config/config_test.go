package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SIP.Listen[0] != "udp://0.0.0.0:5060" || c.HTTP.Listen != "127.0.0.1:8080" ||
		c.Store.Path != "matterline.db" || c.Media.RTPPorts != "10000-20000" {
		t.Fatalf("defaults differ from DESIGN.md: %+v", c)
	}
	if c.Clio.AnswerWait.D() != 500*time.Millisecond {
		t.Fatalf("answer_wait %v", c.Clio.AnswerWait.D())
	}
}

func TestLoadEmptyPathUsesDefaults(t *testing.T) {
	t.Setenv("MATTERLINE_CLIO_ACCESS_TOKEN", "tok-from-env")
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Clio.AccessToken != "tok-from-env" {
		t.Fatalf("env override not applied")
	}
}

func TestParseOverridesAndKeepsDefaults(t *testing.T) {
	c := Default()
	err := Parse([]byte(`
sip:
  listen: ["udp://127.0.0.1:5070"]
  external_ip: 203.0.113.7
  trusted_sources: ["10.0.0.0/8", "192.0.2.1"]
clio:
  answer_wait: 250ms
ivr:
  menu: {"2": "rule:paralegal"}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SIP.ExternalIP != "203.0.113.7" || c.Clio.AnswerWait.D() != 250*time.Millisecond {
		t.Fatalf("not applied: %+v", c)
	}
	if len(c.IVR.Menu) != 1 || c.IVR.Menu["2"] != "rule:paralegal" {
		t.Fatalf("menu should replace default, got %v", c.IVR.Menu)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" {
		t.Fatalf("default lost")
	}
	p, err := Prefixes(c.SIP.TrustedSources)
	if err != nil || len(p) != 2 || p[1].Bits() != 32 {
		t.Fatalf("prefixes %v %v", p, err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"sip:\n  lisen: []\n", "unknown key sip.lisen"},
		{"bogus: 1\n", "unknown key bogus"},
		{"sip:\n  trusted_sources: [\"10.0.0/8\"]\n", `sip.trusted_sources[0]: bad CIDR "10.0.0/8"`},
		{"sip:\n  trusted_sources: [\"127.0.0.1/32\", \"nope\"]\n", `sip.trusted_sources[1]: bad CIDR`},
		{"media:\n  rtp_ports: \"20000-10000\"\n", "media.rtp_ports"},
		{"media:\n  rtp_ports: \"abc\"\n", "media.rtp_ports: bad port range"},
		{"media:\n  rtp_ports: \"80-90\"\n", "media.rtp_ports"},
		{"media:\n  prompts_dir: /nonexistent/prompts\n", "media.prompts_dir"},
		{"sip:\n  listen: [\"udp://nohost\"]\n", "sip.listen[0]"},
		{"sip:\n  listen: [\"ws://0.0.0.0:5066\"]\n", "sip.listen[0]"},
		{"sip:\n  listen: [\"tls://0.0.0.0:5061\"]\n", "sip.tls.cert_file: required with a tls:// listener"},
		{"sip:\n  listen: [\"tls://0.0.0.0:5061\"]\n  tls: {cert_file: /nonexistent/c.pem}\n", "sip.tls.key_file: required"},
		{"sip:\n  listen: [\"tls://0.0.0.0:5061\"]\n  tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n", "sip.tls.cert_file: stat /nonexistent/c.pem: no such file"},
		{"sip:\n  tls: {ca_file: /nonexistent/ca.pem}\n", "sip.tls.ca_file"},
		{"sip:\n  tls: {cert_file: /etc/hostname}\n", "sip.tls: cert_file and key_file go together"},
		{"sip:\n  external_ip: 1.2.3\n", "sip.external_ip"},
		{"clio:\n  region: mars\n", "clio.region"},
		{"clio:\n  answer_wait: soon\n", "bad duration"},
		{"clio:\n  match: fuzzy\n", "clio.match"},
		{"ivr:\n  menu: {\"1\": \"dial:5551234\"}\n", "ivr.menu.1"},
		{"ivr:\n  menu: {\"12\": \"operator\"}\n", "ivr.menu"},
		{"sip:\n  max_calls: 0\n", "sip.max_calls"},
		{"sip: [1,2]\n", "sip: want a mapping"},
		{"log:\n  format: xml\n", "log.format"},
		{"transfer:\n  fallback: pray\n", "transfer.fallback"},
		{"sip:\n  outbound_proxy: \"sip:a b\"\n", "sip.outbound_proxy"},
		{"::: not yaml", "config"},
		{"http:\n  token: same-token-0123456789\n  agent_token: same-token-0123456789\n", "http.agent_token: must differ"},
		{"http:\n  allowed_hosts: [\"https://matterline.firm.example\"]\n", "http.allowed_hosts"},
		{"http:\n  allowed_hosts: [\"*.firm.example\"]\n", "http.allowed_hosts"},
		{"http:\n  allowed_hosts: [\"\"]\n", "http.allowed_hosts"},
		{"http:\n  allowed_hosts: [\"a.example:99999\"]\n", "http.allowed_hosts"},
		{"http:\n  listen: 0.0.0.0:8080\n  loopback_open: true\n", "http.loopback_open"},
		{"routing:\n  allowed_destinations: [\"+1217555*\", \"tel:1\"]\n", `routing.allowed_destinations: bad destination pattern [1] "tel:1"`},
		{"routing:\n  allowed_destinations: [\"+1217555*\"]\nivr:\n  operator: \"+19005550123\"\n", `ivr.operator: "+19005550123" matches none of routing.allowed_destinations ["+1217555*"]`},
	}
	for _, tc := range cases {
		c := Default()
		err := Parse([]byte(tc.yaml), &c)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%q: accepted", tc.yaml)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: error %v does not wrap ErrInvalid", tc.yaml, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not name %q", tc.yaml, err, tc.want)
		}
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err %v", err)
	}
}

func TestPromptsDirThatIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x")
	os.WriteFile(f, []byte("x"), 0o600)
	c := Default()
	c.Media.PromptsDir = f
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("err %v", err)
	}
}

func TestAllKeysHasDesignKeys(t *testing.T) {
	have := map[string]bool{}
	for _, k := range AllKeys() {
		have[k] = true
	}
	for _, k := range []string{"sip.listen", "sip.external_ip", "sip.trusted_sources", "sip.outbound_proxy",
		"sip.service_number", "media.rtp_ports", "media.prompts_dir", "http.listen", "store.path",
		"clio.region", "clio.base_url", "clio.access_token", "clio.client_id", "clio.client_secret",
		"ivr.menu", "ivr.operator", "routing.allowed_destinations"} {
		if !have[k] {
			t.Errorf("DESIGN.md key %s missing", k)
		}
	}
}

func TestHTTPSecurityKeys(t *testing.T) {
	t.Setenv("MATTERLINE_HTTP_AGENT_TOKEN", "agent-from-env-0123456789")
	path := filepath.Join(t.TempDir(), "m.yaml")
	yaml := "http:\n  allowed_hosts: [\"matterline.firm.example\", \"10.0.0.5:8080\", \"[fd00::5]:8080\"]\n  loopback_open: true\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.AgentToken != "agent-from-env-0123456789" || !c.HTTP.LoopbackOpen || len(c.HTTP.AllowedHosts) != 3 {
		t.Fatalf("%+v", c.HTTP)
	}
	if d := Default(); d.HTTP.LoopbackOpen || d.HTTP.AgentToken != "" || len(d.HTTP.AllowedHosts) != 0 {
		t.Fatalf("defaults: %+v", d.HTTP)
	}
}
