// Node-RED settings for the loqed2mqtt load generator (test/bench).
//
// The bench copies this file and flows.json into a fresh temporary userDir
// for every launch, so no state carries over between runs. Everything that
// differs per launch comes from the environment:
//   BENCH_NODERED_PORT  HTTP port of the http-in nodes (loopback only)
//   BENCH_MQTT_HOST     broker host, BENCH_MQTT_PORT broker port
//   BENCH_BASE_TOPIC    first topic level, "loqed" by default
//   WEBHOOK_SECRET      the path segment the webhook route accepts
//
// The editor and the admin API are switched off, and telemetry with its
// update check is disabled, so the process opens no connection other than
// the one to the loopback broker.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.BENCH_NODERED_PORT, 10),

    flowFile: "flows.json",
    flowFilePretty: true,
    // The flow has no credentials, so no key is needed, and false stops the
    // warning about a generated credential key at start.
    credentialSecret: false,

    // No editor and no admin API: http-in routes are the only endpoints.
    httpAdminRoot: false,
    disableEditor: true,
    httpNodeRoot: "/",

    diagnostics: {
        enabled: false,
        ui: false,
    },
    runtimeState: {
        enabled: false,
        ui: false,
    },
    telemetry: {
        enabled: false,
        updateNotification: false,
    },

    externalModules: {
        autoInstall: false,
        palette: {
            allowInstall: false,
        },
        modules: {
            allowInstall: false,
        },
    },

    // Info level prints "Started flows" and the broker connection once at
    // start; nothing is logged per message.
    logging: {
        console: {
            level: "info",
            metrics: false,
            audit: false,
        },
    },

    functionExternalModules: false,
    functionTimeout: 0,
    debugMaxLength: 1000,
    mqttReconnectTime: 1000,
};
