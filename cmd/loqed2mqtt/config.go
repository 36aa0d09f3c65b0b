package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/loqed2mqtt/loqed2mqtt/loqed"
)

// Secret is a configuration value that must never be printed: String and
// MarshalText return a placeholder.
type Secret string

// String returns a placeholder, or "" when the secret is not set.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString returns the placeholder for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText returns the placeholder, so that encoding a Config hides it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value returns the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Config is the configuration, read from the environment once at start.
type Config struct {
	MQTTURL         string `envconfig:"MQTT_URL" default:"tcp://localhost:1883" desc:"broker URL: tcp://, ssl://, ws:// or wss://"`
	MQTTUsername    string `envconfig:"MQTT_USERNAME" desc:"broker user name"`
	MQTTPassword    Secret `envconfig:"MQTT_PASSWORD" desc:"broker password (or MQTT_PASSWORD_FILE)"`
	MQTTClientID    string `envconfig:"MQTT_CLIENT_ID" desc:"MQTT client id, different for every instance (default loqed2mqtt-<hostname>)"`
	MQTTBaseTopic   string `envconfig:"MQTT_BASE_TOPIC" default:"loqed" desc:"first level of every topic"`
	MQTTCAFile      string `envconfig:"MQTT_CA_FILE" desc:"PEM file of the CAs that sign the broker's certificate"`
	MQTTCertFile    string `envconfig:"MQTT_CERT_FILE" desc:"PEM client certificate, with MQTT_KEY_FILE"`
	MQTTKeyFile     string `envconfig:"MQTT_KEY_FILE" desc:"PEM private key of MQTT_CERT_FILE"`
	MQTTSharedGroup string `envconfig:"MQTT_SHARED_GROUP" desc:"subscribe command topics as $share/<group>/ so that instances sharing a broker run each command once"`

	HADiscovery       bool   `envconfig:"HA_DISCOVERY" default:"true" desc:"publish Home Assistant discovery configs; false removes those published before"`
	HADiscoveryPrefix string `envconfig:"HA_DISCOVERY_PREFIX" default:"homeassistant" desc:"Home Assistant's discovery prefix"`
	HADiscoveryMode   string `envconfig:"HA_DISCOVERY_MODE" default:"device" desc:"device (one config per lock, Home Assistant 2024.11 and later) or component (one config per entity)"`

	LoqedAPIURL          string        `envconfig:"LOQED_API_URL" default:"https://integrations.production.loqed.com" desc:"Integrations API base URL"`
	LoqedAPIToken        Secret        `envconfig:"LOQED_API_TOKEN" desc:"personal access token (or LOQED_API_TOKEN_FILE); without it the bridge only receives webhooks"`
	LoqedRefreshInterval time.Duration `envconfig:"LOQED_REFRESH_INTERVAL" default:"12h" desc:"read the lock list again when the cached one is older than this"`
	LoqedListBudget      int           `envconfig:"LOQED_LIST_BUDGET" default:"10" desc:"lock list calls allowed per rolling 12 hours, shared by all instances on the broker"`
	LoqedConfirmTimeout  time.Duration `envconfig:"LOQED_CONFIRM_TIMEOUT" default:"20s" desc:"how long a command waits for the webhook that confirms it"`
	LoqedAPITimeout      time.Duration `envconfig:"LOQED_API_TIMEOUT" default:"10s" desc:"how long one Integrations API call may take before it counts as timed out (and lock and unlock commands are retried)"`
	LoqedExtraSettings   []string      `envconfig:"LOQED_EXTRA_SETTINGS" desc:"comma-separated setting names to publish as switches besides open_house_mode, twist_assist, touch_to_connect"`

	CommandsAllowed []string `envconfig:"COMMANDS_ALLOWED" default:"lock,unlock,open,settings" desc:"what MQTT commands may do: lock, unlock, open, settings"`
	CommandPIN      Secret   `envconfig:"COMMAND_PIN" desc:"code every lock command must carry (or COMMAND_PIN_FILE)"`

	HTTPListen      string        `envconfig:"HTTP_LISTEN" default:":8080" desc:"address of the HTTP server for webhooks, health and metrics"`
	WebhookSecret   Secret        `envconfig:"WEBHOOK_SECRET" desc:"at least 16 characters, part of every webhook URL (or WEBHOOK_SECRET_FILE); required"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long shutdown may take to deliver what is queued"`

	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json or console"`
}

// secretVariables can also be read from the file that <NAME>_FILE names.
var secretVariables = []string{"MQTT_PASSWORD", "LOQED_API_TOKEN", "WEBHOOK_SECRET", "COMMAND_PIN"}

// MinSecretLength is the shortest WEBHOOK_SECRET accepted: the secret is the
// only thing that authenticates LOQED's unsigned webhooks.
const MinSecretLength = 16

var settingName = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// loadConfig reads the configuration from the environment, fills defaults
// and validates it. With demo set, WEBHOOK_SECRET may be empty.
func loadConfig(lookup func(string) (string, bool), demo bool) (*Config, error) {
	if err := readSecretFiles(lookup); err != nil {
		return nil, err
	}
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if c.MQTTClientID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.MQTTClientID = "loqed2mqtt-" + host
	}
	if err := c.validate(demo); err != nil {
		return nil, err
	}
	return &c, nil
}

