package main

import (
	"bufio"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestExampleConfigMatchesCode checks that config.example.env names every
// variable of Config and nothing else, so the example stays in step.
func TestExampleConfigMatchesCode(t *testing.T) {
	f, err := os.Open("../../config.example.env")
	if err != nil {
		t.Fatalf("failed to open config.example.env: %v", err)
	}
	defer f.Close()

	inExample := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("config.example.env line %q is not NAME=value", line)
			continue
		}
		inExample[name] = true
	}

	inCode := map[string]bool{}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		if name := typ.Field(i).Tag.Get("envconfig"); name != "" {
			inCode[name] = true
		}
	}

	var missing, extra []string
	for name := range inCode {
		if !inExample[name] {
			missing = append(missing, name)
		}
	}
	for name := range inExample {
		if !inCode[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("config.example.env lacks %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("config.example.env names unknown variables %v", extra)
	}
}
