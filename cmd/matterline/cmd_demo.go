package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/configs"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

func (c *cli) newDemoCmd() *cobra.Command {
	var call, agent, agentSIP bool
	cmd := &cobra.Command{
		Use:   "demo [--call | --agent | --agent-sip]",
		Short: "Run the server on loopback with a sandbox Clio and sample rules",
		Long: `Run matterline on this machine only (loopback SIP and HTTP, a throw-away
database) with a SANDBOX Clio holding demo clients and matters and a set of
sample rules, and print how to call it from a softphone. The demo writes its
own configuration file next to its database (removed when it stops) and prints
commands that use it from another terminal while it runs: rules list, rules
test, clio staff, calls, health and a curl of the control API. With --call,
place a scripted call with built-in test phones instead, print each step and
stop. With --agent, the scripted call goes to a reference media-stream agent
run in this process (agent.mode first, agent.stream_url), which greets the
caller, reads the lookup back and transfers the call through the HTTP API.
With --agent-sip, the same through the reference SIP agent (agent.uri): it
reads the lookup from the INVITE's X-Matterline-* headers and transfers with
REFER to staff-NAME.`,
		Example: "  matterline demo\n  matterline demo --call\n  matterline demo --agent\n  matterline demo --agent-sip",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.demo(cmd.Context(), call, agent, agentSIP)
		},
	}
	cmd.Flags().BoolVar(&call, "call", false, "also place a scripted call with built-in test phones, print each step, then stop")
	cmd.Flags().BoolVar(&agent, "agent", false, "place the scripted call through the reference media-stream agent, print each step, then stop")
	cmd.Flags().BoolVar(&agentSIP, "agent-sip", false, "place the scripted call through the reference SIP agent (INVITE, REFER), print each step, then stop")
	cmd.MarkFlagsMutuallyExclusive("call", "agent", "agent-sip")
	return cmd
}

func (c *cli) demo(ctx context.Context, call, agent, agentSIP bool) error {
	s := c.stdio
	cfg, err := c.loadExplicit()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "matterline-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := demoConfig(cfg, dir); err != nil {
		return err
	}
	tokens, err := demoTokens(cfg)
	if err != nil {
		return err
	}
	if agent || agentSIP {
		return demoAgentCall(ctx, s, cfg, dir, agentSIP)
	}
	if call {
		return demoCall(ctx, s, cfg, dir)
	}
	log := newLogger(cfg.Log, s.err)
	stopClio, err := startDemoClio(cfg, log)
	if err != nil {
		return err
	}
	defer stopClio()
	if err := importDemoRules(ctx, cfg); err != nil {
		return err
	}
	return serve(ctx, s, cfg, "", func(a *app) {
		hostport := strings.TrimPrefix(a.sip.Addrs()[0], "udp://")
		fmt.Fprintf(s.out, `matterline demo is running: SANDBOX Clio with demo data, sample rules, database %s

Call it from a softphone on this machine: sip:demo@%s (UDP or TCP), PCMU or PCMA,
DTMF by RFC 4733 or SIP INFO. Set your softphone's caller ID to %s (Ada Quist,
matter 00101-Quist, responsible staff Felix Dubinsky) to be recognised. In the menu press
1 for your attorney or 0 for the operator.
With sipp:   sipp -sn uac -s demo -m 1 %s

`, cfg.Store.Path, hostport, demoCaller, hostport)
		if pg, err := newPlayground(cfg, dir, a.sip.Addrs(), a.HTTPAddr()); err != nil {
			fmt.Fprintf(s.err, "matterline demo: no configuration file for the CLI: %v\n", err)
		} else {
			pg.print(s.out)
		}
		fmt.Fprintf(s.out, `
Sandbox Clio: %s  token %s  (the built-in fake with demo data, not a real Clio)
Control API:  http://%s/v1/calls  metrics http://%s/metrics
%sPress Ctrl-C to stop.
`, cfg.Clio.BaseURL, cfg.Clio.AccessToken, a.HTTPAddr(), a.HTTPAddr(), tokens)
	})
}

// demoTokens gives the demo's API the tokens it lacks (http.token,
// http.agent_token), fresh random ones for this run only, and returns the
// lines that show the generated ones. State-changing routes never open
// without a token, and the demo does not turn on http.loopback_open.
func demoTokens(cfg *config.Config) (string, error) {
	var b strings.Builder
	for _, t := range []struct {
		dst        *string
		name, what string
	}{
		{&cfg.HTTP.Token, "Admin token:", "every route"},
		{&cfg.HTTP.AgentToken, "Agent token:", "read calls, transfer to rules"},
	} {
		if *t.dst != "" {
			continue
		}
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return "", fmt.Errorf("demo token: %w", err)
		}
		*t.dst = "demo-" + hex.EncodeToString(raw)
		fmt.Fprintf(&b, "%-13s %s  (%s; this run only)\n", t.name, *t.dst, t.what)
	}
	return b.String(), nil
}

// demoConfig keeps the demo on loopback with a throw-away database in dir: it never
// touches a real database or listens beyond this machine.
func demoConfig(cfg *config.Config, dir string) error {
	cfg.Store.Path = filepath.Join(dir, "demo.db")
	cfg.Transfer.MessagesDir = filepath.Join(dir, "messages")
	port := "5060"
	if !portFree("127.0.0.1:5060") {
		port = "0"
	}
	cfg.SIP.Listen = []string{"udp://127.0.0.1:" + port, "tcp://127.0.0.1:" + port}
	cfg.SIP.TrustedSources = []string{"127.0.0.0/8", "::1/128"}
	cfg.SIP.ExternalIP = ""
	if cfg.SIP.OutboundProxy == "" {
		cfg.SIP.OutboundProxy = "sip:127.0.0.1:5070"
	}
	if cfg.SIP.ServiceNumber == "" {
		cfg.SIP.ServiceNumber = "+12175550100"
	}
	if cfg.IVR.Operator == "" {
		cfg.IVR.Operator = "+12175550100"
	}
	if !portFree(cfg.HTTP.Listen) {
		cfg.HTTP.Listen = "127.0.0.1:0"
	}
	// The sandbox Clio shows what write-back writes (`matterline clio outbox`).
	wb := &cfg.Clio.Writeback
	wb.Communication, wb.TimeEntry, wb.Task, wb.Document = true, true, true, true
	return cfg.Validate()
}

// importDemoRules loads the sample rules into the demo database.
func importDemoRules(ctx context.Context, cfg *config.Config) error {
	data, err := configs.Demo.ReadFile(configs.DemoRules)
	if err != nil {
		return err
	}
	rules, closures, err := routing.ParseDoc(data, firmOf(cfg))
	if err != nil {
		return fmt.Errorf("demo rules: %w", err)
	}
	db, err := store.Open(cfg.Store.Path)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := routing.NewStore(ctx, db, firmOf(cfg))
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.Import(ctx, rules, closures, false)
	return err
}

// portFree reports whether both UDP and TCP can bind addr right now.
func portFree(addr string) bool {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}
