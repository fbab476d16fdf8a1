package httpapi

import "embed"

// The charting library, pinned and embedded so that nothing is fetched at
// run time: uPlot 1.6.32 (MIT, © Leon Sorokin), from the npm package's
// dist/ with its licence beside it. Small (51 KB), no dependencies, draws
// time series on a canvas; its time axis is in seconds.
//
//go:embed pages/vendor/uPlot.iife.min.js pages/vendor/uPlot.min.css pages/vendor/uPlot.LICENSE
var vendor embed.FS

// ChartLibrary returns uPlot's script, its style sheet and its licence.
func ChartLibrary() (js, css, license string) {
	read := func(name string) string {
		b, err := vendor.ReadFile("pages/vendor/" + name)
		if err != nil {
			panic("embedded chart library missing: " + name)
		}
		return string(b)
	}
	return read("uPlot.iife.min.js"), read("uPlot.min.css"), read("uPlot.LICENSE")
}
