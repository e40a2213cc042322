package slide

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // for -image
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe"
)

// preview writes every style's slide to a directory for a human to look at:
// go test ./slide -run TestPreview -preview /tmp/slides [-image photo.png]
var (
	preview      = flag.String("preview", "", "write preview slides to this directory")
	previewImage = flag.String("image", "", "PNG or JPEG to use in the preview slides")
)

const sampleTitle = "Quarterly results: a record year"

const sampleText = "Revenue grew 42% while costs stayed flat, thanks to the new pipeline. " +
	"Customers in Zürich, São Paulo and Kraków adopted it first.\n\n" +
	"Next: scale the generative stage to 64 concurrent requests and keep every burst on time."

// testImage is a smooth synthetic picture (no two neighbours equal), so
// scaling and PNG encoding do real work.
func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 0xff})
		}
	}
	return img
}

func mustRender(t testing.TB, img image.Image, s genpipe.Style, title, desc string) Files {
	t.Helper()
	f, err := Render(img, s, title, desc)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return f
}

func TestRenderStyles(t *testing.T) {
	for _, s := range genpipe.Styles {
		t.Run(s.ID, func(t *testing.T) {
			f := mustRender(t, testImage(640, 480), s, sampleTitle, sampleText)
			checkPNG(t, f.PNG, s)
			checkPDF(t, f.PDF)
			checkPPTX(t, f.PPTX)
		})
	}
}

func TestRenderImageShapes(t *testing.T) {
	style := genpipe.Styles[0]
	for _, tc := range []struct {
		name string
		w, h int
	}{
		{"tiny", 64, 64},
		{"wide", 3000, 100},
		{"tall", 60, 2400},
		{"pixel", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustRender(t, testImage(tc.w, tc.h), style, "Shapes", "An image of unusual proportions.")
			checkPNG(t, f.PNG, style)
			checkPDF(t, f.PDF)
			media := checkPPTX(t, f.PPTX)
			// The embedded picture keeps the upload's aspect ratio.
			got := float64(media.Dx()) / float64(media.Dy())
			want := float64(tc.w) / float64(tc.h)
			if got/want < 0.9 || got/want > 1.1 {
				t.Errorf("picture is %v, aspect %.3f; want about %.3f", media, got, want)
			}
		})
	}
}

// A description too long for one slide at the smallest readable size
// continues on further slides: nothing is cut, and the body stays at 28 px.
func TestLongDescriptionContinues(t *testing.T) {
	long := strings.Repeat("Generative pipelines reward patience and bounded queues. ", 36)[:2000]
	long += " The final words survive."
	th, err := newTheme(genpipe.Styles[1])
	if err != nil {
		t.Fatal(err)
	}
	lay := newLayout(th, newTypesetter(), image.Pt(800, 600), sampleTitle, cleanText(long))
	if lay.body.size != bodyFit.min || bodyFit.min < 28 {
		t.Errorf("body size %.0f px; want the minimum %.0f (at least 28) for 2000 characters", lay.body.size, bodyFit.min)
	}
	if len(lay.pages) < 2 {
		t.Fatalf("%d slides; want the text to continue on a second", len(lay.pages))
	}
	var shown []string
	for _, pg := range lay.pages {
		for _, pl := range pg.body {
			if bottom := pl.y + lay.body.lineHeight; bottom > margin+contentH+0.01 {
				t.Errorf("a line ends at y=%.0f, below the bottom margin %d", bottom, margin+contentH)
			}
			if strings.Contains(pl.line.text, "…") {
				t.Errorf("line %q is cut", pl.line.text)
			}
		}
		shown = append(shown, paragraphs(pg.body)...)
	}
	if got := strings.Join(strings.Fields(strings.Join(shown, " ")), " "); got != strings.Join(strings.Fields(long), " ") {
		t.Errorf("the slides show %q; want the whole description", got)
	}
	checkLinesFit(t, lay.body)
	// Shaped once and wrapped at several sizes, the text is set as if
	// shaped at its final size: same lines, same widths.
	ts := newTypesetter()
	direct := ts.setText(cleanText(long), fontmap{ts: ts, primary: th.bodyFont.sfnt}, lay.body.size, textColW)
	if len(direct) != len(lay.body.lines) {
		t.Fatalf("%d lines; set directly at %.0f px, %d", len(lay.body.lines), lay.body.size, len(direct))
	}
	for i, l := range lay.body.lines {
		if l.text != direct[i].text || math.Abs(l.width-direct[i].width) > 1 {
			t.Errorf("line %d %q is %.1f px wide; set directly, %q is %.1f", i, l.text, l.width, direct[i].text, direct[i].width)
		}
	}

	f := mustRender(t, testImage(800, 600), genpipe.Styles[1], sampleTitle, long)
	if len(f.MorePNG) != len(lay.pages)-1 {
		t.Errorf("%d further PNGs; want %d", len(f.MorePNG), len(lay.pages)-1)
	}
	checkPNG(t, f.PNG, genpipe.Styles[1])
	for _, p := range f.MorePNG {
		checkPNG(t, p, genpipe.Styles[1])
	}
	checkPDF(t, f.PDF)
	if n := bytes.Count(f.PDF, []byte("/Type /Page")) - bytes.Count(f.PDF, []byte("/Type /Pages")); n != len(lay.pages) {
		t.Errorf("%d PDF pages; want %d", n, len(lay.pages))
	}
	checkPPTX(t, f.PPTX)
	text := textOf(t, readPart(t, f.PPTX, fmt.Sprintf("ppt/slides/slide%d.xml", len(lay.pages))))
	if !strings.Contains(text, "The final words survive.") {
		t.Errorf("the last PPTX slide lacks the description's end: %q", text)
	}
}

