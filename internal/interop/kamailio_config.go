package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// kamailioConfig is a minimal stateful proxy. Its in-dialog handling is the
// stock kamailio.cfg's route[WITHINDLG], strict: an in-dialog request is relayed
// only when loose_route() finds a Route to this proxy; an ACK without one only
// when it matches a transaction; anything else is dropped (404 "Not here").
var kamailioConfig = template.Must(template.New("kamailio.cfg").Parse(`#!KAMAILIO
# Written by matterline's internal/interop for one test run.
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=1
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
listen=udp:127.0.0.1:{{.Port}}
{{- if .TCP}}
listen=tcp:127.0.0.1:{{.Port}}
tcp_children=1
{{- else}}
disable_tcp=yes
{{- end}}

mpath="{{.ModulePath}}"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
{{- if .AuthPassword}}
loadmodule "auth.so"
{{- end}}

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (is_method("OPTIONS") && uri == myself && $rU == $null) {
		sl_send_reply("200", "Keepalive");
		exit;
	}
	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			xlog("L_NOTICE", "{{.Marker}}initial|$rm|$ci|$ru\n");
			t_relay();
		}
		exit;
	}
	if (has_totag()) {
		route(WITHINDLG);
		exit;
	}
	# Absorb retransmissions of initial requests.
	if (!is_method("ACK")) {
		t_check_trans();
	}
{{- if .AuthPassword}}
	if (is_method("INVITE")) {
		if (!pv_proxy_authenticate("$fd", "{{.AuthPassword}}", "0")) {
			xlog("L_NOTICE", "{{.Marker}}challenged|$rm|$ci|$ru\n");
			proxy_challenge("$fd", "0");
			exit;
		}
		consume_credentials();
	}
{{- end}}
	# The dialog's route set starts here: drop preloaded routes (an outbound
	# proxy's own Route header).
	remove_hf("Route");
{{- if .RecordRoute}}
	if (is_method("INVITE|SUBSCRIBE|REFER")) {
		record_route();
	}
{{- end}}
{{- if .Forward}}
	$du = "sip:{{.Forward}}{{if .TCP}};transport=tcp{{end}}";
{{- else}}
	if (uri == myself) {
		xlog("L_NOTICE", "{{.Marker}}to-self|$rm|$ci|$ru\n");
		sl_send_reply("404", "Not here");
		exit;
	}
{{- end}}
	xlog("L_NOTICE", "{{.Marker}}initial|$rm|$ci|$ru\n");
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

route[WITHINDLG] {
	if (loose_route()) {
		xlog("L_NOTICE", "{{.Marker}}loose|$rm|$ci|$ru\n");
		if (!t_relay()) {
			sl_reply_error();
		}
		exit;
	}
	if (is_method("ACK")) {
		if (t_check_trans()) {
			xlog("L_NOTICE", "{{.Marker}}transaction|$rm|$ci|$ru\n");
			t_relay();
			exit;
		}
		xlog("L_NOTICE", "{{.Marker}}dropped|$rm|$ci|$ru\n");
		exit;
	}
	xlog("L_NOTICE", "{{.Marker}}dropped|$rm|$ci|$ru\n");
	sl_send_reply("404", "Not here");
	exit;
}
`))

// kamailioModulePath is Debian's module directory.
const kamailioModulePath = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

func writeKamailioConfig(path string, port int, opts KamailioOptions) error {
	modules := kamailioModulePath
	if m, err := filepath.Glob("/usr/lib/*/kamailio/modules/"); err == nil && len(m) > 0 {
		modules = m[0]
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("interop: kamailio config: %w", err)
	}
	err = kamailioConfig.Execute(f, map[string]any{
		"Port":         port,
		"TCP":          opts.Transport == TransportTCP,
		"RecordRoute":  opts.RecordRoute,
		"Forward":      opts.Forward,
		"AuthPassword": opts.AuthPassword,
		"ModulePath":   modules,
		"Marker":       logMarker,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("interop: kamailio config: %w", err)
	}
	return nil
}
