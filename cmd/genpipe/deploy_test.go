//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/internal/testutil"
)

// The Dockerfile, deploy/docker-compose.yml and deploy/k8s/ cannot be run
// here (no Docker, no cluster), so these tests check what can be checked
// without them: the files parse, every command and flag they give genpipe
// exists, every GENPIPE_* variable they set is one that command reads, the
// settings agree with each other, and the genpipe services start with the
// compose file's settings (rewritten to loopback, against genpipe's own
// stand-ins for Kafka and S3) and take a request through.

func deployDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(packageDir(t), "..", "..", "deploy")
}

// TestDeployFilesParse decodes every YAML document under deploy/.
func TestDeployFilesParse(t *testing.T) {
	var files []string
	err := filepath.WalkDir(deployDir(t), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) < 2 {
		t.Fatalf("YAML files under deploy/: %v, %v", files, err)
	}
	for _, path := range files {
		docs := decodeYAML[map[string]any](t, path)
		for i, doc := range docs {
			if filepath.Base(filepath.Dir(path)) != "k8s" {
				continue
			}
			if doc["apiVersion"] == nil || doc["kind"] == nil {
				t.Errorf("%s: document %d has no apiVersion or kind", path, i+1)
			}
			if meta, _ := doc["metadata"].(map[string]any); doc["kind"] != "Kustomization" && (meta == nil || meta["name"] == nil) {
				t.Errorf("%s: document %d (%v) has no metadata.name", path, i+1, doc["kind"])
			}
		}
	}
}

// TestDockerfile checks what the image build relies on.
func TestDockerfile(t *testing.T) {
	root := filepath.Join(packageDir(t), "..", "..")
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(data)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if !strings.Contains(dockerfile, "FROM golang:"+string(goVersion[1])) {
		t.Errorf("the build stage is not FROM golang:%s (go.mod's Go)", goVersion[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/genpipe", `ENTRYPOINT ["/usr/local/bin/genpipe"]`} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER (\d+)(:\d+)?$`).FindStringSubmatch(dockerfile)
	if user == nil || user[1] == "0" {
		t.Errorf("Dockerfile: want a numeric non-root USER (Kubernetes' runAsNonRoot checks it), got %q", user)
	}
	// Every binary the deployment files run from the image is built into it.
	compose := loadCompose(t)
	for name, svc := range compose.Services {
		if svc.Healthcheck == nil || len(svc.Healthcheck.Test) < 2 {
			continue
		}
		if bin, ok := strings.CutPrefix(svc.Healthcheck.Test[1], "/usr/local/bin/"); ok && svc.isGenpipe() {
			if !strings.Contains(dockerfile, "-o /out/"+bin+" ") {
				t.Errorf("compose service %s runs /usr/local/bin/%s, which the Dockerfile does not build", name, bin)
			}
		}
	}
}

// TestDeployConfigIsRead checks every genpipe command line and GENPIPE_*
// variable in the compose file and the Kubernetes manifests against the
// flag sets of the binary.
func TestDeployConfigIsRead(t *testing.T) {
	flags := deployFlagSets(t)
	compose := loadCompose(t)
	for name, svc := range compose.Services {
		if !svc.isGenpipe() {
			continue
		}
		where := "docker-compose.yml service " + name
		cmd := checkCommandLine(t, flags, where, svc.Command)
		for env := range svc.Environment {
			checkEnvRead(t, flags, where, env, cmd)
		}
	}

	k := loadK8s(t)
	shared := map[string][]string{} // ConfigMap or Secret key -> commands that load it
	for _, d := range k.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image != "genpipe" {
				continue
			}
			where := fmt.Sprintf("k8s Deployment %s container %s", d.Name, c.Name)
			cmd := checkCommandLine(t, flags, where, c.Args)
			for _, e := range c.Env {
				checkEnvRead(t, flags, where, e.Name, cmd)
			}
			for _, from := range c.EnvFrom {
				var keys map[string]string
				switch {
				case from.ConfigMapRef != nil:
					keys = k.configMaps[from.ConfigMapRef.Name]
				case from.SecretRef != nil:
					keys = k.secrets[from.SecretRef.Name]
				}
				if keys == nil {
					t.Errorf("%s: envFrom %+v names no ConfigMap or Secret in deploy/k8s", where, from)
				}
				for key := range keys {
					shared[key] = append(shared[key], cmd)
				}
			}
			checkProbePorts(t, where, c, k)
		}
	}
	// A shared key is fine when at least one of the commands loading it reads it.
	for key, cmds := range shared {
		if !slices.ContainsFunc(cmds, func(cmd string) bool { return flags[cmd].env[key] }) {
			t.Errorf("k8s ConfigMap/Secret key %s is read by none of the commands that load it (%v)", key, slices.Compact(slices.Sorted(slices.Values(cmds))))
		}
	}
	checkScaledObjects(t, k)
}

// checkCommandLine checks that a command line (without the genpipe
// entrypoint) names a command and flags that exist; it returns the
// command's reference name ("worker", "dlq list").
func checkCommandLine(t *testing.T, flags map[string]commandFlagSet, where string, args []string) string {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no command (the image's entrypoint is genpipe; it needs a command)", where)
		return ""
	}
	name := args[0]
	rest := args[1:]
	if subs, ok := subcommands[name]; ok && len(rest) > 0 && slices.Contains(subs, rest[0]) {
		name, rest = name+" "+rest[0], rest[1:]
	}
	fs, ok := flags[name]
	if !ok {
		t.Errorf("%s: genpipe has no command %q", where, name)
		return name
	}
	for _, a := range rest {
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !fs.flags[flagName] {
			t.Errorf("%s: genpipe %s has no flag -%s", where, name, flagName)
		}
	}
	return name
}

func checkEnvRead(t *testing.T, flags map[string]commandFlagSet, where, env, cmd string) {
	t.Helper()
	switch {
	case flags[cmd].env[env]:
	case !strings.HasPrefix(env, "GENPIPE_"):
		t.Errorf("%s sets %s: genpipe reads only GENPIPE_* variables", where, env)
	default:
		t.Errorf("%s sets %s, which genpipe %s does not read (docs/configuration.md lists what it does)", where, env, cmd)
	}
}

// checkProbePorts checks that a container's HTTP probes reach the port its
// listen address variable names.
func checkProbePorts(t *testing.T, where string, c corev1.Container, k k8sManifests) {
	t.Helper()
	listens := containerListens(c, k)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want HTTP liveness and readiness probes", where)
			continue
		}
		port := containerPort(c, p.HTTPGet.Port)
		if _, ok := listens[port]; !ok {
			t.Errorf("%s: probe %s on port %s (%d), which no GENPIPE_ADDR or GENPIPE_METRICS_ADDR listens on", where, p.HTTPGet.Path, p.HTTPGet.Port.String(), port)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", where, c.Resources)
	}
}

