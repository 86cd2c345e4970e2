package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/config"
)

// lockedBuffer is a bytes.Buffer safe to read while a command writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type clioCLI struct {
	t   *testing.T
	srv *cliotest.Server
	cfg string
	dir string
}

// newClioCLI starts the demo fake and writes a config pointing at it.
func newClioCLI(t *testing.T, extra string) *clioCLI {
	t.Helper()
	t.Setenv("MATTERLINE_CLIO_ACCESS_TOKEN", "")
	t.Setenv("MATTERLINE_CLIO_CLIENT_ID", "")
	t.Setenv("MATTERLINE_CLIO_CLIENT_SECRET", "")
	t.Setenv(clio.EnvSecretKey, "")
	t.Setenv(clio.EnvSecretKeyOld, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	fx, err := cliotest.DemoFixture()
	if err != nil {
		t.Fatal(err)
	}
	c := &clioCLI{t: t, srv: cliotest.NewServer(t, fx), dir: t.TempDir()}
	c.cfg = filepath.Join(c.dir, "matterline.yaml")
	mustCreateDB(t, filepath.Join(c.dir, "m.db"))
	body := fmt.Sprintf("store:\n  path: %q\nhttp:\n  listen: \"127.0.0.1:0\"\nclio:\n  base_url: %q\n%s",
		filepath.Join(c.dir, "m.db"), c.srv.URL, extra)
	if err := os.WriteFile(c.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *clioCLI) run(ctx context.Context, args ...string) (string, string, int) {
	var out, errb lockedBuffer
	code := run(ctx, append(args, "-config", c.cfg), stdio{&out, &errb})
	return out.String(), errb.String(), code
}

func (c *clioCLI) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(context.Background(), args...)
	if code != 0 {
		c.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

func TestClioLookupCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: demo-token\n")
	out := c.ok("clio", "lookup", "+12175552171", "--json")
	const found = `{"status":"found","contact":{"id":1001,"name":"Ada Quist"},"matter":{"id":101,"display_number":"00101-Quist"},"responsible_staff":{"id":501,"name":"Felix Dubinsky"}`
	want := found + `,"source":"clio"}` + "\n"
	if out != want {
		t.Fatalf("lookup --json\n got %s\nwant %s", out, want)
	}
	// Cached now: no request; --no-cache asks again. Flags in any order.
	before := c.srv.Requests()
	want = found + `,"source":"cache"}` + "\n"
	if out := c.ok("clio", "lookup", "--json", "(217) 555-2171"); out != want || c.srv.Requests() != before {
		t.Errorf("cached lookup: %s (%d requests)", out, c.srv.Requests()-before)
	}
	c.ok("clio", "lookup", "--no-cache", "2175552171")
	if c.srv.Requests() == before {
		t.Error("--no-cache made no request")
	}
	out = c.ok("clio", "lookup", "anonymous", "--json")
	if out != `{"status":"not_found","contact":null,"matter":null,"responsible_staff":null}`+"\n" {
		t.Errorf("withheld: %s", out)
	}
	out = c.ok("clio", "lookup", "+12175552171")
	for _, s := range []string{"found", "Ada Quist (id 1001)", "00101-Quist", "Felix Dubinsky (id 501)", "cached"} {
		if !strings.Contains(out, s) {
			t.Errorf("text output lacks %q:\n%s", s, out)
		}
	}
	c.srv.SetFaults(cliotest.Faults{Fail500: true})
	out, _, code := c.run(context.Background(), "clio", "lookup", "+13125550199", "--json")
	if code != 1 || !strings.HasPrefix(out, `{"status":"error"`) {
		t.Errorf("error lookup: exit %d %s", code, out)
	}
	if _, errs, code := c.run(context.Background(), "clio", "lookup"); code != 2 || !strings.Contains(errs, "wants NUMBER") {
		t.Errorf("usage: %d %s", code, errs)
	}
}

func TestClioLookupUnconfiguredCLI(t *testing.T) {
	c := newClioCLI(t, "")
	if out := c.ok("clio", "lookup", "+12175552171", "--json"); !strings.HasPrefix(out, `{"status":"unconfigured"`) {
		t.Errorf("%s", out)
	}
	out, errs, code := c.run(context.Background(), "clio", "status")
	if code != 1 || !strings.Contains(out, "connected:") || !strings.Contains(out, "no") || !strings.Contains(out, "clio connect") ||
		!strings.Contains(errs, "not connected") {
		t.Errorf("status: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := c.run(context.Background(), "clio", "disconnect"); code != 1 || !strings.Contains(errs, "not connected") {
		t.Errorf("disconnect: %d %s", code, errs)
	}
}

func TestClioStaffCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: demo-token\n")
	// A real rule in the same database serves Felix; `clio staff` must say so.
	c.ok("rules", "add", "felix", "--to", "+12175550101", "--staff-id", "501", "--staff", "Felix Dubinsky")
	var staff []staffJSON
	if err := json.Unmarshal([]byte(c.ok("clio", "staff", "--json")), &staff); err != nil {
		t.Fatal(err)
	}
	if len(staff) != 6 || staff[0].ID != 501 || staff[0].Rule != "felix" || staff[0].Phone != "+1 217-555-0101" || !staff[0].Enabled {
		t.Errorf("staff %+v", staff)
	}
	if staff[4].ID != 505 || staff[4].Enabled {
		t.Errorf("disabled user %+v", staff[4])
	}
	out := c.ok("clio", "staff")
	if !regexp.MustCompile(`501\s+Felix Dubinsky\s+\+1 217-555-0101\s+yes\s+felix`).MatchString(out) ||
		!regexp.MustCompile(`502\s+Marguerite Okafor.*\s-\n`).MatchString(out) {
		t.Errorf("staff table:\n%s", out)
	}
}

func TestClioConnectCLI(t *testing.T) {
	c := newClioCLI(t, "  client_id: demo-client-id\n  client_secret: demo-client-secret\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"clio", "connect", "--timeout", "15s", "-config", c.cfg}, stdio{&out, &errb})
	}()
	re := regexp.MustCompile(`http://\S+/oauth/authorize\?\S+`)
	var authURL string
	for authURL == "" {
		select {
		case code := <-done:
			t.Fatalf("connect exited %d early: %s %s", code, out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
		authURL = re.FindString(out.String())
	}
	// The "browser": fetch the authorize URL and follow the redirect to the
	// command's own callback listener.
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Morgan Reyes") {
		t.Fatalf("callback page %d %s", resp.StatusCode, page)
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "Connected to Clio as Morgan Reyes (user 506), region us.") {
			t.Fatalf("connect exit %d\n%s\n%s", code, out.String(), errb.String())
		}
	case <-ctx.Done():
		t.Fatal("connect did not finish")
	}
	var st clioStatusJSON
	status := c.ok("clio", "status", "--json")
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		t.Fatal(err)
	}
	tokens := c.srv.RefreshTokens()
	if !st.Connected || st.Mode != "oauth" || st.User == nil || st.User.ID != 506 || st.Token.Source != "oauth" ||
		st.Token.ExpiresAt == nil || st.Token.Refreshed || len(tokens) != 1 || strings.Contains(status, tokens[0]) ||
		strings.Contains(status, c.rawAccess()) {
		t.Errorf("status after connect: %s", status)
	}
	// Clio rejects the access token: the check refreshes it once and says so.
	c.srv.ExpireAccessTokens()
	st = c.status()
	if !st.Connected || !st.Token.Refreshed || st.User == nil || st.User.ID != 506 {
		t.Errorf("status after a refresh: %+v", st)
	}
	if strings.Contains(out.String()+errb.String(), tokens[0]) {
		t.Error("connect output shows the refresh token")
	}
	// The stored OAuth tokens serve lookups.
	if out := c.ok("clio", "lookup", "+12175552171", "--json"); !strings.Contains(out, `"status":"found"`) {
		t.Errorf("lookup with oauth tokens: %s", out)
	}
	c.ok("clio", "disconnect")
	if len(c.srv.RefreshTokens()) != 0 {
		t.Error("disconnect did not revoke at Clio")
	}
	if st = c.status(); st.Connected || st.Check != "not_connected" || st.CacheEntries != 0 {
		t.Errorf("status after disconnect: %+v", st)
	}
}

func TestClioConnectCanceled(t *testing.T) {
	c := newClioCLI(t, "  client_id: demo-client-id\n  client_secret: demo-client-secret\n")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, errs, code := c.run(ctx, "clio", "connect")
	if code != 1 || !strings.Contains(errs, "connect canceled") || time.Since(start) > 5*time.Second {
		t.Errorf("cancel: %d %s after %s", code, errs, time.Since(start))
	}
	// Without app credentials connect explains what is missing.
	c2 := newClioCLI(t, "")
	if _, errs, code := c2.run(context.Background(), "clio", "connect", "--region", "eu"); code != 1 || !strings.Contains(errs, "client_id") {
		t.Errorf("no credentials: %d %s", code, errs)
	}
	if _, _, code := c2.run(context.Background(), "clio", "connect", "--region", "mars"); code != 2 {
		t.Errorf("bad region: %d", code)
	}
}

func TestClioUserFromConfig(t *testing.T) {
	c := newClioCLI(t, "  access_token: demo-token\n")
	cfg, err := config.Load(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	name, phone, err := clioUserFromConfig(context.Background(), cfg, 502)
	if err != nil || name != "Marguerite Okafor" || phone != "(217) 555-0102" {
		t.Errorf("%q %q %v", name, phone, err)
	}
	if _, _, err := clioUserFromConfig(context.Background(), cfg, 999); err == nil {
		t.Error("unknown user found")
	}
}

func TestStartDemoClio(t *testing.T) {
	t.Setenv("MATTERLINE_CLIO_ACCESS_TOKEN", "")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.Path = filepath.Join(t.TempDir(), "m.db")
	var logs lockedBuffer
	log := newLogger(cfg.Log, &logs)
	stop, err := startDemoClio(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	db, err := openDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lk, done, err := openLookup(context.Background(), cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	r := lk.Lookup(context.Background(), "sip:+12175552171@127.0.0.1")
	b, _ := r.MarshalContract()
	if !strings.Contains(string(b), `"display_number":"00101-Quist"`) || !strings.Contains(string(b), `"id":501`) {
		t.Errorf("demo caller: %s", b)
	}
	if !strings.Contains(logs.String(), "SANDBOX") || strings.Contains(logs.String(), "demo-token") {
		t.Errorf("demo log: %s", logs.String())
	}
}

func TestClioOAuthHandlerForServer(t *testing.T) {
	c := newClioCLI(t, "  client_id: demo-client-id\n  client_secret: demo-client-secret\n")
	cfg, err := config.Load(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	defer web.Close()
	cfg.Clio.RedirectURL = web.URL + clio.CallbackPath
	h, err := clioOAuthHandler(context.Background(), cfg, db, newLogger(cfg.Log, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(clio.StartPath, h)
	mux.Handle(clio.CallbackPath, h)
	// The lookup of the running server, built before the connection exists.
	lk, done, err := openLookup(context.Background(), cfg, db, newLogger(cfg.Log, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if r := lk.Lookup(context.Background(), "+12175552171"); r.Status.String() != "unconfigured" {
		t.Fatalf("before connect: %+v", r)
	}
	resp, err := http.Get(web.URL + clio.StartPath)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Clio connected as Morgan Reyes") {
		t.Fatalf("browser flow: %d %s", resp.StatusCode, page)
	}
	if r := lk.Lookup(context.Background(), "+12175552171"); r.Status.String() != "found" {
		t.Fatalf("after connect, without restart: %+v", r)
	}
	if out := c.ok("clio", "status"); !strings.Contains(out, "Morgan Reyes (id 506, admin@quist-law.example)") {
		t.Errorf("status: %s", out)
	}
}

// rules add --from-clio-user reads the user from (fake) Clio through the real client.
func TestRulesAddFromClioUserAgainstFake(t *testing.T) {
	c := newClioCLI(t, "  access_token: demo-token\n")
	c.ok("rules", "add", "felix", "--from-clio-user", "501", "--mode", "warm")
	var r map[string]any
	if err := json.Unmarshal([]byte(c.ok("rules", "show", "felix", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r["staff"] != "Felix Dubinsky" || r["staff_id"] != float64(501) || r["to"] != "+12175550101" || r["mode"] != "warm" {
		t.Errorf("rule from clio user: %v", r)
	}
}

// `clio sync` builds the index; with clio.index on, `clio lookup` answers from
// it without a request.
func TestClioSyncCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: demo-token\n  index: true\n")
	out := c.ok("clio", "sync", "--json")
	var sum struct {
		Contacts, Matters, Requests int
		Ready, Resumed              bool
		IndexEnabled                bool `json:"index_enabled"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("sync --json: %v\n%s", err, out)
	}
	if sum.Contacts == 0 || sum.Matters == 0 || !sum.Ready || sum.Resumed || !sum.IndexEnabled || sum.Requests < 2 {
		t.Fatalf("summary: %s", out)
	}
	before := c.srv.Requests()
	out = c.ok("clio", "lookup", "+12175552171", "--json")
	if !strings.Contains(out, `"status":"found"`) || !strings.HasSuffix(out, `,"source":"index"}`+"\n") || c.srv.Requests() != before {
		t.Fatalf("lookup after sync: %s (%d requests)", out, c.srv.Requests()-before)
	}
	// Text output; stderr is no terminal: no progress line.
	out, errs, code := c.run(context.Background(), "clio", "sync")
	if code != 0 || !strings.HasPrefix(out, "Synced: ") || errs != "" {
		t.Fatalf("sync: %d %q %q", code, out, errs)
	}
}