func TestShortDescriptionKeepsLargeText(t *testing.T) {
	th, err := newTheme(genpipe.Styles[1]) // split, the layout titleFit is for
	if err != nil {
		t.Fatal(err)
	}
	lay := newLayout(th, newTypesetter(), image.Pt(800, 600), "Hi", "Short and sweet.")
	if lay.title.size != titleFit.max || lay.body.size != bodyFit.max {
		t.Errorf("sizes title %.0f body %.0f; want the maxima %.0f and %.0f",
			lay.title.size, lay.body.size, titleFit.max, bodyFit.max)
	}
	if got := paragraphs(lay.pages[0].body); len(lay.pages) != 1 || len(got) != 1 || got[0] != "Short and sweet." {
		t.Errorf("%d slides, shown %q", len(lay.pages), got)
	}
}

func TestWrapBreaksLongWordsAndCJK(t *testing.T) {
	fonts, err := goFonts()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTypesetter()
	f := fonts["goregular"]
	for _, text := range []string{
		"https://example.com/" + strings.Repeat("a-very-long-path/", 20),
		strings.Repeat("生成式人工智能管道", 20),
		"Ünïcödé àccents — “quotes” and emoji 🎉 in one line of text that wraps",
	} {
		b := textBlock{font: f}
		b.lines = ts.setText(text, fontmap{ts: ts, primary: f.sfnt}, 40, textColW)
		checkLinesFit(t, b)
		var lines []string
		for _, l := range b.lines {
			lines = append(lines, l.text)
		}
		if len(lines) < 2 {
			t.Errorf("%q: %d lines; want it wrapped", text, len(lines))
		}
		if got := strings.Join(lines, ""); got != text {
			t.Errorf("wrapping lost text: %q", got)
		}
	}
}

func TestUnicodeAndControlText(t *testing.T) {
	title := "Ünïcödé 生成 \x00\x1b title\u2028with a break"
	desc := "Emoji 🎉, CJK 人工智能, RTL שלום, invalid \xff\xfe bytes, NUL \x00 and BEL \a.\r\nNew line."
	f := mustRender(t, testImage(300, 200), genpipe.Styles[3], title, desc)
	checkPNG(t, f.PNG, genpipe.Styles[3])
	checkPDF(t, f.PDF)
	checkPPTX(t, f.PPTX)
	slide := readPart(t, f.PPTX, "ppt/slides/slide1.xml")
	if !strings.Contains(string(slide), "人工智能") {
		t.Error("slide1.xml lost the CJK text")
	}
}

func TestPPTXEscapesText(t *testing.T) {
	title := `<b>"Fish" & 'Chips'</b>`
	desc := `if a < b && c > d { return "x" } // it's <script>alert('&amp;')</script>`
	f := mustRender(t, testImage(200, 200), genpipe.Styles[2], title, desc)
	checkPPTX(t, f.PPTX)

	slide := readPart(t, f.PPTX, "ppt/slides/slide1.xml")
	if bytes.Contains(slide, []byte("<script>")) || bytes.Contains(slide, []byte("<b>")) {
		t.Fatal("user markup reached slide1.xml unescaped")
	}
	if got := textOf(t, slide); !strings.Contains(got, desc) || !strings.Contains(got, title) {
		t.Errorf("slide text %q does not hold the title and description verbatim", got)
	}
	core := readPart(t, f.PPTX, "docProps/core.xml")
	if got := textOf(t, core); !strings.Contains(got, title) {
		t.Errorf("core.xml text %q lacks the title", got)
	}
}

