//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

// A binary built with -tags pprof serves Go's profiler on the address in
// LOQED2MQTT_PPROF, for profiling under load. Give it a loopback address such
// as 127.0.0.1:6060: the profiler has no authentication. Release builds leave
// it out.
func init() {
	addr := os.Getenv("LOQED2MQTT_PPROF")
	if addr == "" {
		return
	}
	go http.ListenAndServe(addr, nil)
}
