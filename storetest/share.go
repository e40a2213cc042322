package storetest

import (
	"testing"

	"github.com/genpipe/genpipe"
)

// What tenants and priorities rely on: a request keeps the share it was
// created with (the tenant, priority and weight its events carry), with
// the defaults filled in, and a retry with its idempotency key gets the
// first share back.

var shareTests = []test{
	{"Stored", func(t *testing.T, s Store) {
		in := newRequest("")
		in.Share = genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 1000}
		got := create(t, s, in)
		if got.Share != in.Share {
			t.Errorf("CreateRequest Share = %+v; want %+v", got.Share, in.Share)
		}
		publish(t, s, got.ID)
		if read := read(t, s, got.ID); read.Share != in.Share {
			t.Errorf("Request Share = %+v; want %+v", read.Share, in.Share)
		}
	}},
	{"Defaults", func(t *testing.T, s Store) {
		want := genpipe.Share{Tenant: genpipe.DefaultTenant, Priority: genpipe.DefaultPriority, Weight: genpipe.DefaultWeight}
		got := create(t, s, newRequest(""))
		if got.Share != want {
			t.Errorf("CreateRequest Share of a request without one = %+v; want %+v", got.Share, want)
		}
		publish(t, s, got.ID)
		if read := read(t, s, got.ID); read.Share != want {
			t.Errorf("Request Share of a request without one = %+v; want %+v", read.Share, want)
		}
	}},
	{"EachPriority", func(t *testing.T, s Store) {
		for _, p := range genpipe.Priorities {
			in := newRequest("")
			in.Priority = p
			got := create(t, s, in)
			publish(t, s, got.ID)
			if read := read(t, s, got.ID); read.Priority != p {
				t.Errorf("Request Priority = %q; want %q", read.Priority, p)
			}
		}
	}},
	{"RetryGetsFirst", func(t *testing.T, s Store) {
		first := newRequest("key-share")
		first.Share = genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityLow, Weight: 2}
		create(t, s, first)
		retry := newRequest("key-share")
		retry.Share = genpipe.Share{Tenant: "acme", Priority: genpipe.PriorityHigh, Weight: 5}
		got, created, err := s.CreateRequest(t.Context(), retry)
		if err != nil || created || got.Share != first.Share {
			t.Fatalf("retry = %+v, created %v, %v; want the first request's share %+v", got, created, err, first.Share)
		}
	}},
	{"Invalid", func(t *testing.T, s Store) {
		for _, share := range []genpipe.Share{
			{Priority: "urgent"},
			{Weight: -1},
			{Weight: genpipe.MaxWeight + 1},
			{Tenant: string(make([]byte, genpipe.MaxTenantLen+1))},
		} {
			in := newRequest("")
			in.Share = share
			_, _, err := s.CreateRequest(t.Context(), in)
			checkCode(t, "CreateRequest with an invalid share", err, genpipe.EINVALID)
		}
	}},
}
