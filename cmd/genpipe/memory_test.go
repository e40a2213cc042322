//go:build linux

package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/genpipe/genpipe/aisim"
)

// upPeakRSS is the target of issue 10: `genpipe up` with the default
// limits stays under it, whatever images it is sent at once.
const upPeakRSS = 1500 << 20

// TestMemoryBound runs `genpipe up` as its own process, with the default
// memory limits, and sends it images through the real API:
//
//  1. the attack image, an 8000×8000 16-bit RGBA PNG that is a few MB on
//     the wire (the attacker's was 497 KB) and 489 MiB decoded: it is
//     rejected with the reason, and up's peak RSS hardly moves (it went
//     to 1 GB);
//  2. sixteen of the largest images the limits allow, 8000×8000 8-bit
//     RGBA PNGs (245 MiB decoded) at once: each ends done or rejected with
//     a reason, and up's peak RSS (VmHWM) stays under upPeakRSS.
//
// It builds the binary and runs for about a minute; -short skips it.
func TestMemoryBound(t *testing.T) {
	// Its own processes on ports of its own, waiting on them most of the
	// time: it runs beside the other long process tests.
	t.Parallel()
	s := newStandalone(t)
	up := s.start("up", nil, s.upArgs("--partitions", "4")...)
	s.waitReady(up)
	pid := up.cmd.Process.Pid
	t.Logf("up (pid %d) ready: VmRSS %s", pid, memoryOf(t, pid, "VmRSS"))

	bomb := streamedPNG(t, 8000, 8000, 16)
	t.Logf("attack image: %d KiB, 8000×8000 16-bit RGBA", len(bomb)>>10)
	id, _ := s.submitImage(bomb, "attack")
	v := s.waitTerminal(id, 2*time.Minute)
	if want := "image is 8000×8000 (16-bit PNG) and would take 489 MiB to decode; the maximum is 256 MiB"; v.Status != "rejected" || !strings.Contains(v.Error, want) {
		t.Errorf("attack image: %s (%s), want rejected with %q", v.Status, v.Error, want)
	}
	hwm := peakRSS(t, pid)
	t.Logf("after the attack image: VmHWM %d MiB", hwm>>20)
	if hwm > 400<<20 {
		t.Errorf("refusing the attack image took up's peak RSS to %d MiB; want under 400 MiB (no large allocation)", hwm>>20)
	}

	largest := streamedPNG(t, 8000, 8000, 8)
	t.Logf("largest image allowed: %d KiB, 8000×8000 8-bit RGBA", len(largest)>>10)
	stop := sampleRSS(t, pid)
	start := time.Now()
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i], _ = s.submitImage(largest, "largest "+strconv.Itoa(i)) })
	}
	wg.Wait()
	outcomes := map[string]int{}
	for _, id := range ids {
		v := s.waitTerminal(id, 5*time.Minute)
		outcomes[v.Status]++
		if v.Status != "done" && (v.Status != "rejected" || v.Error == "") {
			t.Errorf("request %s ended %s (%q); want done, or rejected with a reason", id, v.Status, v.Error)
		}
	}
	stop()
	hwm = peakRSS(t, pid)
	t.Logf("16 largest images at once: %v in %s; up's peak RSS (VmHWM) %d MiB, target under %d MiB",
		outcomes, time.Since(start).Round(time.Second), hwm>>20, upPeakRSS>>20)
	for _, ai := range []string{"Checking AI", "Generative AI"} {
		t.Logf("%s memory: %s", ai, aiMemory(t, printedURL(t, up, ai)))
	}
	if hwm > upPeakRSS {
		t.Errorf("up's peak RSS was %d MiB; want under %d MiB", hwm>>20, upPeakRSS>>20)
	}
}

// memoryOf returns a line of /proc/PID/status, such as VmHWM.
func memoryOf(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

// peakRSS is the process's peak resident set size, VmHWM, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	kb, err := strconv.ParseInt(strings.TrimSuffix(memoryOf(t, pid, "VmHWM"), " kB"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return kb << 10
}

// sampleRSS logs the process's RSS every five seconds until stopped.
func sampleRSS(t *testing.T, pid int) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for start := time.Now(); ; {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Second):
			}
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				return
			}
			var rss string
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
					rss += strings.Join(strings.Fields(line), " ") + " "
				}
			}
			t.Logf("%3.0fs: %s", time.Since(start).Seconds(), rss)
		}
	}()
	return func() { close(done); <-stopped }
}

// aiMemory is the "memory" of an AI's /stats.
func aiMemory(t *testing.T, addr string) string {
	var st struct {
		Memory aisim.MemoryStats `json:"memory"`
	}
	if err := getJSON("http://"+addr+"/stats", &st); err != nil {
		t.Errorf("stats of %s: %v", addr, err)
	}
	m := st.Memory
	return fmt.Sprintf("budget %d MiB, peak %d MiB, %d calls waited, %d images refused", m.Budget>>20, m.Peak>>20, m.Waits, m.Refused)
}

// streamedPNG encodes a w×h RGBA PNG of the given bit depth a channel, in
// blocks of color, streaming its rows through zlib: even the 512 MiB of
// the attack image costs the test little memory to make.
func streamedPNG(t *testing.T, w, h int, depth byte) []byte {
	t.Helper()
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	pixel := int(depth) / 2 // bytes: 4 channels
	row := make([]byte, 1+w*pixel)
	for y := range h {
		for x := range w {
			p := row[1+x*pixel : 1+(x+1)*pixel]
			for i := range p {
				p[i] = byte(x>>8*16 + y>>8*(i%3)) // runs of 256 alike: it must stay under the API's upload limit
			}
			copy(p[pixel*3/4:], []byte{0xff, 0xff}[:pixel/4]) // alpha: opaque
		}
		if _, err := zw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	for _, c := range []struct {
		typ  string
		data []byte
	}{{"IHDR", append(ihdr, depth, 6, 0, 0, 0)}, {"IDAT", idat.Bytes()}, {"IEND", nil}} {
		out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(c.data))))
		out.WriteString(c.typ)
		out.Write(c.data)
		out.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(append([]byte(c.typ), c.data...))))
	}
	return out.Bytes()
}
