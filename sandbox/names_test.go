package sandbox

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
)

// instances is a daemon holding these instances, by name.
type instances struct {
	incus.InstanceServer
	all []api.Instance
}

func (f *instances) GetInstance(name string) (*api.Instance, string, error) {
	for i := range f.all {
		if f.all[i].Name == name {
			return &f.all[i], "etag", nil
		}
	}
	return nil, "", api.StatusErrorf(http.StatusNotFound, "Instance not found")
}

func (f *instances) GetInstances(api.InstanceType) ([]api.Instance, error) { return f.all, nil }

func (f *instances) GetImageAlias(string) (*api.ImageAliasesEntry, string, error) {
	return nil, "", api.StatusErrorf(http.StatusNotFound, "Image alias not found")
}

func instance(name string, config ...string) api.Instance {
	c := map[string]string{}
	for i := 0; i+1 < len(config); i += 2 {
		c[config[i]] = config[i+1]
	}
	return api.Instance{Name: name, InstancePut: api.InstancePut{Config: c}}
}

// A sandbox is the one live instance that carries its name: its own
// instance name before any restore (or from before the key), another one's
// after. What a restore marked for deletion never stands in for it.
func TestSandboxInstanceIsFoundByItsName(t *testing.T) {
	const sb, own, discarded = KeySandbox, KeyName, KeyDiscarded
	for _, tc := range []struct {
		name string
		all  []api.Instance
		want string // the instance, or an error's words
	}{
		{"never restored", []api.Instance{instance("app", sb, "true", own, "app")}, "app"},
		{"made before the name key", []api.Instance{instance("app", sb, "true")}, "app"},
		{"restored", []api.Instance{instance("app-r17", sb, "true", own, "app")}, "app-r17"},
		{"being restored", []api.Instance{instance("app", sb, "true", own, "app", discarded, "now"), instance("app-r17", sb, "true", own, "app")}, "app-r17"},
		{"restored, the old one left", []api.Instance{instance("app", sb, "true", discarded, "now"), instance("app-r17", sb, "true", own, "app")}, "app-r17"},
		{"only a discarded one", []api.Instance{instance("app", sb, "true", own, "app", discarded, "now")}, "no such sandbox"},
		{"none", nil, "no such sandbox"},
		{"another sandbox's instance has the name", []api.Instance{instance("app", sb, "true", own, "web")}, `holds sandbox "web"`},
		{"not a sandbox", []api.Instance{instance("app")}, "not a vibe sandbox"},
		{"another sandbox's key on a sandbox's name", []api.Instance{instance("app-r1", sb, "true", own, "web")}, "no such sandbox"},
		{"a key without the sandbox mark", []api.Instance{instance("x", own, "app")}, "no such sandbox"},
		{"two restores at once", []api.Instance{instance("app-r1", sb, "true", own, "app"), instance("app-r2", sb, "true", own, "app")}, "app-r1, app-r2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{C: &instances{all: tc.all}}
			inst, err := m.Get("app")
			switch {
			case err == nil && inst.Name != tc.want:
				t.Errorf("Get found %s, want %s", inst.Name, tc.want)
			case err != nil && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Get: %v, want %q", err, tc.want)
			case err == nil && m.id("app") != tc.want:
				t.Errorf("id = %s, want %s", m.id("app"), tc.want)
			}
			if tc.want == "no such sandbox" && !errors.Is(err, ErrNotFound) {
				t.Errorf("Get: %v, want ErrNotFound", err)
			}
		})
	}
}

// vibe ls names sandboxes, not their instances, and leaves out what a
// restore discarded.
func TestListNamesSandboxes(t *testing.T) {
	m := &Manager{C: &instances{all: []api.Instance{
		instance("app", KeySandbox, "true", KeyName, "app", KeyDiscarded, "now"),
		instance("app-r17", KeySandbox, "true", KeyName, "app"),
		instance("old", KeySandbox, "true"),
		instance("other"),
	}}}
	got, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range got {
		names = append(names, in.Name)
	}
	if strings.Join(names, " ") != "app old" {
		t.Errorf("vibe ls lists %q, want app and old", names)
	}
}

