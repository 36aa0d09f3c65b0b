package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setEnv clears every configuration variable, then sets vars.
func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, prefix := range []string{"MQTT_", "HA_", "LOQED_", "HTTP_", "WEBHOOK_", "COMMAND", "LOG_", "SHUTDOWN_"} {
			if strings.HasPrefix(name, prefix) {
				t.Setenv(name, "")
				os.Unsetenv(name)
			}
		}
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	setEnv(t, map[string]string{"WEBHOOK_SECRET": "0123456789abcdef"})
	c, err := loadConfig(os.LookupEnv, false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	checks := map[string][2]string{
		"MQTT_URL":         {c.MQTTURL, "tcp://localhost:1883"},
		"MQTT_BASE_TOPIC":  {c.MQTTBaseTopic, "loqed"},
		"HA_DISCOVERY":     {fmt.Sprint(c.HADiscovery), "true"},
		"HA_DISCOVERY_PFX": {c.HADiscoveryPrefix, "homeassistant"},
		"LOQED_API_URL":    {c.LoqedAPIURL, "https://integrations.production.loqed.com"},
		"HTTP_LISTEN":      {c.HTTPListen, ":8080"},
		"LOG_LEVEL":        {c.LogLevel, "info"},
		"LOG_FORMAT":       {c.LogFormat, "json"},
		"REFRESH":          {c.LoqedRefreshInterval.String(), "12h0m0s"},
		"BUDGET":           {fmt.Sprint(c.LoqedListBudget), "10"},
		"CONFIRM":          {c.LoqedConfirmTimeout.String(), "20s"},
		"ALLOWED":          {strings.Join(c.CommandsAllowed, ","), "lock,unlock,open,settings"},
	}
	for name, got := range checks {
		if got[0] != got[1] {
			t.Errorf("%s = %q; want %q", name, got[0], got[1])
		}
	}
	if !strings.HasPrefix(c.MQTTClientID, "loqed2mqtt-") {
		t.Errorf("MQTT_CLIENT_ID = %q; want loqed2mqtt-<hostname>", c.MQTTClientID)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	valid := "0123456789abcdef"
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing secret", map[string]string{}, "WEBHOOK_SECRET: missing: set at least 16 random characters"},
		{"short secret", map[string]string{"WEBHOOK_SECRET": "short"}, "WEBHOOK_SECRET: too short: use at least 16 characters"},
		{"secret with slash", map[string]string{"WEBHOOK_SECRET": "0123456789/abcdef"}, "WEBHOOK_SECRET: contains a character that cannot be a URL path segment"},
		{"bad scheme", map[string]string{"WEBHOOK_SECRET": valid, "MQTT_URL": "http://broker:1883"}, `MQTT_URL: unsupported scheme "http": use tcp, ssl, ws or wss`},
		{"bad base topic", map[string]string{"WEBHOOK_SECRET": valid, "MQTT_BASE_TOPIC": "a/b"}, `MQTT_BASE_TOPIC: invalid topic level "a/b"`},
		{"bad mode", map[string]string{"WEBHOOK_SECRET": valid, "HA_DISCOVERY_MODE": "both"}, `HA_DISCOVERY_MODE: invalid value "both": use device or component`},
		{"bad bool", map[string]string{"WEBHOOK_SECRET": valid, "HA_DISCOVERY": "maybe"}, "HA_DISCOVERY"},
		{"budget too high", map[string]string{"WEBHOOK_SECRET": valid, "LOQED_LIST_BUDGET": "13"}, "LOQED_LIST_BUDGET: 13 is out of range: use 1 to 12"},
		{"refresh too short", map[string]string{"WEBHOOK_SECRET": valid, "LOQED_REFRESH_INTERVAL": "10s"}, "LOQED_REFRESH_INTERVAL: 10s is too short: use at least 1m"},
		{"bad command", map[string]string{"WEBHOOK_SECRET": valid, "COMMANDS_ALLOWED": "lock,explode"}, `COMMANDS_ALLOWED: unknown command "explode"`},
		{"bad setting", map[string]string{"WEBHOOK_SECRET": valid, "LOQED_EXTRA_SETTINGS": "Touch-To-Lock"}, `LOQED_EXTRA_SETTINGS: invalid setting name "Touch-To-Lock"`},
		{"short pin", map[string]string{"WEBHOOK_SECRET": valid, "COMMAND_PIN": "12"}, "COMMAND_PIN: use at least 4 characters and no white space"},
		{"cert without key", map[string]string{"WEBHOOK_SECRET": valid, "MQTT_CERT_FILE": "/c.pem"}, "MQTT_CERT_FILE and MQTT_KEY_FILE: set both or neither"},
		{"bad listen", map[string]string{"WEBHOOK_SECRET": valid, "HTTP_LISTEN": "8080"}, `HTTP_LISTEN: invalid address "8080"`},
		{"bad level", map[string]string{"WEBHOOK_SECRET": valid, "LOG_LEVEL": "loud"}, `LOG_LEVEL: invalid value "loud"`},
		{"secret and file", map[string]string{"WEBHOOK_SECRET": valid, "WEBHOOK_SECRET_FILE": "/x"}, "set WEBHOOK_SECRET or WEBHOOK_SECRET_FILE, not both"},
		{"missing file", map[string]string{"LOQED_API_TOKEN_FILE": "/does/not/exist"}, "LOQED_API_TOKEN_FILE: open /does/not/exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setEnv(t, tc.env)
			_, err := loadConfig(os.LookupEnv, false)
			if err == nil {
				t.Fatalf("loadConfig succeeded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigDemoNeedsNoSecret(t *testing.T) {
	setEnv(t, map[string]string{})
	if _, err := loadConfig(os.LookupEnv, true); err != nil {
		t.Fatalf("loadConfig with demo: %v", err)
	}
}

func TestLoadConfigSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setEnv(t, map[string]string{"WEBHOOK_SECRET": "0123456789abcdef", "LOQED_API_TOKEN_FILE": path})
	c, err := loadConfig(os.LookupEnv, false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.LoqedAPIToken.Value() != "file-token-value" {
		t.Errorf("LOQED_API_TOKEN = %q; want the file's content without the newline", c.LoqedAPIToken.Value())
	}
}

// TestConfigHidesSecrets formats the whole configuration in every way a log
// line or a dump could and fails if a secret shows.
func TestConfigHidesSecrets(t *testing.T) {
	secrets := map[string]string{
		"MQTT_PASSWORD":   "broker-pass-4711",
		"LOQED_API_TOKEN": "token-abcdef-0815",
		"WEBHOOK_SECRET":  "webhook-secret-2342",
		"COMMAND_PIN":     "98765",
	}
	setEnv(t, secrets)
	c, err := loadConfig(os.LookupEnv, false)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	encoded, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c), string(encoded)} {
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("formatted config shows %s: %s", name, text)
			}
		}
	}
}