func TestEmptyText(t *testing.T) {
	f := mustRender(t, testImage(400, 300), genpipe.Styles[4], "", "")
	checkPNG(t, f.PNG, genpipe.Styles[4])
	checkPDF(t, f.PDF)
	checkPPTX(t, f.PPTX)
}

func TestRenderRejectsBadInput(t *testing.T) {
	good := genpipe.Styles[0]
	bad := func(edit func(*genpipe.Style)) genpipe.Style {
		s := good
		edit(&s)
		return s
	}
	for name, tc := range map[string]struct {
		img   image.Image
		style genpipe.Style
	}{
		"nil image":   {nil, good},
		"empty image": {image.NewRGBA(image.Rect(0, 0, 0, 10)), good},
		"color":       {testImage(10, 10), bad(func(s *genpipe.Style) { s.TitleColor = "white" })},
		"short color": {testImage(10, 10), bad(func(s *genpipe.Style) { s.AccentColor = "#fff" })},
		"font":        {testImage(10, 10), bad(func(s *genpipe.Style) { s.Font = "comic" })},
		"side":        {testImage(10, 10), bad(func(s *genpipe.Style) { s.ImageSide = "top" })},
		"layout":      {testImage(10, 10), bad(func(s *genpipe.Style) { s.Layout = "grid" })},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(tc.img, tc.style, "t", "d")
			if code := genpipe.ErrorCode(err); code != genpipe.EINVALID {
				t.Errorf("err %v has code %q; want %q", err, code, genpipe.EINVALID)
			}
		})
	}
	// Text that would make a deck too long is refused, not cut.
	for name, desc := range map[string]string{
		"lines":      strings.Repeat("a\n", 1000),
		"characters": strings.Repeat("a ", MaxTextRunes),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(testImage(10, 10), good, "t", desc)
			if code := genpipe.ErrorCode(err); code != genpipe.EINVALID {
				t.Errorf("err %v has code %q; want %q", err, code, genpipe.EINVALID)
			}
		})
	}
}

// TestRenderConcurrent backs Render's promise of concurrent use; run it
// with -race.
func TestRenderConcurrent(t *testing.T) {
	img := testImage(320, 240)
	errs := make(chan error, len(genpipe.Styles))
	for _, s := range genpipe.Styles {
		go func() {
			_, err := Render(img, s, sampleTitle, sampleText)
			errs <- err
		}()
	}
	for range genpipe.Styles {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"  a  b\t c  ":         "a b c",
		"a\r\n\r\n\r\n\nb":     "a\n\nb",
		"\n\na\n":              "a",
		"x\x00y\x1bz":          "xyz",
		"bad \xff utf8":        "bad \uFFFD utf8",
		"line\u2028sep\u2029p": "line\nsep\np",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q; want %q", in, got, want)
		}
	}
	if got := cleanTitle("a\n\nb"); got != "a b" {
		t.Errorf("cleanTitle joins paragraphs: got %q", got)
	}
}

// checkPNG decodes the slide and compares its corners with the style's
// gradient ends; the margins are background only.
func checkPNG(t *testing.T, data []byte, s genpipe.Style) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode png: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1920 || b.Dy() != 1080 {
		t.Fatalf("png is %v; want 1920×1080", b)
	}
	top, _ := parseHex(s.BackgroundTop)
	bottom, _ := parseHex(s.BackgroundBottom)
	if s.Layout == "band" {
		th, err := newTheme(s)
		if err != nil {
			t.Fatal(err)
		}
		top = th.band // the band covers the top corners
	}
	for _, p := range []struct {
		x, y int
		want color.RGBA
	}{{4, 2, top}, {1915, 2, top}, {4, 1077, bottom}, {1915, 1077, bottom}} {
		if got := color.RGBAModel.Convert(img.At(p.x, p.y)).(color.RGBA); !near(got, p.want, 6) {
			t.Errorf("pixel (%d,%d) = %v; want about %v", p.x, p.y, got, p.want)
		}
	}
}

