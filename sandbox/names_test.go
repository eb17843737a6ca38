package sandbox

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
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
