package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/genpipe/genpipe/loadtest"
)

// The lifecycle lab's system: `genpipe up` in this process, on a data
// directory of its own, with the article's latencies scaled and a smaller
// capacity than the article's 64, because the simulated Generative AI
// renders every slide for real: at twice 64 calls per 3 s scaled by 0.25
// it would render 170 slides a second, more than two cores do beside the
// pipeline; at 8 it renders about 21.
const (
	lifecycleCapacity        = 8
	lifecycleCheckLatency    = 500 * time.Millisecond
	lifecycleGenerateLatency = 3 * time.Second
)

// lifecycleFlags are loadtest's flags that the lifecycle lab reads.
type lifecycleFlags struct {
	scenario         string
	scale            float64
	duration, drain  time.Duration
	jsonFile, outDir string
	capacity         int
	stepDuration     time.Duration
	load             float64
}

// runLifecycleLab starts genpipe up with the lab's system, runs the
// lifecycle lab's scenarios against it through its HTTP API, and writes
// the report.
func runLifecycleLab(ctx context.Context, f lifecycleFlags, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "genpipe-lifecycle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scaled := func(d time.Duration) string { return time.Duration(float64(d) * f.scale).String() }
	capacity := strconv.Itoa(f.capacity)
	args := []string{"-data-dir", dir, "-addr", "127.0.0.1:0", "-log-level", "error",
		"-check-latency", scaled(lifecycleCheckLatency), "-generate-latency", scaled(lifecycleGenerateLatency),
		"-check-capacity", capacity, "-generate-capacity", capacity, "-partitions", "8"}
	var cfg upConfig
	log, err := parse(&cfg, "up", args, stderr)
	if err != nil {
		return err
	}
	upCtx, stopUp := context.WithCancel(ctx)
	defer stopUp()
	urls := make(chan upURLs, 1)
	upDone := make(chan error, 1)
	go func() { upDone <- up(upCtx, cfg, log, func(u upURLs) { urls <- u }) }()
	var u upURLs
	select {
	case u = <-urls:
	case err := <-upDone:
		return fmt.Errorf("loadtest: genpipe up: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	scenarios := []string{loadtest.LifecycleScenario, loadtest.StepScenario}
	switch f.scenario {
	case loadtest.StepScenario, loadtest.OverheadScenario:
		scenarios = []string{f.scenario}
	}
	fmt.Fprintf(stderr, "genpipe up serving %s (AI capacity %d, time scale %g)\n", u.API, f.capacity, f.scale)
	rep, err := loadtest.RunLifecycle(ctx, loadtest.LifecycleConfig{
		System: loadtest.System{API: u.API, CheckAI: u.CheckAI, GenerateAI: u.GenerateAI,
			CheckCapacity: f.capacity, GenerateCapacity: f.capacity, CheckLatency: lifecycleCheckLatency, GenerateLatency: lifecycleGenerateLatency},
		Scenarios: scenarios, TimeScale: f.scale, Image: labImage(), Duration: f.duration, Load: f.load,
		OverheadDuration: f.duration, OverheadLoad: f.load,
		StepDuration: f.stepDuration, DrainTimeout: f.drain,
		Progress: func(line string) { fmt.Fprintln(stderr, line) },
	})
	stopUp()
	if uerr := <-upDone; uerr != nil && !errors.Is(uerr, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("genpipe up: %w", uerr))
	}
	if rep == nil {
		return err
	}
	return errors.Join(err, writeLifecycle(rep, stdout, f.jsonFile, f.outDir))
}

// labImage is the PNG every lab request uses: large enough for the check.
func labImage() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for y := range 120 {
		for x := range 160 {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

// writeLifecycle writes rep as JSON to jsonFile, as charts and HTML into
// outDir (each when set), and as text to stdout.
func writeLifecycle(rep *loadtest.LifecycleReport, stdout io.Writer, jsonFile, outDir string) error {
	if err := writeJSONFile(jsonFile, rep); err != nil {
		return err
	}
	if outDir != "" {
		charts, err := loadtest.WriteLifecycleCharts(outDir, *rep)
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(outDir, "report.html"))
		if err != nil {
			return err
		}
		err = loadtest.WriteLifecycleHTML(f, *rep, charts)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return loadtest.WriteLifecycleTable(stdout, *rep)
}
