package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// metrics maps a metric key from metricDefs to its value in the metric's unit.
type metrics map[string]float64

// metricDef describes one figure of a run.
type metricDef struct {
	key    string
	header string // column title in the table, with the unit
	format string
}

// Metric keys. Latencies are in milliseconds, CPU time in microseconds,
// memory in MiB.
const (
	mEvents          = "events_sent"
	mCompleted       = "events_delivered"
	mLost            = "events_lost"
	mDuplicates      = "duplicates"
	mHTTPErrors      = "http_errors"
	mE2EP50          = "e2e_p50_ms"
	mE2EP90          = "e2e_p90_ms"
	mE2EP99          = "e2e_p99_ms"
	mE2EMax          = "e2e_max_ms"
	mHTTPP50         = "http_p50_ms"
	mHTTPP99         = "http_p99_ms"
	mThroughput      = "throughput_per_s"
	mSendLagMax      = "send_lag_max_ms"
	mCPUPerEvent     = "cpu_per_event_us"
	mBrokerCPU       = "broker_cpu_per_event_us"
	mRSSBefore       = "rss_before_mib"
	mRSSAfter        = "rss_after_mib"
	mStartToReady    = "start_to_ready_ms"
	mFirstDelivery   = "launch_to_first_delivery_ms"
	mMemoryPerLock   = "memory_per_lock_kib"
	mLoadWallSeconds = "load_seconds"
)

var metricDefs = []metricDef{
	{mEvents, "sent", "%.0f"},
	{mCompleted, "delivered", "%.0f"},
	{mLost, "lost", "%.0f"},
	{mDuplicates, "dup", "%.0f"},
	{mHTTPErrors, "http err", "%.0f"},
	{mThroughput, "events/s", "%.0f"},
	{mE2EP50, "e2e p50 ms", "%.2f"},
	{mE2EP90, "e2e p90 ms", "%.2f"},
	{mE2EP99, "e2e p99 ms", "%.2f"},
	{mE2EMax, "e2e max ms", "%.2f"},
	{mHTTPP50, "http p50 ms", "%.2f"},
	{mHTTPP99, "http p99 ms", "%.2f"},
	{mSendLagMax, "send lag max ms", "%.2f"},
	{mCPUPerEvent, "cpu/event us", "%.1f"},
	{mBrokerCPU, "broker cpu/event us", "%.1f"},
	{mRSSBefore, "rss before MiB", "%.1f"},
	{mRSSAfter, "rss after MiB", "%.1f"},
	{mStartToReady, "start-to-ready ms", "%.1f"},
	{mFirstDelivery, "launch-to-delivery ms", "%.1f"},
	{mMemoryPerLock, "memory/lock KiB", "%.2f"},
	{mLoadWallSeconds, "load s", "%.2f"},
}

// latencyMetrics fills the delivery and latency figures of a run's sample.
func latencyMetrics(s runSample, open bool) metrics {
	m := metrics{
		mEvents:     float64(s.sent),
		mHTTPErrors: float64(s.httpErrors),
		mDuplicates: float64(s.duplicates),
	}

	var e2e, httpLat []time.Duration
	var firstSend, lastRecv time.Duration = math.MaxInt64, 0
	for i := range s.sent {
		firstSend = min(firstSend, s.sendAt[i])
		if s.httpDur[i] >= 0 {
			httpLat = append(httpLat, s.httpDur[i])
		}
		if s.recvAt[i] > 0 {
			e2e = append(e2e, s.recvAt[i]-s.sendAt[i])
			lastRecv = max(lastRecv, s.recvAt[i])
		}
	}
	m[mCompleted] = float64(len(e2e))
	m[mLost] = float64(s.sent - len(e2e))

	slices.Sort(e2e)
	slices.Sort(httpLat)
	if len(e2e) > 0 {
		m[mE2EP50] = ms(percentile(e2e, 0.50))
		m[mE2EP90] = ms(percentile(e2e, 0.90))
		m[mE2EP99] = ms(percentile(e2e, 0.99))
		m[mE2EMax] = ms(e2e[len(e2e)-1])
		if wall := lastRecv - firstSend; wall > 0 {
			m[mThroughput] = float64(len(e2e)) / wall.Seconds()
			m[mLoadWallSeconds] = wall.Seconds()
		}
	}
	if len(httpLat) > 0 {
		m[mHTTPP50] = ms(percentile(httpLat, 0.50))
		m[mHTTPP99] = ms(percentile(httpLat, 0.99))
	}
	if open {
		m[mSendLagMax] = ms(s.sendLagMax)
	}
	return m
}

// percentile returns the nearest-rank percentile p (0 < p <= 1) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// medianMetrics returns, per key, the median over the runs that have it.
func medianMetrics(runs []metrics) metrics {
	out := metrics{}
	for _, def := range metricDefs {
		var values []float64
		for _, r := range runs {
			if v, ok := r[def.key]; ok {
				values = append(values, v)
			}
		}
		if len(values) == 0 {
			continue
		}
		slices.Sort(values)
		mid := len(values) / 2
		if len(values)%2 == 1 {
			out[def.key] = values[mid]
		} else {
			out[def.key] = (values[mid-1] + values[mid]) / 2
		}
	}
	return out
}

// ratioMetrics divides each figure of m by the baseline's. Figures that the
// baseline lacks or has as zero or less get no ratio, and neither does memory
// per lock, because the baseline keeps no per-lock state and its figure is
// noise around zero.
func ratioMetrics(m, baseline metrics) metrics {
	out := metrics{}
	for key, v := range m {
		if key == mMemoryPerLock {
			continue
		}
		if b, ok := baseline[key]; ok && b > 0 {
			out[key] = v / b
		}
	}
	return out
}

// printTable writes one scenario as a table: each target's medians, then its
// ratios to the baseline.
func printTable(w io.Writer, sc *scenarioReport) {
	fmt.Fprintf(w, "\n== %s: %s (%d runs)\n", sc.Name, sc.Description, sc.Runs)
	for _, e := range sc.Errors {
		fmt.Fprintf(w, "   error: %s\n", firstLine(e))
	}

	var cols []metricDef
	for _, def := range metricDefs {
		for _, t := range sc.Targets {
			if _, ok := sc.Median[t][def.key]; ok {
				cols = append(cols, def)
				break
			}
		}
	}
	if len(cols) == 0 {
		return
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"target"}
	for _, c := range cols {
		header = append(header, c.header)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, t := range sc.Targets {
		for _, row := range []struct {
			label  string
			values metrics
			ratio  bool
		}{{t, sc.Median[t], false}, {"  x baseline", sc.Ratio[t], true}} {
			if row.ratio && (t == targetBaseline || len(row.values) == 0) {
				continue
			}
			if !row.ratio && len(row.values) == 0 {
				continue
			}
			cells := []string{row.label}
			for _, c := range cols {
				v, ok := row.values[c.key]
				switch {
				case !ok:
					cells = append(cells, "-")
				case row.ratio:
					cells = append(cells, fmt.Sprintf("%.2fx", v))
				default:
					cells = append(cells, fmt.Sprintf(c.format, v))
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
	}
	_ = tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