// containerListens returns the ports a genpipe container listens on, by
// the variable that says so (GENPIPE_ADDR, GENPIPE_METRICS_ADDR), from its
// env and the ConfigMaps it loads.
func containerListens(c corev1.Container, k k8sManifests) map[int32]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			maps.Copy(env, k.configMaps[from.ConfigMapRef.Name])
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	listens := map[int32]string{}
	for _, key := range []string{"GENPIPE_ADDR", "GENPIPE_METRICS_ADDR"} {
		if _, port, err := net.SplitHostPort(env[key]); err == nil {
			n, _ := strconv.Atoi(port)
			listens[int32(n)] = key
		}
	}
	return listens
}

// containerPort returns the number of a container's port given by name or
// number, 0 when the container has no such port.
func containerPort(c corev1.Container, port intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	return 0
}

// checkScaledObjects checks that each KEDA ScaledObject watches the group
// and topic of the Deployment it scales, at the brokers genpipe uses, and
// never asks for more replicas than there are partitions.
func checkScaledObjects(t *testing.T, k k8sManifests) {
	t.Helper()
	if len(k.scaledObjects) == 0 {
		t.Error("deploy/k8s has no KEDA ScaledObject")
	}
	config := k.configMaps["genpipe-config"]
	partitions, err := strconv.Atoi(config["GENPIPE_PARTITIONS"])
	if err != nil {
		t.Fatalf("genpipe-config GENPIPE_PARTITIONS: %v", err)
	}
	topics := genpipe.DefaultTopics()
	want := map[string][2]string{ // stage -> group, topic
		"check":    {groupCheck, topics.Requests},
		"generate": {groupGenerate, topics.Checked},
	}
	for _, so := range k.scaledObjects {
		where := "k8s ScaledObject " + so.Metadata.Name
		var stage string
		for _, d := range k.deployments {
			if d.Name == so.Spec.ScaleTargetRef.Name {
				args := d.Spec.Template.Spec.Containers[0].Args
				if i := slices.Index(args, "--stage"); i >= 0 && i+1 < len(args) {
					stage = args[i+1]
				}
			}
		}
		if _, ok := want[stage]; !ok {
			t.Errorf("%s scales %q, not a worker Deployment with --stage", where, so.Spec.ScaleTargetRef.Name)
			continue
		}
		if so.Spec.MaxReplicaCount < 1 || so.Spec.MaxReplicaCount > partitions {
			t.Errorf("%s: maxReplicaCount %d, want 1 to the partition count %d (more replicas would idle)", where, so.Spec.MaxReplicaCount, partitions)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "kafka" {
				t.Errorf("%s: trigger %q, want kafka", where, tr.Type)
				continue
			}
			m := tr.Metadata
			if m["consumerGroup"] != want[stage][0] || m["topic"] != want[stage][1] {
				t.Errorf("%s: watches group %q topic %q, want %q %q (the %s workers')", where, m["consumerGroup"], m["topic"], want[stage][0], want[stage][1], stage)
			}
			if m["bootstrapServers"] != config["GENPIPE_KAFKA_BROKERS"] {
				t.Errorf("%s: bootstrapServers %q, but genpipe-config says %q", where, m["bootstrapServers"], config["GENPIPE_KAFKA_BROKERS"])
			}
			if n, err := strconv.Atoi(m["lagThreshold"]); err != nil || n < 1 {
				t.Errorf("%s: lagThreshold %q, want a positive number", where, m["lagThreshold"])
			}
			checkKEDAKafkaAuth(t, where, m, tr.AuthenticationRef, config, k)
		}
	}
}

