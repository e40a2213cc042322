//go:build unix

package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// What Kubernetes' API server would refuse, or accept and then not work,
// in deploy/k8s: names and labels it does not allow, selectors that match
// no pod, ports that are not there, probes and scrapes of paths genpipe
// does not serve. (loadK8s already decoded every object strictly into its
// k8s.io/api type.)

// TestK8sStrictDecoding shows that a manifest with a field its type lacks
// is refused, not silently dropped as a plain YAML decode would.
func TestK8sStrictDecoding(t *testing.T) {
	for name, doc := range map[string]string{
		"a typo":                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  replica: 2\n",
		"a field given twice":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {A: x}\ndata: {B: y}\n",
		"a misplaced field":     "apiVersion: v1\nkind: Service\nmetadata: {name: api, selector: {app: x}}\n",
		"an unknown kind":       "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: api}\n",
		"another version's":     "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: api}\n",
		"a wrong type of value": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: two}\n",
		"a KEDA typo":           "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w}\nspec: {scaleTargetRef: {name: w}, maxReplicas: 8}\n",
		"a typo in HPA behavior": "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: w}\nspec:\n  scaleTargetRef: {name: w}\n" +
			"  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleUp: {stabilisationWindowSeconds: 30}}}}\n",
	} {
		if _, err := decodeK8sObject([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error:\n%s", name, doc)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := decodeK8sObject([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 2}\n")); err != nil {
		t.Errorf("a valid Deployment: %v", err)
	}
}

// TestK8sManifestsValid checks what the API server validates and what
// makes the objects work together.
func TestK8sManifestsValid(t *testing.T) {
	k := loadK8s(t)
	servers := genpipeServers(t)
	seen := map[string]bool{}
	for _, o := range k.objects {
		if key := o.kind + "/" + o.meta.Name; seen[key] {
			t.Errorf("%s: a second %s of that name", o, o.kind)
		} else {
			seen[key] = true
		}
		// Services and Namespaces need DNS labels, the rest subdomains.
		validate := validation.IsDNS1123Subdomain
		if o.kind == "Service" || o.kind == "Namespace" {
			validate = validation.IsDNS1123Label
		}
		for _, msg := range validate(o.meta.Name) {
			t.Errorf("%s: name: %s", o, msg)
		}
		if o.meta.Namespace != "" {
			t.Errorf("%s: namespace %q in the object; kustomization.yaml sets it", o, o.meta.Namespace)
		}
		checkLabels(t, o.String(), o.meta.Labels)
	}
	if !slices.ContainsFunc(k.namespaces, func(n corev1.Namespace) bool { return n.Name == k.namespace }) {
		t.Errorf("kustomization.yaml puts everything in namespace %q, which no Namespace in deploy/k8s creates", k.namespace)
	}
	for key, data := range k.configMaps {
		for name := range data {
			for _, msg := range validation.IsConfigMapKey(name) {
				t.Errorf("ConfigMap %s key %s: %s", key, name, msg)
			}
		}
	}

	pods := map[string]labels.Set{} // Deployment -> its pods' labels
	for _, d := range k.deployments {
		where := "Deployment " + d.Name
		pod := labels.Set(d.Spec.Template.Labels)
		pods[d.Name] = pod
		checkLabels(t, where+" pod template", d.Spec.Template.Labels)
		sel := checkSelector(t, where, d.Spec.Selector)
		if sel != nil && !sel.Matches(pod) {
			t.Errorf("%s: selector %s does not match its pod template's labels %v (the API server refuses it)", where, sel, pod)
		}
		checkPodSpec(t, where, d.Spec.Template, k, servers)
	}
	selects := func(sel labels.Selector) []string {
		var names []string
		for name, pod := range pods {
			if sel.Matches(pod) {
				names = append(names, name)
			}
		}
		return names
	}
	for _, svc := range k.services {
		where := "Service " + svc.Name
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		targets := selects(sel)
		if len(svc.Spec.Selector) == 0 || len(targets) != 1 {
			t.Errorf("%s: selector %v selects the pods of %v; want one Deployment's", where, svc.Spec.Selector, targets)
			continue
		}
		d := deploymentNamed(k, targets[0])
		for _, p := range svc.Spec.Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s port %s: %s", where, p.Name, msg)
			}
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port) // the default
			}
			if !slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return containerPort(c, target) != 0 }) {
				t.Errorf("%s port %s: targetPort %s is no port of Deployment %s's containers", where, p.Name, target.String(), d.Name)
			}
		}
	}
	for _, pdb := range k.pdbs {
		where := "PodDisruptionBudget " + pdb.Name
		if sel := checkSelector(t, where, pdb.Spec.Selector); sel != nil {
			if targets := selects(sel); len(targets) != 1 {
				t.Errorf("%s: selector %s selects the pods of %v; want one Deployment's", where, sel, targets)
			}
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("%s: want minAvailable or maxUnavailable, one of them", where)
		}
	}
}

