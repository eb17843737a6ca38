package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/vibesandbox/vibe/gateway"
	"github.com/vibesandbox/vibe/internal/safetext"
)

// gatewayServeCmd runs inside the gateway instance, started by its systemd
// unit; it is the same binary as vibe, pushed there by vibe.
type gatewayServeCmd struct {
	Listen string `required:"" help:"Address and port on the sandbox bridge." placeholder:"ADDR:PORT"`
	Bridge string `help:"The sandbox bridge's prefix: never a destination." placeholder:"PREFIX"`
	State  string `required:"" help:"State folder (memory-backed): sandboxes/ADDRESS/*.json." placeholder:"DIR"`
	Log    string `required:"" help:"Folder of the egress logs (ADDRESS.jsonl, JSON lines)." placeholder:"DIR"`
	Ranges string `required:"" help:"File of the host's addresses and the private prefixes allowed names may reach (JSON, rewritten by vibe, read again as it changes)." placeholder:"FILE"`
}

func (g *gatewayServeCmd) Run() error {
	listen, err := netip.ParseAddrPort(g.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var bridge netip.Prefix
	if g.Bridge != "" {
		if bridge, err = netip.ParsePrefix(g.Bridge); err != nil {
			return fmt.Errorf("--bridge: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return gateway.Serve(ctx, gateway.Options{Listen: listen, Bridge: bridge, Ranges: g.Ranges, State: g.State, Log: g.Log})
}

// logCmd shows the sandbox's egress log, kept by its gateway.
type logCmd struct {
	Follow bool `short:"f" help:"Keep printing new entries as they come."`
	Denied bool `help:"Only the requests the gateway refused."`
	JSON   bool `name:"json" help:"One JSON object a line."`
}

func (l *logCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	if s.spec.Gateway == nil {
		return fmt.Errorf("the egress log is kept by the egress gateway, which is off: set egress.gateway.enabled: true (sandboxes are then made behind it)")
	}
	enc := json.NewEncoder(safetext.JSON(os.Stdout))
	return s.mgr.EgressLog(s.ctx, s.spec, l.Follow, func(e gateway.Entry) error {
		if e.Sandbox != s.spec.Name || (l.Denied && e.Allowed) {
			return nil
		}
		if l.JSON {
			return enc.Encode(e)
		}
		verdict, hint := "allow", ""
		if !e.Allowed {
			verdict = "DENY "
			hint = "  (" + safetext.Line(e.Reason) + ")"
			if e.Reason == gateway.ReasonNotAllowed {
				hint += "  vibe allow =" + safetext.Line(e.Host)
			}
		}
		target := safetext.Line(e.Host)
		if e.Port != "" {
			target += ":" + safetext.Line(e.Port)
		}
		_, err := fmt.Printf("%s  %s  %-7s %s%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), verdict, safetext.Line(e.Method), target, hint)
		return err
	})
}