// checkKEDAKafkaAuth checks that KEDA connects to Kafka as genpipe does:
// TLS and SASL mechanism as genpipe-config says, with the user and password
// genpipe-secrets holds.
func checkKEDAKafkaAuth(t *testing.T, where string, m map[string]string, auth *k8sMeta, config map[string]string, k k8sManifests) {
	t.Helper()
	tlsOn, _ := strconv.ParseBool(config["GENPIPE_KAFKA_TLS"])
	if (m["tls"] == "enable") != tlsOn {
		t.Errorf("%s: tls %q, but genpipe-config has GENPIPE_KAFKA_TLS %q", where, m["tls"], config["GENPIPE_KAFKA_TLS"])
	}
	// KEDA's names for genpipe's -kafka-sasl-mechanism values.
	sasl := map[string]string{"": "", "PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
	mech := config["GENPIPE_KAFKA_SASL_MECHANISM"]
	want, ok := sasl[mech]
	if !ok || m["sasl"] != want {
		t.Errorf("%s: sasl %q, but genpipe-config has GENPIPE_KAFKA_SASL_MECHANISM %q", where, m["sasl"], mech)
	}
	if mech == "" {
		return
	}
	if auth == nil {
		t.Errorf("%s: SASL without an authenticationRef", where)
		return
	}
	ta, ok := k.triggerAuths[auth.Name]
	if !ok {
		t.Errorf("%s: authenticationRef %q names no TriggerAuthentication in deploy/k8s", where, auth.Name)
		return
	}
	refs := map[string]string{}
	for _, ref := range ta.Spec.SecretTargetRef {
		refs[ref.Parameter] = ref.Key
		if _, ok := k.secrets[ref.Name][ref.Key]; !ok {
			t.Errorf("TriggerAuthentication %s: %s from Secret %s key %s, which is not there", ta.Metadata.Name, ref.Parameter, ref.Name, ref.Key)
		}
	}
	if refs["username"] != "GENPIPE_KAFKA_SASL_USER" || refs["password"] != "GENPIPE_KAFKA_SASL_PASSWORD" {
		t.Errorf("TriggerAuthentication %s: username and password from %v, want genpipe's GENPIPE_KAFKA_SASL_USER and _PASSWORD", ta.Metadata.Name, refs)
	}
}

// TestComposeSettingsStart runs the compose file's genpipe services as
// processes, with its commands and variables, against genpipe's stand-ins
// for its Kafka and S3 (the broker and objectstore commands) and SQLite or
// a test PostgreSQL for its PostgreSQL: host names become loopback
// addresses, listen ports free ones. The API must become ready, every
// healthcheck pass, every consumer group get its member, and a request go
// from upload to a signed webhook.
func TestComposeSettingsStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts nine processes")
	}
	compose := loadCompose(t)
	dbURL := postgresSchema(t) // "" for SQLite; before newStandalone: its cleanup must run after the processes stop
	flags := deployFlagSets(t)
	s := newStandalone(t)
	s.env = nil // only the compose file configures the parts
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GENPIPE_") {
			s.env = append(s.env, kv)
		}
	}
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(s.dir, "db", "genpipe.db")
	}
	healthcheck := filepath.Join(s.dir, "healthcheck")
	build := exec.Command("go", "build", "-o", healthcheck, "../../deploy/healthcheck")
	build.Dir = packageDir(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build deploy/healthcheck: %v\n%s", err, out)
	}

	// Stand-ins for the non-genpipe services, found by image.
	hosts := map[string]string{} // compose service -> loopback host:port
	for name, svc := range compose.Services {
		switch {
		case strings.HasPrefix(svc.Image, "apache/kafka"):
			s.startBroker()
			hosts[name] = "127.0.0.1:" + strconv.Itoa(s.brokerPort)
		case strings.HasPrefix(svc.Image, "versity/versitygw"):
			creds := []string{"GENPIPE_S3_ACCESS_KEY=" + svc.Environment["ROOT_ACCESS_KEY"], "GENPIPE_S3_SECRET_KEY=" + svc.Environment["ROOT_SECRET_KEY"]}
			p := s.start("objectstore", creds, "objectstore", "--addr", s.s3Addr, "--data-dir", filepath.Join(s.dir, "objects"))
			s.waitListening(p, s.s3Addr)
			hosts[name] = s.s3Addr
		case strings.HasPrefix(svc.Image, "postgres"):
		case svc.isGenpipe():
			hosts[name] = testutil.FreeAddr(t) // where it listens, if it does
		default:
			t.Fatalf("compose service %s: no stand-in for image %s", name, svc.Image)
		}
	}
	// localhost:PORT is a port a service publishes to the host (browsers'
	// view of the object store): the same stand-in.
	for name, svc := range compose.Services {
		for _, p := range svc.Ports {
			if published, _, ok := strings.Cut(p, ":"); ok && hosts[name] != "" {
				hosts["localhost:"+published] = hosts[name]
			}
		}
	}

	// The genpipe services, in the order depends_on gives.
	type started struct {
		name  string
		proc  *process
		check []string // the healthcheck command, rewritten
	}
	var procs []started
	for _, name := range startOrder(t, compose) {
		svc := compose.Services[name]
		if !svc.isGenpipe() {
			continue
		}
		env := rewriteComposeEnv(t, name, svc.Environment, hosts, dbURL)
		switch svc.Command[0] {
		case "api":
			s.api = "http://" + hosts[name]
		case "notifier":
			s.secret = svc.Environment["GENPIPE_WEBHOOK_SECRET"]
		}
		if flags[svc.Command[0]].env["GENPIPE_ALLOW_PRIVATE_WEBHOOKS"] {
			// Not the compose setting: the test's webhook receiver listens on loopback.
			env = append(env, "GENPIPE_ALLOW_PRIVATE_WEBHOOKS=true")
		}
		p := s.start(name, env, svc.Command...)
		st := started{name: name, proc: p}
		if svc.Healthcheck != nil {
			st.check = rewriteHealthcheck(t, name, svc, healthcheck, env)
		}
		procs = append(procs, st)
		if svc.Command[0] == "aisim" {
			s.waitListening(p, hosts[name])
		}
	}
	for _, p := range procs {
		if p.name == "api" {
			s.waitReady(p.proc)
		}
	}
	for _, group := range []string{groupCheck, groupGenerate, groupNotifier} {
		s.waitStableGroup(group, 1)
	}
	for _, p := range procs {
		if p.check == nil {
			continue
		}
		if err := waitHealthcheck(p.check, 20*time.Second, s.checkAlive); err != nil {
			t.Errorf("%s: the compose healthcheck fails: %v", p.name, err)
			continue
		}
		t.Logf("%s: the compose healthcheck passes (%s)", p.name, p.check[len(p.check)-1])
	}

	id, hooks := s.submit("compose")
	v := s.waitTerminal(id, 60*time.Second)
	if v.Status != "done" || v.Result == nil {
		t.Fatalf("request ended %s (%s), want done with a result", v.Status, v.Error)
	}
	checkPNG(t, download(t, v.Result.PNGURL))
	s.checkWebhook(hooks, id)
}