// recording is a daemon that records what is asked of which instance.
type recording struct {
	instances
	calls []string
}

func (f *recording) UpdateInstance(name string, put api.InstancePut, etag string) (incus.Operation, error) {
	f.calls = append(f.calls, "update "+name)
	return &doneOp{}, nil
}

func (f *recording) UpdateInstanceState(name string, put api.InstanceStatePut, etag string) (incus.Operation, error) {
	f.calls = append(f.calls, put.Action+" "+name)
	return &doneOp{}, nil
}

// Another vibe found the sandbox before a restore marked its instance
// discarded, and goes on from what it found: it neither starts that
// instance nor gives it mounts, a port, a firewall state or an allowlist
// entry. (From the review of the restore under a name of its own.)
func TestDiscardedInstanceIsNeverChanged(t *testing.T) {
	inst := instance("app", KeySandbox, "true", KeyName, "app")
	f := &recording{instances: instances{all: []api.Instance{inst}}}
	m := &Manager{C: f}
	if _, err := m.Get("app"); err != nil {
		t.Fatal(err)
	}
	f.all[0].Config[KeyDiscarded] = "now" // vibe restore, in another process
	f.all[0].StatusCode = api.Running
	ctx := context.Background()
	s := &Spec{Name: "app"}
	for what, err := range map[string]error{
		"start":   m.start(ctx, "app"),
		"mounts":  m.applyMounts(ctx, s, map[string]map[string]string{"vibe-ws-1": {"type": "disk", "source": "/src", "path": "/workspace/app"}}),
		"detach":  m.detachMounts(ctx, "app"),
		"forward": m.Forward(ctx, "app", Port{Guest: 80, Host: 8080}),
		"unport":  m.Unforward(ctx, "app", 8080),
		"allow":   m.Allow(ctx, s, allowlist.Entry{Pattern: "example.com"}),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s on a discarded instance: %v, want ErrNotFound", what, err)
		}
	}
	if _, err := m.Firewall(ctx, s, "off"); !errors.Is(err, ErrNotFound) {
		t.Errorf("firewall off on a discarded instance: %v, want ErrNotFound", err)
	}
	if len(f.calls) > 0 {
		t.Errorf("a discarded instance was asked to change: %q", f.calls)
	}
}

// A restore whose kill failed, or a vibe ended hard after the discard,
// leaves only a discarded instance: vibe rm removes it.
func TestRmRemovesALoneDiscardedInstance(t *testing.T) {
	m := &Manager{C: &instances{all: []api.Instance{instance("app", KeySandbox, "true", KeyName, "app", KeyDiscarded, "now")}}}
	if got := m.discarded("app"); len(got) != 1 || got[0] != "app" {
		t.Fatalf("discarded = %q, want app", got)
	}
}

// vibe up between a restore's discard of the old instance and its create of
// the new one finds none, and says so instead of making a second. (From a
// review: both were then refused as two instances of one sandbox.)
func TestUpWaitsForARestore(t *testing.T) {
	now := time.Now().UTC().Format(time.RFC3339)
	m := &Manager{C: &instances{all: []api.Instance{instance("app", KeySandbox, "true", KeyName, "app", KeyDiscarded, now)}}}
	if _, err := m.Up(context.Background(), &Spec{Name: "app"}); err == nil || !strings.Contains(err.Error(), "vibe restore of app is under way") {
		t.Errorf("up during a restore: %v", err)
	}
}

// A discard mark is a restore under way for restoreTime, not before it (a
// clock stepped back, another host's skewed clock) nor after. (From a
// review: a mark a day ahead held vibe up off for that day.)
func TestRestoreUnderWay(t *testing.T) {
	for d, want := range map[time.Duration]bool{
		-10 * time.Second: true, -10 * time.Minute: false, 24 * time.Hour: false,
	} {
		if got := underWay(time.Now().Add(d)); got != want {
			t.Errorf("marked %v from now: under way %v, want %v", d, got, want)
		}
	}
}
