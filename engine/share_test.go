package engine

import (
	"math/rand/v2"
	"testing"
)

// However the partitions are split among engines, their shares add up to
// the capacity exactly (when every engine holds a slot-carrying partition).
func TestSharesAddUpToTheCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		total := 1 + rng.IntN(64)
		capacity := total + rng.IntN(100) // at least one slot per partition
		engines := 1 + rng.IntN(total)
		owned := make([][]int, engines)
		for p := range total { // every engine gets one, the rest at random
			e := p
			if p >= engines {
				e = rng.IntN(engines)
			}
			owned[e] = append(owned[e], p)
		}
		sum := 0
		for _, o := range owned {
			sum += shareOf(capacity, total, o)
		}
		if sum != capacity {
			t.Fatalf("capacity %d, %d partitions over %d engines %v: shares add up to %d", capacity, total, engines, owned, sum)
		}
	}
}

func TestShareEdges(t *testing.T) {
	cases := []struct {
		capacity, total int
		owned           []int
		want            int
	}{
		{6, 4, []int{0, 1}, 4},
		{6, 4, []int{3}, 1},
		{64, 8, []int{0}, 8},
		{4, 8, []int{7}, 1}, // a slot-less partition still gets one
		{4, 8, []int{0, 1}, 2},
		{8, 0, []int{0}, 1}, // total unknown: safe
		{8, 8, nil, 0},
	}
	for _, c := range cases {
		if got := shareOf(c.capacity, c.total, c.owned); got != c.want {
			t.Errorf("shareOf(%d, %d, %v) = %d, want %d", c.capacity, c.total, c.owned, got, c.want)
		}
	}
}
