package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loqed2mqtt/loqed2mqtt/mqtt"
)

func TestNew_InvalidOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		opts mqtt.Options
		want string
	}{
		{
			name: "MissingURL",
			opts: mqtt.Options{},
			want: "missing MQTT broker URL; set it to tcp://host:1883, ssl://host:8883, ws://host/path or wss://host/path",
		},
		{
			name: "UnsupportedScheme",
			opts: mqtt.Options{URL: "http://broker:1883"},
			want: `invalid MQTT broker URL "http://broker:1883": scheme "http" is not supported; use tcp://, ssl://, ws:// or wss://`,
		},
		{
			name: "SchemeErrorHidesPassword",
			opts: mqtt.Options{URL: "mqtt://user:hunter2@broker"},
			want: `invalid MQTT broker URL "mqtt://user:xxxxx@broker": scheme "mqtt" is not supported; use tcp://, ssl://, ws:// or wss://`,
		},
		{
			name: "MissingHost",
			opts: mqtt.Options{URL: "tcp://:1883"},
			want: `invalid MQTT broker URL "tcp://:1883": missing host`,
		},
		{
			name: "UnparsableURL",
			opts: mqtt.Options{URL: "tcp://user:hunter2@broker:port"},
			want: `invalid MQTT broker URL: invalid port ":port" after host`,
		},
		{
			name: "PasswordWithoutUsername",
			opts: mqtt.Options{URL: "tcp://broker", Password: "hunter2"},
			want: "MQTT password is set without a user name; set the user name too",
		},
		{
			name: "CertWithoutKey",
			opts: mqtt.Options{URL: "ssl://broker", CertFile: "client.pem"},
			want: `MQTT client certificate file "client.pem" and key file "" must be set together`,
		},
		{
			name: "KeyWithoutCert",
			opts: mqtt.Options{URL: "ssl://broker", KeyFile: "client.key"},
			want: `MQTT client certificate file "" and key file "client.key" must be set together`,
		},
		{
			name: "TLSFilesWithPlainURL",
			opts: mqtt.Options{URL: "tcp://broker", CAFile: notPEM},
			want: `MQTT TLS files are set but broker URL "tcp://broker:1883" does not use TLS; use ssl:// or wss://`,
		},
		{
			name: "MissingCAFile",
			opts: mqtt.Options{URL: "ssl://broker", CAFile: missing},
			want: "cannot read MQTT CA file: open " + missing + ": no such file or directory",
		},
		{
			name: "CAFileWithoutCertificate",
			opts: mqtt.Options{URL: "wss://broker/mqtt", CAFile: notPEM},
			want: `MQTT CA file "` + notPEM + `" contains no PEM certificate`,
		},
		{
			name: "BrokenClientCertificate",
			opts: mqtt.Options{URL: "ssl://broker", CertFile: notPEM, KeyFile: notPEM},
			want: `cannot load MQTT client certificate "` + notPEM + `" with key "` + notPEM + `": tls: failed to find any PEM data in certificate input`,
		},
		{
			name: "NegativeAckTimeout",
			opts: mqtt.Options{URL: "tcp://broker", AckTimeout: -time.Second},
			want: "invalid MQTT option AckTimeout -1s: must not be negative",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mqtt.New(tt.opts)
			if err == nil {
				t.Fatalf("New() error = nil; want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("New() error = %q; want %q", err, tt.want)
			}
		})
	}
}

func TestNew_TLSFiles(t *testing.T) {
	certFile, keyFile := writeSelfSignedCert(t)

	for _, opts := range []mqtt.Options{
		{URL: "ssl://broker.example", CAFile: certFile, CertFile: certFile, KeyFile: keyFile},
		{URL: "wss://broker.example/mqtt", CAFile: certFile},
	} {
		c, err := mqtt.New(opts)
		if err != nil {
			t.Fatalf("New(%+v) error = %v; want nil", opts, err)
		}
		if err := c.Close(t.Context()); err != nil {
			t.Errorf("Close() of an unconnected client error = %v; want nil", err)
		}
	}
}

// writeSelfSignedCert writes a self-signed certificate and its key as PEM files.
func writeSelfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "loqed2mqtt test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