func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return abs(int(x)-int(y)) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func checkPDF(t *testing.T, data []byte) {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		t.Errorf("pdf starts with %q", data[:min(8, len(data))])
	}
	if !bytes.HasSuffix(bytes.TrimRight(data, "\r\n"), []byte("%%EOF")) {
		t.Error("pdf does not end with the end-of-file marker")
	}
	// "/Type /Pages" is the page tree; the rest are pages.
	pages := bytes.Count(data, []byte("/Type /Page")) - bytes.Count(data, []byte("/Type /Pages"))
	if pages < 1 {
		t.Errorf("pdf has %d pages; want at least 1", pages)
	}
	if !bytes.Contains(data, []byte("/MediaBox [0 0 960.00 540.00]")) {
		t.Error("pdf page is not 960×540 pt")
	}
}

// pptxParts are the parts every PPTX must have.
var pptxParts = []string{
	"[Content_Types].xml", "_rels/.rels", "docProps/app.xml", "docProps/core.xml",
	"ppt/presentation.xml", "ppt/_rels/presentation.xml.rels",
	"ppt/slides/slide1.xml", "ppt/slides/_rels/slide1.xml.rels",
	"ppt/slideLayouts/slideLayout1.xml", "ppt/slideLayouts/_rels/slideLayout1.xml.rels",
	"ppt/slideMasters/slideMaster1.xml", "ppt/slideMasters/_rels/slideMaster1.xml.rels",
	"ppt/theme/theme1.xml", "ppt/media/image1.png",
}

// checkPPTX opens the package, checks its parts and returns the picture.
func checkPPTX(t *testing.T, data []byte) image.Rectangle {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("open pptx: %v", err)
	}
	have := map[string]bool{}
	for _, f := range zr.File {
		have[f.Name] = true
		if strings.HasSuffix(f.Name, ".xml") || strings.HasSuffix(f.Name, ".rels") {
			wellFormed(t, f.Name, readZip(t, f))
		}
	}
	for _, name := range pptxParts {
		if !have[name] {
			t.Errorf("pptx lacks %s", name)
		}
	}
	ct := readPart(t, data, "[Content_Types].xml")
	if !bytes.Contains(ct, []byte(`PartName="/ppt/presentation.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"`)) {
		t.Error("[Content_Types].xml lacks the presentation main content type")
	}
	img, err := png.Decode(bytes.NewReader(readPart(t, data, "ppt/media/image1.png")))
	if err != nil {
		t.Fatalf("decode pptx media: %v", err)
	}
	return img.Bounds()
}

func wellFormed(t *testing.T, name string, data []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("%s is not well-formed: %v", name, err)
			return
		}
	}
}

func readPart(t *testing.T, pptx []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pptx), int64(len(pptx)))
	if err != nil {
		t.Fatalf("open pptx: %v", err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			return readZip(t, f)
		}
	}
	t.Fatalf("pptx lacks %s", name)
	return nil
}

func readZip(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("open %s: %v", f.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	return data
}

// textOf is the character data of an XML document, unescaped, with
// paragraphs (a:p) ending in newlines.
func textOf(t *testing.T, data []byte) string {
	t.Helper()
	var b strings.Builder
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return b.String()
		}
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.CharData:
			b.Write(tok)
		case xml.EndElement:
			if tok.Name.Local == "p" {
				b.WriteByte('\n')
			}
		}
	}
}

func checkLinesFit(t *testing.T, b textBlock) {
	t.Helper()
	for _, line := range b.lines {
		if line.width > textColW+0.5 {
			t.Errorf("line %q is %.0f px wide; the column is %d", line.text, line.width, textColW)
		}
	}
}