// startOrder orders the compose services so that each comes after those it
// depends on.
func startOrder(t *testing.T, c composeFile) []string {
	t.Helper()
	var order []string
	done := map[string]bool{}
	for len(order) < len(c.Services) {
		progress := false
		for _, name := range slices.Sorted(maps.Keys(c.Services)) {
			ready := !done[name]
			for dep := range c.Services[name].DependsOn {
				if _, ok := c.Services[dep]; !ok {
					t.Fatalf("compose service %s depends on %s, which is not a service", name, dep)
				}
				ready = ready && done[dep]
			}
			if ready {
				order, done[name], progress = append(order, name), true, true
			}
		}
		if !progress {
			t.Fatalf("compose services depend on each other in a cycle: started %v", order)
		}
	}
	return order
}

// postgresSchema returns the URL of a fresh schema of the test PostgreSQL,
// dropped when the test ends, when GENPIPE_TEST_POSTGRES_URL names one
// (scripts/test.sh starts one), else "".
func postgresSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("GENPIPE_TEST_POSTGRES_URL")
	if base == "" {
		t.Log("GENPIPE_TEST_POSTGRES_URL unset: no PostgreSQL")
		return ""
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "cmdtest_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("test PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Logf("PostgreSQL schema %s", schema)
	return u.String()
}