// checkPodSpec checks a pod template's containers: names, ports, variables,
// and that its probes and its Prometheus scrape ask genpipe for paths the
// server on that port serves.
func checkPodSpec(t *testing.T, where string, tpl corev1.PodTemplateSpec, k k8sManifests, servers map[string]string) {
	t.Helper()
	for _, c := range tpl.Spec.Containers {
		cw := where + " container " + c.Name
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			t.Errorf("%s: name: %s", cw, msg)
		}
		names := map[string]bool{}
		for _, p := range c.Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s port %s: %s", cw, p.Name, msg)
			}
			for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
				t.Errorf("%s port %s: %s", cw, p.Name, msg)
			}
			if names[p.Name] {
				t.Errorf("%s: two ports named %s", cw, p.Name)
			}
			names[p.Name] = true
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				t.Errorf("%s env %s: %s", cw, e.Name, msg)
			}
		}
		if c.Image != "genpipe" {
			continue
		}
		listens := containerListens(c, k)
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil {
				port := containerPort(c, p.HTTPGet.Port)
				checkServed(t, cw+" probe", servers, listens[port], p.HTTPGet.Path)
			}
		}
		if tpl.Annotations["prometheus.io/scrape"] == "true" {
			n, err := strconv.Atoi(tpl.Annotations["prometheus.io/port"])
			if err != nil || !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == n }) {
				t.Errorf("%s: prometheus.io/port %q is no port of the container", cw, tpl.Annotations["prometheus.io/port"])
				continue
			}
			path := tpl.Annotations["prometheus.io/path"]
			if path == "" {
				path = "/metrics"
			}
			checkServed(t, cw+" Prometheus scrape", servers, listens[int32(n)], path)
		}
	}
}

// checkServed GETs path from the server that the variable says listens
// on the port (see genpipeServers). The answer must be 200.
func checkServed(t *testing.T, where string, servers map[string]string, listenVar, path string) {
	t.Helper()
	base, ok := servers[listenVar]
	if !ok {
		t.Errorf("%s: %s on a port neither GENPIPE_ADDR nor GENPIPE_METRICS_ADDR listens on", where, path)
		return
	}
	resp, err := http.Get(base + path)
	if err != nil {
		t.Errorf("%s: GET %s: %v", where, path, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: GET %s on the %s server: %s; want 200", where, path, strings.TrimPrefix(listenVar, "GENPIPE_"), resp.Status)
	}
}

// genpipeServers returns the URLs of genpipe's two kinds of HTTP server by
// the variable that sets their address: the API (GENPIPE_ADDR: the running
// up's) and the metrics listener of the workers and the notifier
// (GENPIPE_METRICS_ADDR: one started here, until the test ends).
func genpipeServers(t *testing.T) map[string]string {
	t.Helper()
	obs, err := newObservability(t.Context(), "genpipe-test", kafkaSettings{Brokers: sys.Brokers[0]}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	url, stop, err := obs.serve(t.Context(), "127.0.0.1:0")
	if err != nil {
		obs.close()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); obs.close() })
	return map[string]string{"GENPIPE_ADDR": sys.API, "GENPIPE_METRICS_ADDR": url}
}

// checkLabels checks label keys and values as the API server does.
func checkLabels(t *testing.T, where string, l map[string]string) {
	t.Helper()
	for key, v := range l {
		for _, msg := range validation.IsQualifiedName(key) {
			t.Errorf("%s: label %s: %s", where, key, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s value %q: %s", where, key, v, msg)
		}
	}
}

// checkSelector returns a label selector as a Selector, or nil after
// failing the test when it is missing, empty (it would select every pod)
// or invalid.
func checkSelector(t *testing.T, where string, ls *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0) {
		t.Errorf("%s: no selector, or an empty one that selects every pod", where)
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("%s: selector: %v", where, err)
		return nil
	}
	checkLabels(t, where+" selector", ls.MatchLabels)
	return sel
}

func deploymentNamed(k k8sManifests, name string) appsv1.Deployment {
	for _, d := range k.deployments {
		if d.Name == name {
			return d
		}
	}
	panic(fmt.Sprintf("no Deployment %s", name))
}