func TestPreview(t *testing.T) {
	if *preview == "" {
		t.Skip("no -preview directory")
	}
	img := image.Image(testImage(1200, 800))
	if *previewImage != "" {
		f, err := os.Open(*previewImage)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if img, _, err = image.Decode(f); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, f Files) {
		files := map[string][]byte{"png": f.PNG, "pdf": f.PDF, "pptx": f.PPTX}
		for i, p := range f.MorePNG {
			files[fmt.Sprintf("%d.png", i+2)] = p
		}
		for ext, data := range files {
			if err := os.WriteFile(filepath.Join(*preview, name+"."+ext), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range genpipe.Styles {
		write(s.ID, mustRender(t, img, s, sampleTitle, sampleText))
	}
	// The edge cases, each in a different style.
	long := strings.Repeat(sampleText+" ", 10)[:2000]
	write("edge-long", mustRender(t, img, genpipe.Styles[0],
		"A title long enough to need three lines at the largest size and then some more words", long))
	write("edge-wide", mustRender(t, testImage(3000, 100), genpipe.Styles[1], "Wide", sampleText))
	write("edge-tall", mustRender(t, testImage(60, 2400), genpipe.Styles[2], "Tall", sampleText))
	write("edge-tiny", mustRender(t, testImage(64, 64), genpipe.Styles[4], "Tiny", sampleText))
	write("edge-unicode", mustRender(t, img, genpipe.Styles[3], "Ünïcödé 生成 AI — «slides»",
		"Emoji 🎉, CJK 生成式人工智能管道, Greek αβγ, Cyrillic привет, RTL שלום, <tags> & \"quotes\".\n"+
			"https://example.com/"+strings.Repeat("a-very-long-path/", 8)))
	var all []string
	for _, sc := range scripts {
		all = append(all, sc.name+": "+sc.text)
	}
	all = append(all, "שלום עולם: a paragraph that starts right to left", "مرحبا بكم في genpipe 2027")
	write("edge-scripts", mustRender(t, img, genpipe.Styles[4], "Überblick — 市場分析 2027 🚀", strings.Join(all, "\n")))
}

func BenchmarkRender(b *testing.B) {
	for _, size := range []struct {
		name string
		w, h int
	}{{"photo1200x800", 1200, 800}, {"photo4000x3000", 4000, 3000}} {
		img := testImage(size.w, size.h)
		b.Run(size.name, func(b *testing.B) {
			for b.Loop() {
				mustRender(b, img, genpipe.Styles[0], sampleTitle, sampleText)
			}
		})
	}
	// Every script at once: the fallback fonts, shaping, color emoji.
	var all []string
	for _, sc := range scripts {
		all = append(all, sc.text)
	}
	img := testImage(1200, 800)
	b.Run("scripts1200x800", func(b *testing.B) {
		for b.Loop() {
			mustRender(b, img, genpipe.Styles[0], "Überblick — 市場分析 2027 🚀", strings.Join(all, " "))
		}
	})
}

// A description that only repeats the title is not shown twice.
func TestBodyOmitsRepeatedTitle(t *testing.T) {
	title := cleanTitle("Quarterly roadmap")
	if got := bodyText(title, "  Quarterly roadmap "); got != "" {
		t.Errorf("bodyText of a description equal to the title = %q; want none", got)
	}
	if got := bodyText(title, "Quarterly roadmap\nwith details"); got == "" {
		t.Error("bodyText dropped a description that says more than the title")
	}
	img := image.NewRGBA(image.Rect(0, 0, 200, 100))
	if _, err := Render(img, genpipe.Styles[0], title, "Quarterly roadmap"); err != nil {
		t.Fatalf("Render with a body equal to the title: %v", err)
	}
}

// Corporate and Minimal differ in layout, not only in color: Corporate
// heads the slide with a band holding the title, Minimal centers image and
// text; neither matches the side-by-side layout of the others.
func TestStylesDifferInLayout(t *testing.T) {
	shape := func(id string) string {
		s, _ := genpipe.StyleByID(id)
		th, err := newTheme(s)
		if err != nil {
			t.Fatal(err)
		}
		lay := newLayout(th, newTypesetter(), image.Pt(800, 600), sampleTitle, cleanText(sampleText))
		return fmt.Sprintf("image %v title at %.0f, %.0f wide, centered %v, band %v",
			lay.image, lay.title.x, lay.title.w, lay.title.center, lay.band != nil)
	}
	corporate, minimal, forest := shape("corporate"), shape("minimal"), shape("forest")
	t.Logf("corporate: %s\nminimal: %s\nforest: %s", corporate, minimal, forest)
	if corporate == minimal || corporate == forest || minimal == forest {
		t.Error("two of corporate, minimal and forest (side by side) share a layout")
	}
}

// The longest title and description the API takes, in the script that
// needs the most room, render in every style: the title shrinks to fit
// above the description, which continues on at most four slides.
func TestLongestTextsRender(t *testing.T) {
	title := strings.Repeat("長", 200)
	desc := strings.Repeat("生成式人工智能管道。", 200)
	ts := newTypesetter()
	for _, s := range genpipe.Styles {
		th, err := newTheme(s)
		if err != nil {
			t.Fatal(err)
		}
		lay := newLayout(th, ts, image.Pt(64, 64), cleanTitle(title), cleanText(desc))
		if lay.overflow {
			t.Errorf("style %s: the title does not fit", s.ID)
		}
		if n := len(lay.pages); n > 4 {
			t.Errorf("style %s: %d slides; want at most 4", s.ID, n)
		}
	}
}