// readSecretFiles sets NAME from the file NAME_FILE names, as Docker secrets
// are passed.
func readSecretFiles(lookup func(string) (string, bool)) error {
	for _, name := range secretVariables {
		path, ok := lookup(name + "_FILE")
		if !ok || path == "" {
			continue
		}
		if v, set := lookup(name); set && v != "" {
			return fmt.Errorf("invalid configuration: set %s or %s_FILE, not both", name, name)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("invalid configuration: %s_FILE: %w", name, err)
		}
		if err := os.Setenv(name, strings.TrimRight(string(data), "\r\n")); err != nil {
			return fmt.Errorf("invalid configuration: %s: %w", name, err)
		}
	}
	return nil
}

func (c *Config) validate(demo bool) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if u, err := url.Parse(c.MQTTURL); err != nil || u.Host == "" {
		bad("MQTT_URL: invalid URL %q: use tcp://host:1883", c.MQTTURL)
	} else if !oneOf(u.Scheme, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss") {
		bad("MQTT_URL: unsupported scheme %q: use tcp, ssl, ws or wss", u.Scheme)
	}
	if (c.MQTTCertFile == "") != (c.MQTTKeyFile == "") {
		bad("MQTT_CERT_FILE and MQTT_KEY_FILE: set both or neither")
	}
	if err := loqed.CheckLockID(c.MQTTBaseTopic); err != nil || strings.HasPrefix(c.MQTTBaseTopic, "$") {
		bad("MQTT_BASE_TOPIC: invalid topic level %q: use letters, digits, - and _", c.MQTTBaseTopic)
	}
	if c.MQTTSharedGroup != "" && loqed.CheckLockID(c.MQTTSharedGroup) != nil {
		bad("MQTT_SHARED_GROUP: invalid group name %q: no /, + or #", c.MQTTSharedGroup)
	}
	if err := loqed.CheckLockID(c.HADiscoveryPrefix); err != nil {
		bad("HA_DISCOVERY_PREFIX: invalid topic level %q", c.HADiscoveryPrefix)
	}
	if !oneOf(c.HADiscoveryMode, "device", "component") {
		bad("HA_DISCOVERY_MODE: invalid value %q: use device or component", c.HADiscoveryMode)
	}

	if u, err := url.Parse(c.LoqedAPIURL); err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https") {
		bad("LOQED_API_URL: invalid URL %q: use https://integrations.production.loqed.com", c.LoqedAPIURL)
	}
	if c.LoqedRefreshInterval < time.Minute {
		bad("LOQED_REFRESH_INTERVAL: %s is too short: use at least 1m", c.LoqedRefreshInterval)
	}
	if c.LoqedListBudget < 1 || c.LoqedListBudget > 12 {
		bad("LOQED_LIST_BUDGET: %d is out of range: use 1 to 12 (LOQED blocks an account for 12 hours after more than 12 calls)", c.LoqedListBudget)
	}
	if c.LoqedConfirmTimeout < time.Second || c.LoqedConfirmTimeout > 5*time.Minute {
		bad("LOQED_CONFIRM_TIMEOUT: %s is out of range: use 1s to 5m", c.LoqedConfirmTimeout)
	}
	if c.LoqedAPITimeout < time.Second || c.LoqedAPITimeout > time.Minute {
		bad("LOQED_API_TIMEOUT: %s is out of range: use 1s to 1m", c.LoqedAPITimeout)
	}
	for _, s := range c.LoqedExtraSettings {
		if !settingName.MatchString(s) {
			bad("LOQED_EXTRA_SETTINGS: invalid setting name %q: use lower-case letters, digits and _", s)
		}
	}

	for _, a := range c.CommandsAllowed {
		if !oneOf(a, "lock", "unlock", "open", "settings") {
			bad("COMMANDS_ALLOWED: unknown command %q: use lock, unlock, open, settings", a)
		}
	}
	if c.CommandPIN != "" && (len(c.CommandPIN) < 4 || strings.ContainsAny(c.CommandPIN.Value(), " \t\r\n")) {
		bad("COMMAND_PIN: use at least 4 characters and no white space")
	}

	if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
		bad("HTTP_LISTEN: invalid address %q: use host:port or :port", c.HTTPListen)
	}
	switch {
	case c.WebhookSecret == "" && !demo:
		bad("WEBHOOK_SECRET: missing: set at least %d random characters", MinSecretLength)
	case c.WebhookSecret != "" && len(c.WebhookSecret) < MinSecretLength:
		bad("WEBHOOK_SECRET: too short: use at least %d characters", MinSecretLength)
	case strings.ContainsAny(c.WebhookSecret.Value(), "/?#% \t\r\n"):
		bad("WEBHOOK_SECRET: contains a character that cannot be a URL path segment: use letters, digits, - and _")
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT: must be positive")
	}

	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		bad("LOG_LEVEL: invalid value %q: use debug, info, warn or error", c.LogLevel)
	}
	if !oneOf(c.LogFormat, "json", "console") {
		bad("LOG_FORMAT: invalid value %q: use json or console", c.LogFormat)
	}

	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

func oneOf(s string, values ...string) bool {
	for _, v := range values {
		if s == v {
			return true
		}
	}
	return false
}

// settings returns the setting names to publish.
func (c *Config) settings() []string {
	out := []string{loqed.SettingOpenHouseMode, loqed.SettingTwistAssist, loqed.SettingTouchToConnect}
	for _, s := range c.LoqedExtraSettings {
		if !oneOf(s, out...) {
			out = append(out, s)
		}
	}
	return out
}
