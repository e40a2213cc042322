package genpipe

// Style is a slide theme. Colors are "#rrggbb" so a style travels as JSON to
// the Generative AI and into PPTX unchanged.
type Style struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// BackgroundTop and BackgroundBottom form a vertical gradient.
	BackgroundTop    string `json:"backgroundTop"`
	BackgroundBottom string `json:"backgroundBottom"`
	TitleColor       string `json:"titleColor"`
	TextColor        string `json:"textColor"`
	AccentColor      string `json:"accentColor"` // the rule under the title and the image frame
	// Font is a Go font family: "sans", "smallcaps" or "mono".
	Font string `json:"font"`
	// ImageSide is where the image sits: "left" or "right".
	ImageSide string `json:"imageSide"`
	// Layout arranges the slide: "split" (image and text side by side, the
	// text centered beside the image; the default when empty), "band" (the
	// title in a band across the top, in BackgroundTop darkened, image and
	// description below) or "centered" (image, title and description
	// centered one above the other, with wide margins).
	Layout string `json:"layout,omitempty"`
}

// Styles is the catalogue offered by GET /v1/styles.
var Styles = []Style{
	{ID: "corporate", Name: "Corporate", Description: "Navy and white, clean and sober.",
		BackgroundTop: "#0b1f3a", BackgroundBottom: "#16375f", TitleColor: "#ffffff", TextColor: "#dbe6f3",
		AccentColor: "#f2a900", Font: "sans", ImageSide: "right", Layout: "band"},
	{ID: "sunset", Name: "Sunset", Description: "Warm orange to magenta gradient.",
		BackgroundTop: "#c2410c", BackgroundBottom: "#9d174d", TitleColor: "#fffaf0", TextColor: "#fff1e6",
		AccentColor: "#ffd166", Font: "sans", ImageSide: "left"},
	{ID: "minimal", Name: "Minimal", Description: "Black on white, lots of air.",
		BackgroundTop: "#ffffff", BackgroundBottom: "#f2f2f2", TitleColor: "#111111", TextColor: "#333333",
		AccentColor: "#111111", Font: "sans", ImageSide: "right", Layout: "centered"},
	{ID: "neon", Name: "Neon", Description: "Dark background with electric cyan and pink.",
		BackgroundTop: "#0d0221", BackgroundBottom: "#190b3a", TitleColor: "#2de2e6", TextColor: "#f6f6ff",
		AccentColor: "#ff3864", Font: "mono", ImageSide: "left"},
	{ID: "forest", Name: "Forest", Description: "Deep greens with a parchment text.",
		BackgroundTop: "#1b4332", BackgroundBottom: "#081c15", TitleColor: "#d8f3dc", TextColor: "#f1faee",
		AccentColor: "#95d5b2", Font: "smallcaps", ImageSide: "right"},
}

// StyleByID returns the style with that id.
func StyleByID(id string) (Style, bool) {
	for _, s := range Styles {
		if s.ID == id {
			return s, true
		}
	}
	return Style{}, false
}