// rewriteComposeEnv returns a service's variables with compose host names
// replaced by the stand-ins' loopback addresses, a listen address ":PORT"
// by the service's own loopback address, and a PostgreSQL URL by dbURL.
func rewriteComposeEnv(t *testing.T, service string, env map[string]string, hosts map[string]string, dbURL string) []string {
	t.Helper()
	hostRef := regexp.MustCompile(`(^|[/@,])([a-z][a-z0-9-]*):(\d+)`)
	var out []string
	for key, v := range env {
		switch {
		case strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://"):
			v = dbURL
		case regexp.MustCompile(`^:\d+$`).MatchString(v):
			v = hosts[service]
			if key != "GENPIPE_ADDR" {
				v = testutil.FreeAddr(t) // a second listener, such as metrics
			}
		default:
			v = hostRef.ReplaceAllStringFunc(v, func(m string) string {
				sub := hostRef.FindStringSubmatch(m)
				addr, ok := hosts[sub[2]]
				if sub[2] == "localhost" {
					addr, ok = hosts["localhost:"+sub[3]]
				}
				if !ok {
					t.Fatalf("compose service %s: %s=%s names host %s, which is not a compose service", service, key, env[key], sub[2])
				}
				return sub[1] + addr
			})
		}
		out = append(out, key+"="+v)
	}
	slices.Sort(out)
	return out
}

