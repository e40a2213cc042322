package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// lifecycle counts the requests that ended under their user's or their
// deadline's control: canceled and expired, by tenant. Registered on the
// first count, so a process that never cancels or expires (the notifier)
// shows no empty families.
type lifecycle struct {
	once     sync.Once
	canceled *prometheus.CounterVec
	expired  *prometheus.CounterVec
}

func (r *Registry) lifecycleCounters() *lifecycle {
	r.lifecycle.once.Do(func() {
		r.lifecycle.canceled = counter("requests_canceled_total",
			"Requests canceled by their user (DELETE /v1/requests/{id}) before they ended, by tenant; counted by the API process that canceled them.",
			"tenant")
		r.lifecycle.expired = counter("requests_expired_total",
			"Requests that ended expired because no AI call of theirs could start by their startBy, by tenant; "+
				"counted by the worker process that noticed (a task past its startBy in the queue, or a claim refused after it).",
			"tenant")
		r.reg.MustRegister(r.lifecycle.canceled, r.lifecycle.expired)
	})
	return &r.lifecycle
}

// RequestCanceled counts a request of tenant that its user canceled.
func (r *Registry) RequestCanceled(tenant string) {
	r.lifecycleCounters().canceled.WithLabelValues(r.tenantLabel(tenant)).Inc()
}

// RequestExpired counts a request of tenant that ended expired.
func (r *Registry) RequestExpired(tenant string) {
	r.lifecycleCounters().expired.WithLabelValues(r.tenantLabel(tenant)).Inc()
}

// tenantLabel is tenant's label, bounded with the other per-tenant
// families' (see MaxTenantLabels).
func (r *Registry) tenantLabel(tenant string) string {
	r.tenants.mu.Lock()
	defer r.tenants.mu.Unlock()
	return r.tenants.label(tenant)
}
