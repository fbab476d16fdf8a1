package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"sort"
	"time"

	"onsale/httpapi"
)

// writeHTML writes the sale report as one self-contained page: the figures,
// the latency table, and charts over time drawn by the embedded uPlot (no
// network needed to open it). Written to a temporary file and renamed, so a
// reader never sees half a report.
func writeHTML(path string, o Options, rep *saleReport) error {
	js, css, license := httpapi.ChartLibrary()
	data, err := json.Marshal(rep.Timeline)
	if err != nil {
		return err
	}
	eps := make([]string, 0, len(rep.Latency))
	for ep := range rep.Latency {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	type row struct {
		Name string
		Q    endpointReport
	}
	rows := make([]row, len(eps))
	for i, ep := range eps {
		rows[i] = row{ep, rep.Latency[ep]}
	}
	codes := make([]string, 0, len(rep.Errors))
	for k, v := range rep.Errors {
		codes = append(codes, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(codes)
	var b bytes.Buffer
	err = reportPage.Execute(&b, map[string]any{
		"Rep": rep, "Opts": o, "Rows": rows, "Codes": codes,
		"When":    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		"ChartJS": template.JS(js), "ChartCSS": template.CSS(css), "License": license,
		"Data": template.JS(data),
	})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"s1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"n0":     func(v float64) string { return fmt.Sprintf("%.0f", v) },
	"mul100": func(v float64) float64 { return 100 * v },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>onsale rehearsal: {{.Rep.Buyers}} buyers for {{.Rep.Seats}} seats</title>
<style>{{.ChartCSS}}</style>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d1d1f; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.sub { color: #555; margin-top: 0; }
.verdict { font-size: 1.2rem; font-weight: 600; padding: .6rem 1rem; border-radius: .4rem; display: inline-block; }
.ok { background: #e3f6e8; color: #105a24; } .wrong { background: #fde7e7; color: #8a1111; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: right; padding: .25rem .7rem; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content auto; gap: .3rem 1.2rem; }
dt { color: #555; } dd { margin: 0; font-weight: 600; }
.chart { margin: 1.5rem 0; }
.chart h2 { font-size: 1.05rem; margin: 0 0 .3rem; }
.chart p { margin: 0 0 .5rem; color: #555; }
details { margin-top: 2rem; color: #555; }
</style>
</head>
<body>
<h1>On-sale rehearsal: {{.Rep.Buyers}} buyers for {{.Rep.Seats}} seats</h1>
<p class="sub">{{.When}} · {{.Opts.Conns}} connections · payments {{.Opts.Server.PaymentLatency}} through {{.Opts.Server.PaymentSlots}} slots · {{printf "%.0f" (mul100 .Opts.Abandon)}}% walk away, {{printf "%.0f" (mul100 .Opts.Decline)}}% declined first</p>
<p class="verdict {{if eq .Rep.Verdict "OK"}}ok{{else}}wrong{{end}}">
{{if .Rep.SoldOut}}Sold out {{s1 .Rep.SoldOutS}} s after the opening{{else}}Not sold out: {{.Rep.Free}} free, {{.Rep.Held}} held{{end}} · end state {{.Rep.Verdict}}</p>
<dl>
<dt>Nothing left free for the first time</dt><dd>{{if gt .Rep.FirstNoneFreeS 0.0}}{{s1 .Rep.FirstNoneFreeS}} s{{else}}never{{end}}</dd>
<dt>Longest a returned seat stayed free</dt><dd>{{s1 .Rep.RefillGapMaxS}} s</dd>
<dt>Buyers admitted</dt><dd>{{.Rep.Admitted}} of {{.Rep.Buyers}}</dd>
<dt>Holds · checkouts</dt><dd>{{.Rep.Holds}} ({{n0 .Rep.HoldsPerS}}/s) · {{.Rep.Checkouts}} ({{n0 .Rep.CheckoutsPerS}}/s)</dd>
<dt>Requests</dt><dd>{{.Rep.Requests}} ({{n0 .Rep.RequestsPerS}}/s)</dd>
<dt>Seats sold · bought by buyers · sold twice</dt><dd>{{.Rep.Sold}} · {{.Rep.Bought}} · {{.Rep.SoldTwice}}</dd>
<dt>Fairness (1 = first come, first served)</dt><dd>{{printf "%.3f" .Rep.Fairness}}</dd>
<dt>CPU</dt><dd>{{if ge .Rep.ServerCPUS 0.0}}server {{s1 .Rep.ServerCPUS}} s, {{end}}load generator {{s1 .Rep.LoadGenCPUS}} s</dd>
{{if .Codes}}<dt>Answers other than success</dt><dd>{{range $i, $c := .Codes}}{{if $i}}, {{end}}{{$c}}{{end}}</dd>{{end}}
</dl>
<table>
<caption>Latency per endpoint, ms (from sending to the answer; the buyers' own waits left out)</caption>
<tr><th scope="col">endpoint</th><th scope="col">requests</th><th scope="col">p50</th><th scope="col">p90</th><th scope="col">p99</th><th scope="col">p99.9</th><th scope="col">max</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Q.N}}</td><td>{{s1 .Q.P50Ms}}</td><td>{{s1 .Q.P90Ms}}</td><td>{{s1 .Q.P99Ms}}</td><td>{{s1 .Q.P999Ms}}</td><td>{{s1 .Q.MaxMs}}</td></tr>
{{end}}</table>
<div class="chart"><h2>Seats</h2><p>Sold, held and free seats over the sale.</p><div id="seats"></div></div>
<div class="chart"><h2>The line</h2><p>Buyers waiting, and admitted so far.</p><div id="line"></div></div>
<div class="chart"><h2>Requests per second</h2><p>Everything the buyers sent.</p><div id="rps"></div></div>
<div class="chart"><h2>p99 latency, ms</h2><p>Each endpoint's 99th percentile over each second (and over the last part of a second at the end).</p><div id="p99"></div></div>
<details><summary>Charts drawn with uPlot 1.6.32 (MIT licence)</summary><pre>{{.License}}</pre></details>
<script>{{.ChartJS}}</script>
<script>
const tl = {{.Data}};
const xs = tl.map(s => s.t_s);
const width = () => Math.min(document.body.clientWidth, 960);
function chart(id, series, cols, xsOf) {
  const opts = { width: width(), height: 260, scales: { x: { time: false } },
    axes: [{ label: "seconds from the opening" }, { size: 80 }],
    series: [{ label: "seconds" }].concat(series) };
  return new uPlot(opts, [xsOf || xs].concat(cols), document.getElementById(id));
}
chart("seats", [{ label: "sold", stroke: "#1f7a3a" }, { label: "held", stroke: "#d08a00" }, { label: "free", stroke: "#2266cc" }],
  [tl.map(s => s.sold), tl.map(s => s.held), tl.map(s => s.free)]);
chart("line", [{ label: "waiting", stroke: "#7a3fb0" }, { label: "admitted so far", stroke: "#1f7a3a" }],
  [tl.map(s => s.waiting), tl.map(s => s.admitted_total)]);
const secs = tl.filter(s => s.p99_ms);
const rps = secs.map((s, i) => i === 0 ? null : (s.requests - secs[i-1].requests) / Math.max(s.t_s - secs[i-1].t_s, 0.001));
chart("rps", [{ label: "requests/s", stroke: "#444" }], [rps], secs.map(s => s.t_s));
const eps = [...new Set(secs.flatMap(s => Object.keys(s.p99_ms)))].filter(e => e !== "get_sale").sort();
const colors = ["#2266cc", "#d08a00", "#1f7a3a", "#b02a2a", "#7a3fb0", "#444"];
chart("p99", eps.map((e, i) => ({ label: e, stroke: colors[i % colors.length] })),
  eps.map(e => secs.map(s => s.p99_ms[e] ?? null)), secs.map(s => s.t_s));
</script>
</body>
</html>
`))