// rewriteHealthcheck turns a compose healthcheck into a command line for
// this machine: the healthcheck binary built here, and the service's
// loopback address for the port it asks.
func rewriteHealthcheck(t *testing.T, service string, svc composeService, bin string, env []string) []string {
	t.Helper()
	test := svc.Healthcheck.Test
	if len(test) != 3 || test[0] != "CMD" || test[1] != "/usr/local/bin/healthcheck" {
		t.Fatalf("compose service %s: healthcheck %v, want [CMD /usr/local/bin/healthcheck URL]", service, test)
	}
	u, err := url.Parse(test[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		key, v, _ := strings.Cut(kv, "=")
		if svc.Environment[key] == ":"+u.Port() {
			u.Host = v
			return []string{bin, "-timeout", "2s", u.String()}
		}
	}
	t.Fatalf("compose service %s: healthcheck %s asks port %s, which no variable of the service listens on", service, test[2], u.Port())
	return nil
}

// waitHealthcheck runs a healthcheck command until it succeeds.
func waitHealthcheck(cmd []string, timeout time.Duration, alive func()) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		if err == nil {
			return nil
		}
		alive()
		if time.Now().After(deadline) {
			return fmt.Errorf("%v: %v: %s", cmd[1:], err, bytes.TrimSpace(out))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The parts of the deployment files the tests read.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string                    `yaml:"image"`
	Build       any                       `yaml:"build"`
	Command     []string                  `yaml:"command"`
	Environment map[string]string         `yaml:"environment"`
	Ports       []string                  `yaml:"ports"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// isGenpipe reports whether the service runs the genpipe image.
func (s composeService) isGenpipe() bool { return s.Build != nil }

// loadCompose reads docker-compose.yml with ${VAR:-default} replaced by its
// default, as compose does when VAR is unset.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	path := filepath.Join(deployDir(t), "docker-compose.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`\$\{[A-Z0-9_]+(?::-([^}]*))?\}`).ReplaceAll(data, []byte("$1"))
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// KEDA's kinds are not k8s.io/api types (KEDA's own Go types would bring
// in its operator's dependencies), so these mirror the fields of its
// keda.sh/v1alpha1 CRDs, to decode them as strictly as the others: a field
// KEDA does not know is refused. The HPA behavior inside is Kubernetes'
// own type.

// k8sMeta is a KEDA object's reference to another.
type k8sMeta struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

type k8sScaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval       *int32 `json:"pollingInterval,omitempty"`
		InitialCooldownPeriod *int32 `json:"initialCooldownPeriod,omitempty"`
		CooldownPeriod        *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount      *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount       *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount       int    `json:"maxReplicaCount"`
		Advanced              *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name,omitempty"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Fallback *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *k8sMeta          `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type k8sTriggerAuth struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// k8sManifests are the objects of deploy/k8s: Kubernetes' own kinds as
// the k8s.io/api types, KEDA's as their mirrors.
type k8sManifests struct {
	namespace     string // kustomization.yaml's
	namespaces    []corev1.Namespace
	deployments   []appsv1.Deployment
	services      []corev1.Service
	pdbs          []policyv1.PodDisruptionBudget
	scaledObjects []k8sScaledObject
	triggerAuths  map[string]k8sTriggerAuth
	configMaps    map[string]map[string]string
	secrets       map[string]map[string]string
	objects       []k8sObject // every object, in file order
}

// k8sObject names one object of the manifests.
type k8sObject struct {
	file string
	kind string
	meta metav1.ObjectMeta
}

func (o k8sObject) String() string {
	return fmt.Sprintf("deploy/k8s/%s: %s %s", o.file, o.kind, o.meta.Name)
}

// loadK8s reads the manifests that kustomization.yaml lists, and checks
// that it lists every one. Each object of a Kubernetes kind decodes
// strictly into its k8s.io/api type: a field the type lacks (a typo, a
// field of another version) or given twice fails the test.
func loadK8s(t *testing.T) k8sManifests {
	t.Helper()
	dir := filepath.Join(deployDir(t), "k8s")
	kust := decodeYAML[struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}](t, filepath.Join(dir, "kustomization.yaml"))[0]
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("deploy/k8s/%s is not in kustomization.yaml's resources", base)
		}
	}
	k := k8sManifests{namespace: kust.Namespace, configMaps: map[string]map[string]string{}, secrets: map[string]map[string]string{},
		triggerAuths: map[string]k8sTriggerAuth{}}
	for _, res := range kust.Resources {
		data, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitYAML(data)
		if err != nil {
			t.Fatalf("deploy/k8s/%s: %v", res, err)
		}
		for i, doc := range docs {
			obj, err := decodeK8sObject(doc)
			if err != nil {
				t.Fatalf("deploy/k8s/%s document %d: %v", res, i+1, err)
			}
			k.add(res, obj)
		}
	}
	return k
}

