package api

import (
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/genpipe/genpipe"
	"github.com/genpipe/genpipe/tenants"
)

// manyTenants returns n keys, each of its own tenant of weight i+1.
func manyTenants(n int) ([]string, tenants.Set) {
	keys := make([]string, n)
	set := tenants.Set{}
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%04d-of-the-keyring-test", i)
		one := tenants.FromKeys([]string{keys[i]})
		one.Tenants[0].Weight = i + 1
		set.Tenants = append(set.Tenants, one.Tenants...)
		set.Keys = append(set.Keys, one.Keys...)
	}
	return keys, set
}

// The keyring finds each key's own tenant, wherever the key is in it.
func TestKeyringFindsTheTenant(t *testing.T) {
	keys, set := manyTenants(50)
	k := newKeyring(set)
	for i, key := range keys {
		r := httptest.NewRequest("GET", "/v1/styles", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		c, err := k.caller(r)
		if err != nil || !reflect.DeepEqual(c.tenant, set.Tenants[i]) || c.tenant.Weight != i+1 {
			t.Fatalf("caller of key %d = %+v, %v; want tenant %+v", i, c, err, set.Tenants[i])
		}
	}
	r := httptest.NewRequest("GET", "/v1/styles", nil)
	r.Header.Set("Authorization", "Bearer not-a-key")
	if c, err := k.caller(r); genpipe.ErrorCode(err) != genpipe.EUNAUTHORIZED || c.tenant.Name != "" {
		t.Fatalf("caller of an unknown key = %+v, %v; want EUNAUTHORIZED and no tenant", c, err)
	}
}

// BenchmarkKeyring is the cost of authenticating one request against a
// keyring of 1000 keys: every key is compared.
func BenchmarkKeyring(b *testing.B) {
	keys, set := manyTenants(1000)
	k := newKeyring(set)
	r := httptest.NewRequest("GET", "/v1/styles", nil)
	r.Header.Set("Authorization", "Bearer "+keys[500])
	for b.Loop() {
		if _, err := k.caller(r); err != nil {
			b.Fatal(err)
		}
	}
}