// add files one decoded object.
func (k *k8sManifests) add(file string, obj any) {
	var meta metav1.ObjectMeta
	var kind string
	switch o := obj.(type) {
	case *corev1.Namespace:
		k.namespaces = append(k.namespaces, *o)
		meta, kind = o.ObjectMeta, o.Kind
	case *appsv1.Deployment:
		k.deployments = append(k.deployments, *o)
		meta, kind = o.ObjectMeta, o.Kind
	case *corev1.Service:
		k.services = append(k.services, *o)
		meta, kind = o.ObjectMeta, o.Kind
	case *policyv1.PodDisruptionBudget:
		k.pdbs = append(k.pdbs, *o)
		meta, kind = o.ObjectMeta, o.Kind
	case *corev1.ConfigMap:
		k.configMaps[o.Name] = o.Data
		meta, kind = o.ObjectMeta, o.Kind
	case *corev1.Secret:
		k.secrets[o.Name] = maps.Clone(o.StringData)
		if k.secrets[o.Name] == nil {
			k.secrets[o.Name] = map[string]string{}
		}
		for key, v := range o.Data {
			k.secrets[o.Name][key] = string(v)
		}
		meta, kind = o.ObjectMeta, o.Kind
	case *k8sScaledObject:
		k.scaledObjects = append(k.scaledObjects, *o)
		meta, kind = o.Metadata, o.Kind
	case *k8sTriggerAuth:
		k.triggerAuths[o.Metadata.Name] = *o
		meta, kind = o.Metadata, o.Kind
	}
	k.objects = append(k.objects, k8sObject{file: file, kind: kind, meta: meta})
}

// splitYAML splits a YAML stream into its documents, leaving out those
// with nothing but comments.
func splitYAML(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := sigsyaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		if v != nil {
			docs = append(docs, doc)
		}
	}
}

// k8sKinds are the Kubernetes kinds the manifests may hold, by apiVersion
// and kind, each with its k8s.io/api type.
var k8sKinds = map[metav1.TypeMeta]func() any{
	{APIVersion: "v1", Kind: "Namespace"}:                  func() any { return &corev1.Namespace{} },
	{APIVersion: "v1", Kind: "ConfigMap"}:                  func() any { return &corev1.ConfigMap{} },
	{APIVersion: "v1", Kind: "Secret"}:                     func() any { return &corev1.Secret{} },
	{APIVersion: "v1", Kind: "Service"}:                    func() any { return &corev1.Service{} },
	{APIVersion: "apps/v1", Kind: "Deployment"}:            func() any { return &appsv1.Deployment{} },
	{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"}: func() any { return &policyv1.PodDisruptionBudget{} },
	// KEDA's, as mirrored above.
	{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"}:          func() any { return &k8sScaledObject{} },
	{APIVersion: "keda.sh/v1alpha1", Kind: "TriggerAuthentication"}: func() any { return &k8sTriggerAuth{} },
}

// decodeK8sObject decodes one manifest strictly into its type: a
// Kubernetes kind into its k8s.io/api type, a KEDA kind into its mirror
// (sigs.k8s.io/yaml, as kubectl reads YAML: unknown and duplicate fields
// are errors). Any other kind is an error: the test would check nothing of
// it.
func decodeK8sObject(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	if newObj, ok := k8sKinds[tm]; ok {
		obj := newObj()
		if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
		}
		return obj, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: not a kind the deployment tests know", tm.APIVersion, tm.Kind)
}

// decodeYAML decodes every document of a YAML file.
func decodeYAML[T any](t *testing.T, path string) []T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []T
	for {
		var doc T
		err := dec.Decode(&doc)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return docs
			}
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		docs = append(docs, doc)
	}
}

// commandFlagSet is what one command reads: its flags and variables.
type commandFlagSet struct {
	flags map[string]bool
	env   map[string]bool
}

// deployFlagSets returns every command's flags and variables, by reference
// name ("worker", "dlq list").
func deployFlagSets(t *testing.T) map[string]commandFlagSet {
	t.Helper()
	cmds := builtInReference(t)
	out := map[string]commandFlagSet{}
	for _, c := range cmds {
		fs := commandFlagSet{flags: map[string]bool{}, env: map[string]bool{}}
		for _, f := range c.Flags {
			fs.flags[f.Name] = true
			if f.Env != "" {
				fs.env[f.Env] = true
			}
		}
		for _, e := range otherEnv {
			if e.Command == c.Name {
				fs.env[e.Env] = true
			}
		}
		out[c.Name] = fs
	}
	return out
}
